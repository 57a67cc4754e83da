#!/usr/bin/env bash
# Redis 7 from Debian: the online feature store. AOF persistence so features survive a restart.
source "$(dirname "$0")/common.sh"
require REDIS_PORT
mkdir -p "$VAR/data/redis"
# protected mode refuses every client but loopback while no password is set: off loopback (a compose
# container on the project's own network) the other containers must reach it
protected=yes; loopback_only || protected=no
exec redis-server --port "$REDIS_PORT" --bind "$BIND_HOST" --protected-mode "$protected" --dir "$VAR/data/redis" --appendonly yes \
  --save "" --daemonize no --logfile "" --maxmemory 1gb --maxmemory-policy noeviction
