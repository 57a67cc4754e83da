#!/usr/bin/env bash
# Installs everything the native local stack needs, from package registries only:
# Debian packages, JVM artifacts from Maven Central, Go tools from the Go module proxy and the
# Python environments from PyPI (uv). Idempotent: each step records a stamp of its inputs under
# .cache/stamps and is skipped while the stamp and its outputs are intact, so a second run is quick.
#
#   infra/setup/setup.sh            # everything
#   infra/setup/setup.sh python jvm # only some steps
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
JVM="$CACHE/jvm"
mkdir -p "$JVM"

# --------------------------------------------------------------------------------------------
# The toolchains the other steps run: taken from the machine when it has them, else from Debian
# (a plain Debian bookworm, or the debian:bookworm-slim the compose images build on).
step_toolchain() {
  local missing=() spec
  [[ -x "$JAVA17_HOME/bin/java" ]] || missing+=("$(pin openjdk-17-jre-headless)")
  command -v mvn >/dev/null 2>&1 || missing+=("$(pin maven)")
  "python$PYTHON_VERSION" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("$(pin python3.11-venv)" "$(pin python3-venv)")
  command -v curl >/dev/null 2>&1 || missing+=("$(pin curl)")
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] || missing+=("$(pin ca-certificates)")
  command -v unzip >/dev/null 2>&1 || missing+=("$(pin unzip)")
  command -v envsubst >/dev/null 2>&1 || missing+=("$(pin gettext-base)")
  # the OpenMP runtime LightGBM's wheel links against (not bundled in the wheel)
  ldconfig -p | grep -q 'libgomp.so.1 ' || missing+=("$(pin libgomp1)")
  if [[ ${#missing[@]} -eq 0 ]]; then skip "toolchain (java 17, maven, python $PYTHON_VERSION, curl, unzip, envsubst, libgomp)"; return; fi
  info "toolchain: installing ${missing[*]}"
  apt_install "${missing[@]}"
  ok "toolchain"
}

# pin PACKAGE — PACKAGE=VERSION as DEBIAN_TOOLCHAIN pins it
pin() {
  local spec; for spec in $DEBIAN_TOOLCHAIN; do [[ "${spec%%=*}" == "$1" ]] && { echo "$spec"; return; }; done
  die "toolchain" "$1 has no pinned version in DEBIAN_TOOLCHAIN (infra/versions.env)" ""
}

# Go $GO_VERSION for the tools built from source: the machine's own `go` when it is that version,
# else Go's toolchain module of that version from the Go module proxy (what GOTOOLCHAIN fetches).
GO="$(command -v go || true)"
step_go() {
  if [[ -n "$GO" && "$("$GO" env GOVERSION 2>/dev/null)" == "go$GO_VERSION" ]]; then skip "go $GO_VERSION (this machine's)"; return; fi
  local root="$CACHE/go-toolchain/go$GO_VERSION"
  if [[ -x "$root/bin/go" ]]; then GO="$root/bin/go"; skip "go $GO_VERSION (toolchain module)"; return; fi
  local proxy="${GOPROXY:-}"
  if [[ -z "$proxy" ]]; then
    # Go's own default proxy, as the Go command states it (Debian's Go, when there is no Go at all)
    [[ -n "$GO" ]] || { apt_install "$(pin golang-go)"; GO="$(command -v go)"; }
    proxy="$("$GO" env GOPROXY)"
  fi
  proxy="${proxy%%,*}"
  local zip="$CACHE/downloads/go$GO_VERSION.zip" mod="golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64"
  fetch "$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip" "$zip" "go $GO_VERSION"
  rm -rf "$root" "$CACHE/go-toolchain/unpack" && mkdir -p "$CACHE/go-toolchain/unpack"
  unzip -q "$zip" -d "$CACHE/go-toolchain/unpack" || die "go" "could not unpack $zip" ""
  mv "$CACHE/go-toolchain/unpack/$mod" "$root" && rm -rf "$CACHE/go-toolchain/unpack" "$zip"
  # module zips keep no file modes: mark the commands executable, as the go command does
  chmod +x "$root"/bin/* "$root"/pkg/tool/*/*
  GO="$root/bin/go"
  [[ "$("$GO" env GOVERSION)" == "go$GO_VERSION" ]] || die "go" "$GO does not run" ""
  ok "go $GO_VERSION (toolchain module)"
}

# --------------------------------------------------------------------------------------------
step_apt() {
  local missing=()
  for spec in $DEBIAN_PACKAGES; do
    local pkg="${spec%%=*}" want="${spec#*=}" have
    have="$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null || true)"
    if [[ "$have" != "install ok installed $want" ]]; then missing+=("$spec"); fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then skip "debian packages"; return; fi
  info "debian packages: installing ${missing[*]}"
  apt_install "${missing[@]}"
  # Debian starts nothing here (policy-rc.d), but stop anything a previous install left running.
  for svc in redis-server prometheus prometheus-alertmanager prometheus-pushgateway prometheus-postgres-exporter prometheus-redis-exporter postgresql; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
  ok "debian packages"
}

# Debian's chromium for the real-browser tests (Playwright drives the system browser; no download)
step_browser() {
  local spec="$DEBIAN_BROWSER" have
  have="$(dpkg-query -W -f='${Status} ${Version}' "${spec%%=*}" 2>/dev/null || true)"
  if [[ "$have" == "install ok installed ${spec#*=}" ]]; then skip "browser (${spec%%=*})"; return; fi
  info "browser: installing $spec"
  apt_install "$spec"
  ok "browser (${spec%%=*})"
}

# --------------------------------------------------------------------------------------------
UV="$CACHE/uv-bootstrap/bin/uv"
step_uv() {
  if [[ -x "$UV" ]] && [[ "$("$UV" --version | awk '{print $2}')" == "$UV_VERSION" ]]; then skip "uv $UV_VERSION"; return; fi
  info "uv $UV_VERSION: installing from PyPI"
  local py
  py="$(command -v "python$PYTHON_VERSION" || command -v python3)" || die "uv" "no python$PYTHON_VERSION on PATH" ""
  rm -rf "$CACHE/uv-bootstrap"
  "$py" -m venv "$CACHE/uv-bootstrap" || die "uv" "could not create a venv with $py" ""
  "$CACHE/uv-bootstrap/bin/pip" install -q "uv==$UV_VERSION" >"$CACHE/uv-install.log" 2>&1 \
    || die "uv" "pip install uv==$UV_VERSION failed" "$CACHE/uv-install.log"
  ok "uv $UV_VERSION"
}

step_python() {
  export UV_CACHE_DIR="$CACHE/uv" UV_PYTHON_DOWNLOADS=never
  local env group
  # name:group — the platform env is the project's default (.venv); the others are service envs.
  for spec in ".venv:dev" ".venvs/mlflow:mlflow" ".venvs/airflow:airflow" ".venvs/dbt:dbt" ".venvs/java25:java25" ".venvs/superset:superset"; do
    env="${spec%%:*}"; group="${spec#*:}"
    local log="$CACHE/uv-sync-${group}.log"
    # --compile-bytecode: .pyc files are written once here, so no process (service, CLI, test) has
    # to compile its imports at start — even where PYTHONDONTWRITEBYTECODE is set, as on this
    # machine, when every start would otherwise compile thousands of modules (~5 s for serving).
    local args=(sync --frozen --python "$PYTHON_VERSION" --compile-bytecode)
    if [[ "$group" == "dev" ]]; then args+=(--group dev); else args+=(--only-group "$group" --no-install-project); fi
    (cd "$ROOT" && UV_PROJECT_ENVIRONMENT="$ROOT/$env" "$UV" "${args[@]}") >"$log" 2>&1 \
      || die "python env $env" "uv sync failed" "$log"
    ok "python env $env ($group)"
  done
  local have
  have="$("$ROOT/.venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')"
  [[ "$have" == "$SPARK_VERSION" ]] || die "python env .venv" "pyspark $have in uv.lock but infra/versions.env pins SPARK_VERSION=$SPARK_VERSION; make them agree" ""
  "$ROOT/$JAVA25_HOME/bin/java" -version >/dev/null 2>&1 || die "java 25" "$ROOT/$JAVA25_HOME/bin/java does not run" ""
}

# --------------------------------------------------------------------------------------------

step_kafka() {
  local out="$JVM/kafka/libs" key="kafka-$KAFKA_VERSION-$LOG4J_VERSION-$SLF4J_VERSION-$(hash_files "$ROOT/infra/maven/kafka/pom.xml")"
  if stamp_ok kafka "$key" "$out/kafka_$KAFKA_SCALA-$KAFKA_VERSION.jar"; then skip "kafka $KAFKA_VERSION"; return; fi
  info "kafka $KAFKA_VERSION: resolving jars from Maven Central"
  need_cmd mvn "kafka"
  rm -rf "$out"
  "${MVN[@]}" -f "$ROOT/infra/maven/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    -Dslf4j.version="$SLF4J_VERSION" dependency:copy-dependencies -DoutputDirectory="$out" >"$CACHE/mvn-kafka.log" 2>&1 \
    || die "kafka" "maven could not resolve kafka_$KAFKA_SCALA:$KAFKA_VERSION" "$CACHE/mvn-kafka.log"
  stamp_write kafka "$key"
  ok "kafka $KAFKA_VERSION"
}

step_spark_jars() {
  local out="$JVM/spark-jars" key="spark-$SPARK_VERSION-$DELTA_VERSION-$HADOOP_VERSION-$(hash_files "$ROOT/infra/maven/spark/pom.xml")"
  if stamp_ok spark-jars "$key" "$out/delta-spark_2.13-$DELTA_VERSION.jar"; then skip "spark jars (kafka, delta, s3a)"; return; fi
  info "spark jars: resolving spark-sql-kafka $SPARK_VERSION, delta-spark $DELTA_VERSION, hadoop-aws $HADOOP_VERSION"
  need_cmd mvn "spark jars"
  rm -rf "$out"
  "${MVN[@]}" -f "$ROOT/infra/maven/spark/pom.xml" -Dspark.version="$SPARK_VERSION" -Ddelta.version="$DELTA_VERSION" \
    -Dhadoop.version="$HADOOP_VERSION" dependency:copy-dependencies -DoutputDirectory="$out" >"$CACHE/mvn-spark.log" 2>&1 \
    || die "spark jars" "maven could not resolve the Spark connector jars" "$CACHE/mvn-spark.log"
  stamp_write spark-jars "$key"
  ok "spark jars"
}

step_trino() {
  local dir="$JVM/trino-server-$TRINO_VERSION" key="trino-$TRINO_VERSION-delta-lake,tpch,memory,postgresql,geospatial"
  if stamp_ok trino "$key" "$dir/bin/launcher"; then skip "trino $TRINO_VERSION"; return; fi
  local tgz="$CACHE/downloads/trino-server-$TRINO_VERSION.tar.gz"
  fetch_maven "io.trino" "trino-server" "$TRINO_VERSION" "tar.gz" "$tgz" "trino"
  info "trino $TRINO_VERSION: unpacking (plugins: delta-lake, tpch, memory, postgresql, geospatial)"
  rm -rf "$dir"
  tar xzf "$tgz" -C "$JVM" || die "trino" "could not unpack $tgz" ""
  # Only the plugins the platform uses: saves ~1 GiB of disk and a few seconds of start-up.
  # (postgresql needs geospatial's Geometry type to start)
  find "$dir/plugin" -mindepth 1 -maxdepth 1 -type d \
    ! -name delta-lake ! -name tpch ! -name memory ! -name postgresql ! -name geospatial -exec rm -rf {} +
  stamp_write trino "$key"
  ok "trino $TRINO_VERSION"
}

step_jmx_exporter() {
  local jar="$JVM/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar"
  if [[ -s "$jar" ]]; then skip "jmx exporter $JMX_EXPORTER_VERSION"; return; fi
  fetch_maven "io.prometheus.jmx" "jmx_prometheus_javaagent" "$JMX_EXPORTER_VERSION" "jar" "$jar" "jmx exporter"
  ok "jmx exporter $JMX_EXPORTER_VERSION"
}

# --------------------------------------------------------------------------------------------
# GO_TOOLS: which to build (all by default; the compose image needs only the servers)
GO_TOOLS="${GO_TOOLS:-process-compose versitygw statsd_exporter docker-compose vegeta}"
step_go_tools() {
  [[ -n "$GO" ]] || step_go
  local t; for t in $GO_TOOLS; do "go_tool_$t"; done
}
go_tool_process-compose() {
  go_build_module "process-compose" "github.com/f1bonacc1/process-compose" "$PROCESS_COMPOSE_VERSION" "./src" \
    "-X github.com/f1bonacc1/process-compose/src/config.Version=$PROCESS_COMPOSE_VERSION"
}
go_tool_versitygw() { go_build_module "versitygw" "github.com/versity/versitygw" "$VERSITYGW_VERSION" "./cmd/versitygw" ""; }
go_tool_statsd_exporter() { go_build_module "statsd_exporter" "github.com/prometheus/statsd_exporter" "$STATSD_EXPORTER_VERSION" "." ""; }
go_tool_docker-compose() { go_build_module "docker-compose" "github.com/docker/compose/v2" "$COMPOSE_VERSION" "./cmd" ""; }
go_tool_vegeta() { go_build_module "vegeta" "github.com/tsenart/vegeta/v12" "$VEGETA_VERSION" "." ""; }

step_registry() {
  if [[ -x "$ROOT/infra/registry/build.sh" ]]; then
    "$ROOT/infra/registry/build.sh" || die "schema registry" "build failed" "$CACHE/registry/build.log"
    ok "schema registry"
  else
    skip "schema registry (no build needed)"
  fi
}

# --------------------------------------------------------------------------------------------
ALL_STEPS=(toolchain apt browser uv python kafka spark_jars trino jmx_exporter go go_tools registry)
steps=("$@")
# SETUP_SKIP: steps left out of a full run (the compose image skips `browser`)
if [[ ${#steps[@]} -eq 0 ]]; then
  for s in "${ALL_STEPS[@]}"; do [[ " ${SETUP_SKIP:-} " == *" $s "* ]] || steps+=("$s"); done
fi
started=$(date +%s)
for s in "${steps[@]}"; do
  declare -F "step_$s" >/dev/null || die "setup" "unknown step '$s' (known: ${ALL_STEPS[*]})" ""
  "step_$s"
done
info "setup done in $(($(date +%s) - started))s"
