#!/usr/bin/env bash
# PostgreSQL 15 from Debian; the superuser is $POSTGRES_USER. The server refuses to run as root,
# so under root it runs as the `postgres` system user.
source "$(dirname "$0")/common.sh"
require POSTGRES_PORT POSTGRES_USER POSTGRES_PASSWORD
bin=/usr/lib/postgresql/15/bin
need_file "$bin/postgres"
data="$VAR/data/postgres"; sock="$RUN/postgres"
mkdir -p "$data" "$sock"
as=()
if [[ $EUID -eq 0 ]]; then
  chown postgres:postgres "$data" "$sock"; chmod 700 "$data"
  as=(runuser -u postgres --)
  "${as[@]}" test -w "$data" || fail "the postgres user cannot write $data (is the checkout in a private home directory?)"
fi
if [[ ! -f "$data/PG_VERSION" ]]; then
  pw="$(mktemp)"; printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"; chmod 644 "$pw"
  "${as[@]}" "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile="$pw" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pw"
fi
# Off loopback (a compose container), the other containers of the project's network connect too.
if ! loopback_only && ! grep -q '^host all all samenet' "$data/pg_hba.conf"; then
  "${as[@]}" sh -c "echo 'host all all samenet scram-sha-256' >>'$data/pg_hba.conf'"
fi
exec "${as[@]}" "$bin/postgres" -D "$data" -p "$POSTGRES_PORT" -k "$sock" -c listen_addresses="$BIND_HOST" \
  -c shared_buffers=128MB -c max_connections=200 -c log_min_messages=warning
