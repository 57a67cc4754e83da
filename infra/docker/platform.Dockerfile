# The one image of the compose stack. Every service container (Kafka, Trino, the schema registry,
# the object store, Postgres, Redis, Prometheus, Alertmanager, the exporters, MLflow, Airflow, the
# streaming job and serving) runs this image with its own command: the same service scripts
# (infra/local/services/*.sh) and the same install code (infra/setup/setup.sh, pinned by
# infra/versions.env and uv.lock) as the native stack, so both runtimes run the same versions.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# the Go module proxy for the tools built from source (empty: Go's own default)
ARG GOPROXY=
# every TLS client trusts the system bundle (with any certificate authority the base image carries)
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 FRAUD_ROOT=/app FRAUD_VAR_DIR=/data \
    GO_TOOLS="versitygw statsd_exporter" SETUP_SKIP=browser
WORKDIR /app

# 1. Install everything, from the install code and its pins only: this layer is rebuilt when they
#    change, not when the platform's code does. The project's own packages are installed in
#    editable mode, so empty placeholders stand in for them until step 2 copies the code.
COPY pyproject.toml uv.lock README.md ./
COPY infra/versions.env infra/versions.env
COPY infra/setup infra/setup
COPY infra/maven infra/maven
COPY infra/registry infra/registry
RUN mkdir -p contracts common producer streaming ml serving && touch features.py \
 && infra/setup/setup.sh \
 # the download caches are not needed at run time (the venvs and unpacked jars are)
 && rm -rf .cache/uv .cache/m2 .cache/go .cache/downloads .cache/src .cache/go-toolchain \
      .cache/registry/*.tar.gz /var/lib/apt/lists/* /root/.cache \
 && useradd --create-home --uid 10001 fraud \
 && mkdir -p /data && chown fraud:fraud /data /app

# 2. The platform's code, configuration and DAGs (see .dockerignore for what stays out)
COPY . .
RUN .venv/bin/python -m compileall -q features.py contracts common producer streaming ml serving >/dev/null
USER fraud
VOLUME /data
