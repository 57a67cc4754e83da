#!/usr/bin/env bash
# Airflow 3 on Postgres, DAGs from airflow/dags, in its own virtualenv (.venvs/airflow).
#   airflow.sh init | api-server | scheduler | dag-processor
source "$(dirname "$0")/common.sh"
require AIRFLOW_PORT AIRFLOW_ADMIN_USER AIRFLOW_ADMIN_PASSWORD AIRFLOW_JWT_SECRET AIRFLOW_FERNET_KEY \
  POSTGRES_USER POSTGRES_PASSWORD POSTGRES_HOST POSTGRES_PORT AIRFLOW_DB STATSD_PORT
airflow="$ROOT/.venvs/airflow/bin/airflow"
need_file "$airflow"
export AIRFLOW_HOME="$VAR/data/airflow"
mkdir -p "$AIRFLOW_HOME"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/airflow/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM=2
export AIRFLOW__CORE__FERNET_KEY="$AIRFLOW_FERNET_KEY"
# where task processes reach the API server (another container's name in compose)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW_EXECUTION_API_URL:-http://127.0.0.1:$AIRFLOW_PORT/execution/}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$AIRFLOW_ADMIN_USER:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$POSTGRES_USER:$POSTGRES_PASSWORD@$POSTGRES_HOST:$POSTGRES_PORT/$AIRFLOW_DB"
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__HOST="$BIND_HOST"
export AIRFLOW__API__BASE_URL="http://localhost:$AIRFLOW_PORT"
export AIRFLOW__API_AUTH__JWT_SECRET="$AIRFLOW_JWT_SECRET"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$VAR/log/airflow"
export AIRFLOW__METRICS__STATSD_ON=True
export AIRFLOW__METRICS__STATSD_HOST="${STATSD_HOST:-127.0.0.1}"
export AIRFLOW__METRICS__STATSD_PORT="$STATSD_PORT"
export AIRFLOW__METRICS__STATSD_PREFIX=airflow
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=True
# The platform's code (ml/, features.py) runs in the platform venv, called from DAG tasks.
export FRAUD_PLATFORM_PYTHON="$ROOT/.venv/bin/python" FRAUD_ROOT="$ROOT"
# DAG files share airflow/dags/_common.py; Airflow 3 does not put the DAG folder on sys.path.
export PYTHONPATH="$ROOT/airflow/dags${PYTHONPATH:+:$PYTHONPATH}"
cmd="${1:?usage: airflow.sh init|api-server|scheduler|dag-processor|cli <airflow args>}"
case "$cmd" in
  init)
    # The simple auth manager reads passwords from this file; keep it in step with the setting.
    printf '{"%s": "%s"}\n' "$AIRFLOW_ADMIN_USER" "$AIRFLOW_ADMIN_PASSWORD" >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    exec "$airflow" db migrate ;;
  api-server) exec "$airflow" api-server --port "$AIRFLOW_PORT" --host "$BIND_HOST" --workers 1 ;;
  scheduler) exec "$airflow" scheduler ;;
  dag-processor) exec "$airflow" dag-processor ;;
  # any airflow command with the stack's configuration, e.g. `airflow.sh cli dags test fraud_pipeline`
  cli) shift; exec "$airflow" "$@" ;;
  *) fail "unknown airflow command '$cmd'" ;;
esac
