#!/usr/bin/env bash
# Prometheus exporters for the services that have no /metrics of their own.
#   exporter.sh postgres | redis | statsd
source "$(dirname "$0")/common.sh"
case "${1:?usage: exporter.sh postgres|redis|statsd}" in
  postgres)
    require POSTGRES_USER POSTGRES_PASSWORD POSTGRES_PORT POSTGRES_EXPORTER_PORT
    export DATA_SOURCE_NAME="postgresql://$POSTGRES_USER:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/postgres?sslmode=disable"
    exec prometheus-postgres-exporter --web.listen-address="127.0.0.1:$POSTGRES_EXPORTER_PORT" --log.level=warn ;;
  redis)
    require REDIS_PORT REDIS_EXPORTER_PORT
    exec prometheus-redis-exporter -redis.addr "redis://127.0.0.1:$REDIS_PORT" \
      -web.listen-address "127.0.0.1:$REDIS_EXPORTER_PORT" ;;
  statsd)
    require STATSD_PORT STATSD_EXPORTER_PORT
    need_file "$CACHE/bin/statsd_exporter"
    exec "$CACHE/bin/statsd_exporter" --web.listen-address="127.0.0.1:$STATSD_EXPORTER_PORT" \
      --statsd.listen-udp="127.0.0.1:$STATSD_PORT" --statsd.listen-tcp= --log.level=warn ;;
  *) fail "unknown exporter '$1'" ;;
esac
