"""Both runtimes are described by configuration that must stay valid and in step: the compose file
(validated by the real Compose CLI, which needs no engine for `config`), the process-compose file,
the settings classes and .env.example."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from common import settings as settings_mod

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_BIN = ROOT / ".cache" / "bin" / "docker-compose"
PC_BIN = ROOT / ".cache" / "bin" / "process-compose"
ENV = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}

VERSIONS = {k: v or "" for k, v in dotenv_values(ROOT / "infra/versions.env").items()}
PLATFORM_IMAGE = f"fraud-platform/platform:{VERSIONS['PLATFORM_IMAGE_TAG']}"

# the native stack's long-running services: compose runs each under the same name
SERVICES = [
    "object-store",
    "kafka",
    "schema-registry",
    "postgres",
    "redis",
    "trino",
    "mlflow",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "prometheus",
    "alertmanager",
    "statsd-exporter",
    "postgres-exporter",
    "redis-exporter",
    "streaming",
    "online-applier",
    "serving",
]


def tool(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run 'make setup'", pytrace=False)
    return path


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    proc = subprocess.run(
        [str(tool(COMPOSE_BIN)), "--profile", "*", "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=ROOT,
        env={**os.environ, **VERSIONS, **ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"docker compose config refused the file:\n{proc.stderr}"
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def native_processes() -> dict[str, dict[str, Any]]:
    spec = yaml.safe_load((ROOT / "infra/local/process-compose.yaml").read_text())
    procs: dict[str, dict[str, Any]] = spec["processes"]
    return procs


def test_compose_has_every_native_service(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    missing = [s for s in SERVICES if s not in services]
    assert not missing, f"compose lacks services the native stack runs: {missing}"
    assert "grafana" in services


def test_compose_runs_the_native_command_and_probe_of_each_service(compose: dict[str, Any]) -> None:
    """One install path, one configuration: a container runs its native process's command, and
    its healthcheck is that process's readiness probe."""
    procs = native_processes()
    for name in SERVICES:
        svc, proc = compose["services"][name], procs[name]
        assert svc["command"] == proc["command"].split(), f"{name}: compose and native commands differ"
        probe = proc["readiness_probe"]["exec"]["command"].split()
        assert svc["healthcheck"]["test"] == ["CMD", *probe], f"{name}: healthcheck is not the native probe"


def test_every_image_is_the_platform_image_but_grafana(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name == "grafana":
            assert svc["profiles"] == ["grafana"], "the upstream Grafana image must stay opt-in"
            continue
        assert svc["image"] == PLATFORM_IMAGE, f"{name} runs {svc['image']}, not the platform image"
    assert compose["services"]["image"]["build"]["dockerfile"] == "infra/docker/platform.Dockerfile"


def test_dockerfiles_pin_nothing_of_their_own() -> None:
    """Versions live in infra/versions.env and uv.lock, which the images install from: a Dockerfile
    that names a version of its own (FROM an upstream tag, a pip pin, a jar) would let the two
    runtimes drift apart."""
    skip = {".cache", ".venv", ".venvs", "var"}
    dockerfiles = [p for p in ROOT.rglob("*Dockerfile*") if not skip & set(p.parts)]
    assert dockerfiles
    pinned = set(VERSIONS.values()) | {v for value in VERSIONS.values() for v in value.split()}
    for path in dockerfiles:
        text = path.read_text()
        froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
        assert froms == ["${BASE_IMAGE}"], f"{path}: builds FROM {froms}, not the base image of versions.env"
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for version in re.findall(r"\b\d+\.\d+(?:\.\d+)?\b", code):
            assert version in pinned, f"{path} names version {version}, which infra/versions.env does not pin"


def test_compose_publishes_on_loopback_only_with_memory_limits(compose: dict[str, Any]) -> None:
    """Nothing listens beyond the host's loopback; every container has a memory cap, and the caps of
    the resident services (one-shot ones exit, Grafana is opt-in) leave a 16 GB laptop room."""
    total = 0
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
        if name == "image":
            continue
        assert svc.get("mem_limit"), f"{name} has no memory limit"
        if svc.get("restart") != "no" and name != "grafana":
            total += int(svc["mem_limit"])
    assert total <= 14 * 2**30, f"the resident services' memory caps add up to {total / 2**30:.1f} GiB"


def test_every_long_running_compose_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if svc.get("restart") == "no":  # one-shot init containers
            continue
        hc = svc.get("healthcheck")
        assert hc and hc.get("test") and not hc.get("disable"), f"{name} has no healthcheck"


def test_compose_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in compose["services"], f"{name} depends on unknown service {dep}"
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)


