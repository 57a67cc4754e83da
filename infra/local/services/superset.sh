#!/usr/bin/env bash
# Apache Superset: business dashboards on the Gold tables through Trino, metadata in Postgres, in
# its own virtualenv (.venvs/superset). Before serving, superset/bootstrap.py brings the metadata to
# the platform's state (migrations, admin user, roles, the dashboards-as-code bundle of
# superset/assets), skipping what is already done.
#   superset.sh [serve]             bootstrap, then serve on $BIND_HOST:$SUPERSET_PORT
#   superset.sh bootstrap [--force] the bootstrap only (--force: re-import the bundle)
#   superset.sh export              the bundle's dashboards as Superset has them now -> superset/assets
#   superset.sh cli <args>          any superset command with the stack's configuration
source "$(dirname "$0")/common.sh"
require SUPERSET_PORT SUPERSET_WORKERS SUPERSET_ADMIN_USER SUPERSET_ADMIN_PASSWORD SUPERSET_SECRET_KEY \
  SUPERSET_DB POSTGRES_USER POSTGRES_PASSWORD POSTGRES_HOST POSTGRES_PORT \
  TRINO_HOST TRINO_PORT TRINO_USER TRINO_CATALOG
venv="$ROOT/.venvs/superset"
need_file "$venv/bin/superset"
need_file "$ROOT/.venv/bin/python"
# Development secrets are refused outside dev, by the platform's own settings (common/settings.py),
# which name the setting.
"$ROOT/.venv/bin/python" -c '
import sys
from common.settings import SettingsError, superset_settings
try:
    superset_settings()
except SettingsError as exc:
    sys.exit(f"[superset] FAILED: {exc}")
' || exit 1
export SUPERSET_CONFIG_PATH="$ROOT/superset/superset_config.py"
export SUPERSET_HOME="$VAR/data/superset"
export FLASK_APP=superset
mkdir -p "$SUPERSET_HOME"
bootstrap() { "$venv/bin/python" "$ROOT/superset/bootstrap.py" "$@"; }
cmd="${1:-serve}"
case "$cmd" in
  serve)
    bootstrap import
    if [[ -x "$venv/bin/gunicorn" ]]; then
      # one worker process with threads: dashboards fan out a query per chart, memory stays low
      exec "$venv/bin/gunicorn" --bind "$BIND_HOST:$SUPERSET_PORT" --workers "$SUPERSET_WORKERS" \
        --worker-class gthread --threads "${SUPERSET_THREADS:-8}" --timeout 120 \
        --limit-request-line 0 --limit-request-field_size 0 --error-logfile - \
        "superset.app:create_app()"
    fi
    exec "$venv/bin/superset" run --host "$BIND_HOST" --port "$SUPERSET_PORT" --with-threads ;;
  bootstrap) shift; bootstrap import "$@" ;;
  export) bootstrap export ;;
  cli) shift; exec "$venv/bin/superset" "$@" ;;
  *) fail "unknown superset command '$cmd'" ;;
esac
