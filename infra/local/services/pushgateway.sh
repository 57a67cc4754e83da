#!/usr/bin/env bash
# Prometheus Pushgateway (Debian package): where batch jobs (the producer CLI: make produce,
# make replay, make replay-dlq) leave their metrics for Prometheus to scrape after they exit.
source "$(dirname "$0")/common.sh"
require PUSHGATEWAY_PORT
mkdir -p "$VAR/data/pushgateway"
exec prometheus-pushgateway --web.listen-address="$BIND_HOST:$PUSHGATEWAY_PORT" \
  --persistence.file="$VAR/data/pushgateway/metrics" --persistence.interval=1m --log.level=warn
