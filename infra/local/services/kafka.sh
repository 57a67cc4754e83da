#!/usr/bin/env bash
# Kafka broker + controller in one JVM (KRaft, single node), from the Maven Central jars.
source "$(dirname "$0")/common.sh"
require KAFKA_PORT KAFKA_INTERNAL_PORT KAFKA_INTERNAL_HOST KAFKA_CONTROLLER_PORT KAFKA_METRICS_PORT KAFKA_HEAP
libs="$CACHE/jvm/kafka/libs"
need_file "$libs/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar"
agent="$CACHE/jvm/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar"
need_file "$agent"
export KAFKA_DATA_DIR="$VAR/data/kafka" BIND_HOST
conf="$RUN/kafka"; mkdir -p "$conf" "$KAFKA_DATA_DIR"
render "$ROOT/infra/config/kafka/server.properties" >"$conf/server.properties"
java=("$JAVA17_HOME/bin/java" -cp "$libs/*" -Dlog4j2.configurationFile="$ROOT/infra/config/kafka/log4j2.yaml")
if [[ ! -f "$KAFKA_DATA_DIR/meta.properties" ]]; then
  cluster_id="$("${java[@]}" kafka.tools.StorageTool random-uuid)"
  "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$conf/server.properties"
fi
exec "${java[@]}" -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
  -javaagent:"$agent=$BIND_HOST:$KAFKA_METRICS_PORT:$ROOT/infra/config/jmx/kafka.yaml" \
  kafka.Kafka "$conf/server.properties"
