#!/usr/bin/env bash
# Prometheus (Debian package) with the shared config and rules of monitoring/prometheus; the
# native stack's scrape targets are rendered from monitoring/prometheus/targets/local.
source "$(dirname "$0")/common.sh"
require PROMETHEUS_PORT
conf="$RUN/prometheus"; rm -rf "$conf"; mkdir -p "$conf/targets" "$VAR/data/prometheus"
cp "$ROOT/monitoring/prometheus/prometheus.yml" "$conf/prometheus.yml"
cp -r "$ROOT/monitoring/prometheus/rules" "$conf/rules"
# scrape targets of this runtime: local (loopback ports) or compose (service names)
for t in "$ROOT"/monitoring/prometheus/targets/"${FRAUD_RUNTIME:-local}"/*.yml; do render "$t" >"$conf/targets/$(basename "$t")"; done
exec prometheus --config.file="$conf/prometheus.yml" --storage.tsdb.path="$VAR/data/prometheus" \
  --storage.tsdb.retention.time=15d --web.listen-address="$BIND_HOST:$PROMETHEUS_PORT" --web.enable-lifecycle \
  --log.level=warn
