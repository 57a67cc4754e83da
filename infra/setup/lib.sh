# Helpers of infra/setup/setup.sh and compose.sh (sourced, not run): the repository's paths and
# pinned versions, logging, stamps, downloads, Debian packages and Go builds.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../versions.env
source "$ROOT/infra/versions.env"
CACHE="$ROOT/.cache"
BIN="$CACHE/bin"
mkdir -p "$CACHE/stamps" "$CACHE/downloads" "$BIN"

info() { printf '\033[36m[setup]\033[0m %s\n' "$*"; }
ok() { printf '\033[32m[setup] ok\033[0m   %s\n' "$*"; }
skip() { printf '\033[90m[setup] cached %s\033[0m\n' "$*"; }

# die COMPONENT CAUSE LOG — one line naming what failed, why, and the log to read.
die() {
  local what="$1" cause="$2" log="${3:-}"
  printf '\033[31m[setup] FAILED\033[0m %s: %s\n' "$what" "$cause" >&2
  if [[ -n "$log" && -f "$log" ]]; then
    printf '         log: %s (last lines below)\n' "$log" >&2
    tail -n 15 "$log" | sed 's/^/         | /' >&2
  fi
  exit 1
}

# apt_install SPEC... — Debian packages (name=version) without starting their daemons: policy-rc.d
# keeps the packages' init scripts from starting system-wide services; the stacks run their own.
apt_install() {
  [[ $EUID -eq 0 ]] || die "apt" "installing $* needs root (run make setup as root or with sudo)" ""
  local log="$CACHE/apt.log" created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  local rc=0
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    info "apt: refreshing package lists and retrying"
    apt-get update -q >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 || rc=$?
  fi
  [[ $created_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || die "apt" "apt-get install $* failed" "$log"
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$2" "'$1' is not installed" ""; }

hash_files() { cat "$@" | sha256sum | cut -c1-16; }

# stamp_ok NAME KEY [FILE...] — true when the stamp records KEY and every FILE exists.
stamp_ok() {
  local name="$1" key="$2"; shift 2
  [[ -f "$CACHE/stamps/$name" && "$(cat "$CACHE/stamps/$name")" == "$key" ]] || return 1
  local f; for f in "$@"; do [[ -e "$f" ]] || return 1; done
}
stamp_write() { printf '%s' "$2" >"$CACHE/stamps/$1"; }

# fetch URL DEST WHAT [SHA1] — download with retries into DEST atomically; verify SHA1 if given.
fetch() {
  local url="$1" dest="$2" what="$3" sha1="${4:-}"
  if [[ -s "$dest" ]] && { [[ -z "$sha1" ]] || [[ "$(sha1sum "$dest" | cut -d' ' -f1)" == "$sha1" ]]; }; then return 0; fi
  info "$what: downloading $url"
  mkdir -p "$(dirname "$dest")"
  curl -fsSL --retry 5 --retry-delay 3 --retry-all-errors -o "$dest.part" "$url" \
    || { rm -f "$dest.part"; die "$what" "download failed: $url" ""; }
  if [[ -n "$sha1" ]] && [[ "$(sha1sum "$dest.part" | cut -d' ' -f1)" != "$sha1" ]]; then
    rm -f "$dest.part"; die "$what" "checksum mismatch for $url" ""
  fi
  mv "$dest.part" "$dest"
}

# Maven with the project's settings (Maven Central only) and local repository
MVN=(mvn -q -B -s "$ROOT/infra/maven/settings.xml" -Dmaven.repo.local="$CACHE/m2")
# fetch_maven GROUP ARTIFACT VERSION EXT DEST WHAT — one artifact from Maven Central, by Maven
# (its own default repository; checksums verified, a mismatch fails).
fetch_maven() {
  local g="$1" a="$2" v="$3" ext="$4" dest="$5" what="$6"
  [[ -s "$dest" ]] && return 0
  info "$what: resolving $g:$a:$v ($ext) from Maven Central"
  local out; out="$(mktemp -d "$CACHE/downloads/.maven.XXXXXX")"
  "${MVN[@]}" --strict-checksums org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$g:$a:$v:$ext" -DoutputDirectory="$out" >"$CACHE/mvn-$a.log" 2>&1 \
    || { rm -rf "$out"; die "$what" "Maven could not resolve $g:$a:$v ($ext)" "$CACHE/mvn-$a.log"; }
  mkdir -p "$(dirname "$dest")" && mv "$out/$a-$v.$ext" "$dest" && rm -rf "$out"
}

# go_build_module NAME MODULE VERSION PKG LDFLAGS — build a Go tool from the module proxy's zip.
# (`go install mod@ver` asks the proxy for the module's version list, which some proxies refuse.)
go_build_module() {
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="$5"
  local out="$BIN/$name" key="$module@$version"
  if stamp_ok "go-$name" "$key" "$out"; then skip "$name $version"; return; fi
  info "$name $version: building from the Go module proxy"
  # the first proxy of Go's own setting (its built-in default unless GOPROXY says otherwise)
  local proxy; proxy="$("$GO" env GOPROXY)"; proxy="${proxy%%,*}"
  local src="$CACHE/src/$name-$version" zip="$CACHE/downloads/$name-$version.zip"
  fetch "$proxy/$(go_escape "$module")/@v/$version.zip" "$zip" "$name"
  rm -rf "$src" && mkdir -p "$src"
  (cd "$src" && unzip -q "$zip") || die "$name" "could not unpack $zip" ""
  local dir="$src/$module@$version" log="$CACHE/go-build-$name.log"
  (cd "$dir" && GOPATH="$CACHE/go" GOFLAGS=-modcacherw CGO_ENABLED=0 GOTOOLCHAIN=local \
    "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$pkg") >"$log" 2>&1 \
    || die "$name" "go build failed" "$log"
  rm -rf "$src"
  stamp_write "go-$name" "$key"
  ok "$name $version"
}

# Module paths in proxy URLs escape capitals as !lower.
go_escape() { sed -E 's/([A-Z])/!\L\1/g' <<<"$1"; }
