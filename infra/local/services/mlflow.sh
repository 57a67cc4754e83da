#!/usr/bin/env bash
# MLflow tracking server + model registry: Postgres backend, artifacts proxied to the object store.
source "$(dirname "$0")/common.sh"
require MLFLOW_PORT MLFLOW_WORKERS POSTGRES_USER POSTGRES_PASSWORD POSTGRES_HOST POSTGRES_PORT MLFLOW_DB \
  MLFLOW_BUCKET S3_ENDPOINT_URL S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
mlflow="$ROOT/.venvs/mlflow/bin/mlflow"
need_file "$mlflow"
export MLFLOW_S3_ENDPOINT_URL="$S3_ENDPOINT_URL" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" \
  AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_DEFAULT_REGION="$S3_REGION"
# The GenAI job runner (7 huey consumers, ~1.6 GiB) serves features this platform does not use.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
metrics="$RUN/mlflow-metrics"; rm -rf "$metrics"; mkdir -p "$metrics"
exec "$mlflow" server \
  --backend-store-uri "postgresql+psycopg2://$POSTGRES_USER:$POSTGRES_PASSWORD@$POSTGRES_HOST:$POSTGRES_PORT/$MLFLOW_DB" \
  --artifacts-destination "s3://$MLFLOW_BUCKET/artifacts" --serve-artifacts \
  --host "$BIND_HOST" --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS" --expose-prometheus "$metrics" \
  ${MLFLOW_ALLOWED_HOSTS:+--allowed-hosts "$MLFLOW_ALLOWED_HOSTS"}
