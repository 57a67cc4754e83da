#!/usr/bin/env bash
# Alertmanager (Debian package), single instance: clustering off.
source "$(dirname "$0")/common.sh"
require ALERTMANAGER_PORT
mkdir -p "$VAR/data/alertmanager"
exec prometheus-alertmanager --config.file="$ROOT/monitoring/alertmanager/alertmanager.yml" \
  --storage.path="$VAR/data/alertmanager" --web.listen-address="$BIND_HOST:$ALERTMANAGER_PORT" \
  --cluster.listen-address= --log.level=warn
