#!/usr/bin/env bash
# Trino coordinator (+worker) on Java 25 with the Delta Lake catalog of infra/config/trino/catalog.
source "$(dirname "$0")/common.sh"
require TRINO_PORT TRINO_HEAP TRINO_METRICS_PORT S3_ENDPOINT_URL S3_REGION S3_ACCESS_KEY S3_SECRET_KEY LAKEHOUSE_BUCKET \
  POSTGRES_HOST POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD PREDICTIONS_DB
home="$CACHE/jvm/trino-server-$TRINO_VERSION"
need_file "$home/bin/launcher"
[[ -x "$JAVA25_HOME/bin/java" ]] || fail "Trino $TRINO_VERSION needs Java 25: $JAVA25_HOME/bin/java not found (set JAVA25_HOME)"
export BIND_HOST TRINO_DATA_DIR="$VAR/data/trino" JMX_AGENT="$CACHE/jvm/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar"
export JMX_CONFIG="$ROOT/infra/config/jmx/trino.yaml"
need_file "$JMX_AGENT"
etc="$RUN/trino/etc"; rm -rf "$etc"; mkdir -p "$etc/catalog" "$TRINO_DATA_DIR"
for f in node.properties config.properties jvm.config log.properties; do
  render "$ROOT/infra/config/trino/local/$f" >"$etc/$f"
done
cp "$ROOT"/infra/config/trino/catalog/*.properties "$etc/catalog/"
export JAVA_HOME="$JAVA25_HOME" PATH="$JAVA25_HOME/bin:$PATH"
exec "$home/bin/launcher" run --etc-dir "$etc" --data-dir "$TRINO_DATA_DIR"
