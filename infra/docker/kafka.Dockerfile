# Kafka (KRaft) with the same JMX → Prometheus agent and rules as the native stack.
FROM apache/kafka:4.1.1
ARG JMX_EXPORTER_VERSION=1.0.1
ADD --chown=appuser:appuser \
    https://repo1.maven.org/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/${JMX_EXPORTER_VERSION}/jmx_prometheus_javaagent-${JMX_EXPORTER_VERSION}.jar \
    /opt/jmx/agent.jar
COPY infra/config/jmx/kafka.yaml /opt/jmx/kafka.yaml
ENV KAFKA_OPTS="-javaagent:/opt/jmx/agent.jar=7071:/opt/jmx/kafka.yaml"
