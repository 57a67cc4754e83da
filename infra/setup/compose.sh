#!/usr/bin/env bash
# `make setup-compose`: everything Docker Compose needs, from package registries only.
#   1. a running Docker engine: Debian's docker.io when none answers (started here as a daemon);
#   2. the compose CLI plugin: the docker-compose that `make setup` builds from the Go module proxy;
#   3. the base image every project image builds FROM (debian:bookworm-slim): pulled where a
#      container registry answers (a laptop), else made here with debootstrap + `docker import`.
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step_engine() {
  if docker info >/dev/null 2>&1; then skip "docker engine ($(docker info -f '{{.ServerVersion}}'))"; return; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    info "docker engine: installing Debian's docker.io"
    apt_install docker.io
  fi
  if ! command -v docker >/dev/null 2>&1; then die "docker engine" "no docker CLI after installing docker.io" ""; fi
  info "docker engine: starting dockerd (log: $CACHE/dockerd.log)"
  # systemd where it runs the machine, else a daemon of our own that outlives this script
  if [[ -d /run/systemd/system ]] && systemctl start docker >/dev/null 2>&1; then :; else
    setsid nohup dockerd --log-level=warn >"$CACHE/dockerd.log" 2>&1 </dev/null &
  fi
  local i
  for i in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { ok "docker engine ($(docker info -f '{{.ServerVersion}}'), $(docker info -f '{{.Driver}}'))"; return; }
    sleep 1
  done
  die "docker engine" "dockerd did not answer within 60 s" "$CACHE/dockerd.log"
}

step_plugin() {
  local plugins="$HOME/.docker/cli-plugins"
  if docker compose version >/dev/null 2>&1; then skip "compose plugin ($(docker compose version --short))"; return; fi
  [[ -x "$BIN/docker-compose" ]] || GO_TOOLS=docker-compose "$ROOT/infra/setup/setup.sh" go_tools
  mkdir -p "$plugins"
  ln -sf "$BIN/docker-compose" "$plugins/docker-compose"
  docker compose version >/dev/null 2>&1 || die "compose plugin" "docker compose does not run $BIN/docker-compose" ""
  ok "compose plugin $COMPOSE_VERSION"
}

step_base_image() {
  local image="$BASE_IMAGE"
  if docker image inspect "$image" >/dev/null 2>&1; then skip "base image $image"; return; fi
  # by digest when one is pinned, then tagged with the name the Dockerfile builds FROM
  local ref="$image${BASE_IMAGE_DIGEST:+@$BASE_IMAGE_DIGEST}"
  info "base image $image: trying the container registry ($ref)"
  if timeout 60 docker pull -q "$ref" >"$CACHE/base-pull.log" 2>&1 && docker tag "$ref" "$image"; then
    ok "base image $image (pulled $ref)"; return
  fi
  info "base image $image: no registry answered; building it with debootstrap (log: $CACHE/debootstrap.log)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  local rootfs="$CACHE/rootfs-bookworm"
  rm -rf "$rootfs"
  # debootstrap's own default mirror; the image then takes this machine's apt sources (its setting)
  debootstrap --variant=minbase bookworm "$rootfs" >"$CACHE/debootstrap.log" 2>&1 \
    || die "base image" "debootstrap failed" "$CACHE/debootstrap.log"
  if [[ -d /etc/apt/sources.list.d ]] && compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    cp /etc/apt/sources.list.d/*.sources "$rootfs/etc/apt/sources.list.d/" && rm -f "$rootfs/etc/apt/sources.list"
  fi
  # the machine's own certificate authorities (a TLS-inspecting proxy's, say): apt, pip, uv, Maven
  # and Go inside the builds trust what this machine trusts (ca-certificates adds them to the bundle)
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$rootfs/usr/local/share/ca-certificates" && cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  # slim like the upstream image: no apt lists, docs or man pages
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/tmp/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$image" >/dev/null || die "base image" "docker import failed" ""
  rm -rf "$rootfs"
  ok "base image $image (debootstrap, $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
}

ALL_STEPS=(engine plugin base_image)
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${ALL_STEPS[@]}")
for s in "${steps[@]}"; do
  declare -F "step_$s" >/dev/null || die "setup-compose" "unknown step '$s' (known: ${ALL_STEPS[*]})" ""
  "step_$s"
done
