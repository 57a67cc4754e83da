# Trino with the shared Delta catalog (infra/config/trino/catalog) and the JMX → Prometheus agent.
FROM trinodb/trino:476
ARG JMX_EXPORTER_VERSION=1.0.1
USER root
ADD https://repo1.maven.org/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/${JMX_EXPORTER_VERSION}/jmx_prometheus_javaagent-${JMX_EXPORTER_VERSION}.jar \
    /usr/lib/trino/jmx/agent.jar
COPY infra/config/jmx/trino.yaml /usr/lib/trino/jmx/trino.yaml
COPY infra/config/trino/catalog/ /etc/trino/catalog/
RUN chmod 644 /usr/lib/trino/jmx/* \
 && echo "-javaagent:/usr/lib/trino/jmx/agent.jar=7072:/usr/lib/trino/jmx/trino.yaml" >> /etc/trino/jvm.config
USER trino
