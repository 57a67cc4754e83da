#!/usr/bin/env bash
# Prometheus exporters for the services that have no /metrics of their own.
#   exporter.sh postgres | redis | statsd
source "$(dirname "$0")/common.sh"
case "${1:?usage: exporter.sh postgres|redis|statsd}" in
  postgres)
    require POSTGRES_USER POSTGRES_PASSWORD POSTGRES_HOST POSTGRES_PORT POSTGRES_EXPORTER_PORT
    export DATA_SOURCE_NAME="postgresql://$POSTGRES_USER:$POSTGRES_PASSWORD@$POSTGRES_HOST:$POSTGRES_PORT/postgres?sslmode=disable"
    exec prometheus-postgres-exporter --web.listen-address="$BIND_HOST:$POSTGRES_EXPORTER_PORT" --log.level=warn ;;
  redis)
    require REDIS_URL REDIS_EXPORTER_PORT
    exec prometheus-redis-exporter -redis.addr "$REDIS_URL" \
      -web.listen-address "$BIND_HOST:$REDIS_EXPORTER_PORT" ;;
  statsd)
    require STATSD_PORT STATSD_EXPORTER_PORT
    need_file "$CACHE/bin/statsd_exporter"
    exec "$CACHE/bin/statsd_exporter" --web.listen-address="$BIND_HOST:$STATSD_EXPORTER_PORT" \
      --statsd.listen-udp="$BIND_HOST:$STATSD_PORT" --statsd.listen-tcp= --log.level=warn ;;
  *) fail "unknown exporter '$1'" ;;
esac
