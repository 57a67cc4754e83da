#!/usr/bin/env bash
# Migrates Superset's metadata DB, ensures the admin user and the Trino database, then serves.
set -euo pipefail
superset db upgrade
superset fab create-admin --username admin --firstname Fraud --lastname Admin \
  --email admin@example.com --password "$SUPERSET_ADMIN_PASSWORD" || true
superset init
superset set-database-uri --database_name "Lakehouse (Trino)" \
  --uri "trino://${TRINO_USER}@${TRINO_HOST}:${TRINO_PORT}/${TRINO_CATALOG}" || true
exec gunicorn --bind 0.0.0.0:8088 --workers 2 --timeout 120 "superset.app:create_app()"