def test_compose_publishes_the_native_ports(compose: dict[str, Any]) -> None:
    published = {int(p["published"]) for svc in compose["services"].values() for p in svc.get("ports", [])}
    for var in (
        "S3_PORT",
        "KAFKA_PORT",
        "SCHEMA_REGISTRY_PORT",
        "POSTGRES_PORT",
        "REDIS_PORT",
        "TRINO_PORT",
        "MLFLOW_PORT",
        "AIRFLOW_PORT",
        "PROMETHEUS_PORT",
        "ALERTMANAGER_PORT",
    ):
        assert int(ENV[var]) in published, f"{var}={ENV[var]} is not published by compose"


def test_process_compose_file_is_valid_and_ordered() -> None:
    pc_file = ROOT / "infra/local/process-compose.yaml"
    proc = subprocess.run(
        [str(tool(PC_BIN)), "-f", str(pc_file), "--dry-run", "--disable-dotenv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    procs = yaml.safe_load(pc_file.read_text())["processes"]
    for name, spec in procs.items():
        for dep in spec.get("depends_on", {}):
            assert dep in procs, f"{name} depends on unknown process {dep}"
        if spec.get("availability", {}).get("restart") != "no":
            assert "readiness_probe" in spec, f"{name} has no readiness probe"
            assert spec["log_location"] == f"var/log/{name}.log"
    # the native stack runs the same services as compose
    assert set(SERVICES) <= set(procs)


def test_every_setting_is_listed_in_env_example() -> None:
    classes = [
        c
        for c in vars(settings_mod).values()
        if isinstance(c, type) and issubclass(c, settings_mod._Base) and c is not settings_mod._Base
    ]
    assert classes
    for cls in classes:
        for field in cls.model_fields:
            assert field.upper() in ENV, (
                f"{cls.__name__}.{field} reads {field.upper()}, absent from .env.example"
            )


def test_every_variable_the_stack_scripts_require_is_in_env_example() -> None:
    scripts = (ROOT / "infra/local/services").glob("*.sh")
    required = set()
    for s in scripts:
        for line in s.read_text().splitlines():
            if line.strip().startswith("require "):
                required |= set(line.split()[1:]) - {"\\"}
    versions = {k for k in dotenv_values(ROOT / "infra/versions.env")}
    missing = sorted(v for v in required if v not in ENV and v not in versions)
    assert not missing, f"scripts require settings absent from .env.example: {missing}"


def test_client_urls_agree_with_service_ports() -> None:
    pairs = {
        "KAFKA_BOOTSTRAP_SERVERS": "KAFKA_PORT",
        "SCHEMA_REGISTRY_URL": "SCHEMA_REGISTRY_PORT",
        "S3_ENDPOINT_URL": "S3_PORT",
        "REDIS_URL": "REDIS_PORT",
        "MLFLOW_TRACKING_URI": "MLFLOW_PORT",
        "AIRFLOW_API_URL": "AIRFLOW_PORT",
    }
    for url_var, port_var in pairs.items():
        assert re.search(rf":{ENV[port_var]}(\b|/)", ENV[url_var]), f"{url_var} does not use {port_var}"


def test_dev_secrets_are_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_ENV", "prod")
    with pytest.raises(Exception, match="S3_SECRET_KEY still has its development default"):
        settings_mod.S3Settings()  # type: ignore[call-arg]
    monkeypatch.setenv("S3_SECRET_KEY", "a-real-secret")
    assert settings_mod.S3Settings().s3_secret_key.get_secret_value() == "a-real-secret"  # type: ignore[call-arg]


def test_missing_setting_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class Probe(settings_mod._Base):
        some_required_endpoint: str

    with pytest.raises(Exception, match="some_required_endpoint"):
        Probe()  # type: ignore[call-arg]


def test_spark_version_pins_agree() -> None:
    import pyspark

    versions = dotenv_values(ROOT / "infra/versions.env")
    assert pyspark.__version__ == versions["SPARK_VERSION"]
