# syntax=docker/dockerfile:1.7
# One Dockerfile for every Python environment of the platform, built from the same uv.lock as the
# native stack. GROUP selects the environment: platform (producer, streaming, ml, serving),
# mlflow, airflow or dbt. The platform image also carries Java 17 and the Spark connector jars,
# resolved by Maven from the same infra/maven POMs that `make setup` uses.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM maven:3.9.9-eclipse-temurin-17 AS spark-jars
COPY infra/versions.env infra/maven/ /build/
RUN set -a && . /build/versions.env && set +a \
 && mvn -q -B -s /build/settings.xml -f /build/spark/pom.xml -Dspark.version="$SPARK_VERSION" \
      -Ddelta.version="$DELTA_VERSION" -Dhadoop.version="$HADOOP_VERSION" \
      dependency:copy-dependencies -DoutputDirectory=/jars

FROM ${PYTHON_IMAGE} AS runtime
ARG GROUP=platform
ARG UV_VERSION=0.13.8
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH SPARK_EXTRA_JARS_DIR=/opt/spark-jars
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
 && if [ "$GROUP" = "platform" ] || [ "$GROUP" = "airflow" ]; then \
      apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl \
      && rm -rf /var/lib/apt/lists/*; \
    else apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /app
COPY pyproject.toml uv.lock README.md .env.example ./
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "$GROUP" = "platform" ]; then uv sync --frozen --no-install-project --group platform --no-default-groups; \
    else uv sync --frozen --no-install-project --only-group "$GROUP"; fi
COPY --from=spark-jars /jars /opt/spark-jars
# The root features.py is the one definition of the feature vector: copied, never duplicated.
COPY features.py ./
COPY contracts ./contracts
COPY common ./common
COPY producer ./producer
COPY streaming ./streaming
COPY ml ./ml
COPY serving ./serving
COPY infra/versions.env ./infra/versions.env
COPY dbt ./dbt
COPY airflow ./airflow
RUN --mount=type=cache,target=/root/.cache/uv \
    if [ "$GROUP" = "platform" ]; then uv sync --frozen --group platform --no-default-groups; fi \
 && if [ "$GROUP" = "airflow" ]; then \
      UV_PROJECT_ENVIRONMENT=/opt/platform-venv uv sync --frozen --group platform --no-default-groups \
      && UV_PROJECT_ENVIRONMENT=/opt/dbt-venv uv sync --frozen --only-group dbt --no-install-project; fi
ENV FRAUD_ROOT=/app FRAUD_PLATFORM_PYTHON=/opt/platform-venv/bin/python FRAUD_DBT_BIN=/opt/dbt-venv/bin/dbt
RUN useradd --create-home --uid 10001 fraud && chown -R fraud /app
USER fraud
