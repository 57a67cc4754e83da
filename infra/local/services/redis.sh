#!/usr/bin/env bash
# Redis 7 from Debian: the online feature store. AOF persistence so features survive a restart.
source "$(dirname "$0")/common.sh"
require REDIS_PORT
mkdir -p "$VAR/data/redis"
exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$VAR/data/redis" --appendonly yes \
  --save "" --daemonize no --logfile "" --maxmemory 1gb --maxmemory-policy noeviction
