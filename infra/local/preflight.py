"""What the native stack needs before it starts: the environment, the ports it binds, the installed
artifacts. ``stack.py up`` calls :func:`preflight` first, so a missing install or a busy port is a
clear error naming the service and the setting, before anything is started."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("FRAUD_VAR_DIR", ROOT / "var"))
CACHE = ROOT / ".cache"
PC_BIN = CACHE / "bin" / "process-compose"


class StackError(RuntimeError):
    """Startup failed; the message names the service, the cause and the log to read."""


# --------------------------------------------------------------------------------------------
# environment


def load_env() -> dict[str, str]:
    """.env.example, overlaid by .env, overlaid by the process environment."""
    env: dict[str, str] = {}
    for f in (ROOT / ".env.example", ROOT / ".env", ROOT / "infra" / "versions.env"):
        if f.exists():
            env.update({k: v for k, v in dotenv_values(f).items() if v is not None})
    env.update(os.environ)
    env["FRAUD_VAR_DIR"] = str(VAR)
    return env


@dataclass(frozen=True)
class Endpoint:
    service: str
    port_var: str
    url: str  # shown by `status`; {port} is replaced


# Every port the stack binds, with the service that binds it (checked before starting).
ENDPOINTS = [
    Endpoint("object-store", "S3_PORT", "http://localhost:{port}"),
    Endpoint("kafka", "KAFKA_PORT", "localhost:{port}"),
    Endpoint("kafka", "KAFKA_INTERNAL_PORT", ""),
    Endpoint("kafka", "KAFKA_CONTROLLER_PORT", ""),
    Endpoint("kafka", "KAFKA_METRICS_PORT", "http://localhost:{port}/metrics"),
    Endpoint("schema-registry", "SCHEMA_REGISTRY_PORT", "http://localhost:{port}/apis/ccompat/v7"),
    Endpoint("schema-registry", "SCHEMA_REGISTRY_MANAGEMENT_PORT", ""),
    Endpoint("postgres", "POSTGRES_PORT", "postgresql://localhost:{port}"),
    Endpoint("redis", "REDIS_PORT", "redis://localhost:{port}"),
    Endpoint("trino", "TRINO_PORT", "http://localhost:{port}"),
    Endpoint("trino", "TRINO_METRICS_PORT", ""),
    Endpoint("mlflow", "MLFLOW_PORT", "http://localhost:{port}"),
    Endpoint("airflow-api-server", "AIRFLOW_PORT", "http://localhost:{port}"),
    Endpoint("superset", "SUPERSET_PORT", "http://localhost:{port}"),
    Endpoint("statsd-exporter", "STATSD_EXPORTER_PORT", ""),
    Endpoint("postgres-exporter", "POSTGRES_EXPORTER_PORT", ""),
    Endpoint("redis-exporter", "REDIS_EXPORTER_PORT", ""),
    Endpoint("prometheus", "PROMETHEUS_PORT", "http://localhost:{port}"),
    Endpoint("alertmanager", "ALERTMANAGER_PORT", "http://localhost:{port}"),
    Endpoint("pushgateway", "PUSHGATEWAY_PORT", "http://localhost:{port}"),
    Endpoint("serving", "SERVING_PORT", "http://localhost:{port}/docs"),
    Endpoint("streaming", "STREAMING_METRICS_PORT", "http://localhost:{port}/metrics"),
]


def urls(env: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in ENDPOINTS:
        if e.url and e.service not in out:
            out[e.service] = e.url.format(port=env[e.port_var])
    return out


# --------------------------------------------------------------------------------------------
# preflight


def required_artifacts(env: dict[str, str]) -> dict[str, Path]:
    v = env
    return {
        "process-compose": PC_BIN,
        "object-store (versitygw)": CACHE / "bin" / "versitygw",
        "statsd-exporter": CACHE / "bin" / "statsd_exporter",
        "kafka": CACHE / "jvm" / "kafka" / "libs" / f"kafka_{v['KAFKA_SCALA']}-{v['KAFKA_VERSION']}.jar",
        "trino": CACHE / "jvm" / f"trino-server-{v['TRINO_VERSION']}" / "bin" / "launcher",
        "jmx exporter": CACHE / "jvm" / f"jmx_prometheus_javaagent-{v['JMX_EXPORTER_VERSION']}.jar",
        "platform python env": ROOT / ".venv" / "bin" / "python",
        "mlflow python env": ROOT / ".venvs" / "mlflow" / "bin" / "mlflow",
        "airflow python env": ROOT / ".venvs" / "airflow" / "bin" / "airflow",
        "superset python env": ROOT / ".venvs" / "superset" / "bin" / "superset",
        "java 17": Path(v["JAVA17_HOME"]) / "bin" / "java",
        "java 25 (trino, schema registry)": ROOT / v["JAVA25_HOME"] / "bin" / "java",
    }


def registry_installed() -> bool:
    return any((CACHE / "registry").glob("apicurio-registry-*/quarkus-run.jar"))


def port_holder(port: int) -> str:
    try:
        for c in psutil.net_connections(kind="inet"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                p = psutil.Process(c.pid)
                return f"pid {c.pid} ({' '.join(p.cmdline()[:3])[:80]})"
    except (psutil.Error, PermissionError):
        pass
    return "another process"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def preflight(env: dict[str, str]) -> None:
    problems = []
    for what, path in required_artifacts(env).items():
        if not path.exists():
            problems.append(f"{what}: {path} is missing; run 'make setup'")
    if not registry_installed():
        problems.append("schema-registry: Apicurio Registry is not installed; run 'make setup'")
    for e in ENDPOINTS:
        raw = env.get(e.port_var)
        if not raw or not raw.isdigit():
            problems.append(f"{e.service}: setting {e.port_var} is missing or not a port (see .env.example)")
            continue
        if not port_free(int(raw)):
            problems.append(
                f"{e.service}: port {raw} ({e.port_var}) is already in use by {port_holder(int(raw))}; "
                f"stop it or change {e.port_var} in .env"
            )
    if problems:
        raise StackError("cannot start the local stack:\n  - " + "\n  - ".join(problems))
