#!/usr/bin/env bash
# Runs Apicurio Registry in the foreground (exec: signals go straight to the JVM).
# Confluent-compatible API: http://<host>:$REGISTRY_PORT/apis/ccompat/v7
# Readiness probe:          http://<host>:$REGISTRY_MANAGEMENT_PORT/health/ready
#
# Environment (defaults in brackets):
#   REGISTRY_PORT             HTTP API port [8081]
#   REGISTRY_MANAGEMENT_PORT  health + /metrics port [REGISTRY_PORT+1]; the upstream default
#                             would be 9000, which the local stack's object store uses
#   REGISTRY_HOST             bind address of both ports [127.0.0.1]
#   REGISTRY_DB_URL           JDBC URL [jdbc:postgresql://127.0.0.1:5432/registry]
#   REGISTRY_DB_USER          [registry]
#   REGISTRY_DB_PASSWORD      [registry]
#   REGISTRY_JAVA_HOME        JDK/JRE 21+ to use; else JAVA_HOME if it is 21+ (the stack passes
#                             the Java 25 runtime of .venvs/java25)
#   REGISTRY_JAVA_OPTS        JVM options [-Xms64m -Xmx512m]
#   REGISTRY_ACCESS_LOG       true|false: log every HTTP request [false]
#   REGISTRY_HOME             unpacked distribution [<repo>/.cache/registry/apicurio-registry-<version>]
# The database must exist; the registry creates and migrates its own tables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

die() { echo "registry/run.sh: ERROR: $*" >&2; exit 1; }

VERSION="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$HERE/pom.xml" | head -n1)"
REGISTRY_HOME="${REGISTRY_HOME:-$ROOT/.cache/registry/apicurio-registry-$VERSION}"
[[ -f "$REGISTRY_HOME/quarkus-run.jar" ]] \
  || die "no Apicurio Registry in $REGISTRY_HOME: run infra/registry/build.sh first"

java_major() {  # prints the feature version of "$1/bin/java", or nothing
  "$1/bin/java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p' | head -n1
}
if [[ -n "${REGISTRY_JAVA_HOME:-}" ]]; then
  JH="$REGISTRY_JAVA_HOME"
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" && "$(java_major "$JAVA_HOME")" -ge 21 ]]; then
  JH="$JAVA_HOME"
else
  die "no Java 21+: set REGISTRY_JAVA_HOME (the stack uses \$JAVA25_HOME of infra/versions.env)"
fi
[[ -x "$JH/bin/java" ]] || die "no java at $JH/bin/java (set REGISTRY_JAVA_HOME to a JDK 21+)"
major="$(java_major "$JH")"
[[ -n "$major" && "$major" -ge 21 ]] \
  || die "Apicurio Registry $VERSION needs Java 21+, but $JH is Java ${major:-unknown} (set REGISTRY_JAVA_HOME)"

port="${REGISTRY_PORT:-8081}"
mgmt_port="${REGISTRY_MANAGEMENT_PORT:-$((port + 1))}"
host="${REGISTRY_HOST:-127.0.0.1}"

# Quarkus reads these environment variables as config (they outrank application.properties);
# passing the password this way keeps it out of `ps` output.
export QUARKUS_HTTP_PORT="$port"
export QUARKUS_HTTP_HOST="$host"
export QUARKUS_MANAGEMENT_PORT="$mgmt_port"
export QUARKUS_MANAGEMENT_HOST="$host"
export QUARKUS_HTTP_ACCESS_LOG_ENABLED="${REGISTRY_ACCESS_LOG:-false}"
export APICURIO_DATASOURCE_URL="${REGISTRY_DB_URL:-jdbc:postgresql://127.0.0.1:5432/registry}"
export APICURIO_DATASOURCE_USERNAME="${REGISTRY_DB_USER:-registry}"
export APICURIO_DATASOURCE_PASSWORD="${REGISTRY_DB_PASSWORD:-registry}"
[[ "$APICURIO_DATASOURCE_URL" == jdbc:postgresql:* ]] \
  || die "REGISTRY_DB_URL must be a jdbc:postgresql:// URL, got '$APICURIO_DATASOURCE_URL'"

read -r -a java_opts <<< "${REGISTRY_JAVA_OPTS:--Xms64m -Xmx512m}"

echo "registry/run.sh: Apicurio Registry $VERSION on Java $major: API http://$host:$port/apis/ccompat/v7, ready probe http://$host:$mgmt_port/health/ready, DB $APICURIO_DATASOURCE_URL" >&2
cd "$REGISTRY_HOME"
exec "$JH/bin/java" "${java_opts[@]}" \
  -Dquarkus.config.locations="$HERE/application.properties" \
  -jar "$REGISTRY_HOME/quarkus-run.jar"
