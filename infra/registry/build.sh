#!/usr/bin/env bash
# Installs Apicurio Registry (Confluent-compatible Schema Registry) for the native local stack
# from Maven Central: resolves io.apicurio:apicurio-registry-app:<version>:tar.gz:all (the
# upstream Quarkus fast-jar distribution) with Maven and unpacks it into
# .cache/registry/apicurio-registry-<version>/. Idempotent: does nothing when that directory
# already holds a complete unpack made from the current pom.xml. FORCE=1 reinstalls.
#
# Env: MAVEN_REPO_LOCAL (default <repo>/.cache/m2), MVN (default mvn), FORCE=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
POM="$HERE/pom.xml"
CACHE_DIR="$ROOT/.cache/registry"
M2="${MAVEN_REPO_LOCAL:-$ROOT/.cache/m2}"
MVN="${MVN:-mvn}"
SETTINGS="$ROOT/infra/maven/settings.xml"

die() { echo "registry/build.sh: ERROR: $*" >&2; exit 1; }

VERSION="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$VERSION" ]] || die "cannot read <apicurio.version> from $POM"
DEST="$CACHE_DIR/apicurio-registry-$VERSION"
STAMP="$DEST/.build-stamp"
want_stamp="$(sha256sum "$POM" | cut -d' ' -f1)"

if [[ "${FORCE:-0}" != "1" && -f "$DEST/quarkus-run.jar" && -f "$STAMP" \
      && "$(cat "$STAMP")" == "$want_stamp" ]]; then
  echo "registry/build.sh: Apicurio Registry $VERSION already installed in $DEST (up to date)"
  exit 0
fi

command -v "$MVN" >/dev/null 2>&1 || die "'$MVN' not found: install Maven (apt-get install maven)"
mkdir -p "$CACHE_DIR" "$M2"

STAGING="$(mktemp -d "$CACHE_DIR/.staging-$VERSION.XXXXXX")"
trap 'rm -rf "$STAGING"' EXIT

settings_args=()
[[ -f "$SETTINGS" ]] && settings_args=(-s "$SETTINGS")

echo "registry/build.sh: resolving io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all from Maven Central (~160 MB on first run)"
start=$(date +%s)
if ! "$MVN" -B -q "${settings_args[@]}" -f "$POM" \
      -Dmaven.repo.local="$M2" -Dregistry.unpack.dir="$STAGING" package; then
  die "Maven could not resolve/unpack io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all (see the Maven output above; is Maven Central reachable?)"
fi
[[ -f "$STAGING/quarkus-run.jar" && -d "$STAGING/lib/main" ]] \
  || die "unpacked distribution in $STAGING has no quarkus-run.jar / lib/main: unexpected artifact layout"

chmod 755 "$STAGING"
rm -rf "$DEST"
mv "$STAGING" "$DEST"
trap - EXIT
echo "$want_stamp" > "$STAMP"
echo "registry/build.sh: installed Apicurio Registry $VERSION in $DEST ($(( $(date +%s) - start )) s)"
