#!/usr/bin/env bash
# Readiness probes of every service: process-compose and `make status-local` natively, the
# healthchecks in compose (run inside the container, where the service listens on all addresses).
#   probe.sh <service>   exit 0 when the service answers like a ready one
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="$ROOT/.venv/bin/python"
http_ok() { curl -fsS -m 3 -o /dev/null "$1"; }
# any HTTP status at all (an S3 endpoint answers 403 to anonymous requests)
http_any() { [[ "$(curl -s -m 3 -o /dev/null -w '%{http_code}' "$1")" =~ ^[1-5][0-9][0-9]$ ]]; }
case "${1:?usage: probe.sh <service>}" in
  object-store) http_any "http://127.0.0.1:$S3_PORT/" ;;
  kafka) "$PY" -m common.health kafka ;;
  schema-registry) http_ok "http://127.0.0.1:$SCHEMA_REGISTRY_MANAGEMENT_PORT/health/ready" ;;
  postgres) pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$POSTGRES_USER" -d postgres ;;
  redis) [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" == PONG ]] ;;
  trino) "$PY" -m common.health trino ;;
  mlflow) http_ok "http://127.0.0.1:$MLFLOW_PORT/health" ;;
  airflow-api-server) http_ok "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" ;;
  superset) http_ok "http://127.0.0.1:$SUPERSET_PORT/health" ;;
  # a grep on the health JSON: starting a Python interpreter every few seconds costs a core's slice
  airflow-scheduler) curl -fsS -m 3 "$AIRFLOW_API_URL/api/v2/monitor/health" | grep -q '"scheduler":{"status":"healthy"' ;;
  airflow-dag-processor) curl -fsS -m 3 "$AIRFLOW_API_URL/api/v2/monitor/health" | grep -q '"dag_processor":{"status":"healthy"' ;;
  prometheus) http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" ;;
  alertmanager) http_ok "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" ;;
  pushgateway) http_ok "http://127.0.0.1:$PUSHGATEWAY_PORT/-/ready" ;;
  postgres-exporter) http_ok "http://127.0.0.1:$POSTGRES_EXPORTER_PORT/metrics" ;;
  redis-exporter) http_ok "http://127.0.0.1:$REDIS_EXPORTER_PORT/metrics" ;;
  statsd-exporter) http_ok "http://127.0.0.1:$STATSD_EXPORTER_PORT/metrics" ;;
  # alive, not ready: the stack comes up before any model exists (/ready says whether one is loaded)
  serving) http_ok "http://127.0.0.1:$SERVING_PORT/health" ;;
  online-applier) http_ok "http://127.0.0.1:$ONLINE_APPLIER_METRICS_PORT/metrics" ;;
  # ready when its queries run (none stopped), not merely when the metrics port answers
  streaming) m="$(curl -fsS -m 3 "http://127.0.0.1:$STREAMING_METRICS_PORT/metrics")" && grep -q '^fraud_streaming_query_active{.*} 1' <<<"$m" && ! grep -q '^fraud_streaming_query_active{.*} 0' <<<"$m" ;;
  *) echo "probe.sh: no probe for '$1'" >&2; exit 2 ;;
esac
