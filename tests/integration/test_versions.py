"""The running services are the versions the repository pins, asked of each service itself. The
same test runs on both runtimes (`make test`, `make test-compose`), so what it proves is that
the native stack and the compose images run the same versions."""

from __future__ import annotations

import json
import os
import re
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from common import trino_client
from common.settings import mlflow_settings, postgres_settings, redis_settings

pytestmark = pytest.mark.usefixtures("running_stack")

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = {k: v or "" for k, v in dotenv_values(ROOT / "infra/versions.env").items()}
SETTINGS = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}


def debian_upstream(package: str) -> str:
    """The upstream version of a pinned Debian package: 'postgresql-15=15.18-0+deb12u1' → '15.18'."""
    spec = next(s for s in VERSIONS["DEBIAN_PACKAGES"].split() if s.startswith(f"{package}="))
    version = spec.split("=", 1)[1]
    version = version.split(":", 1)[-1]  # epoch
    return re.split(r"[-+~]", version)[0]


def locked(package: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["version"] for p in lock["package"] if p["name"] == package}
    assert len(versions) == 1, f"uv.lock has {package} {versions}"
    return versions.pop()


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=15) as r:
        return json.load(r)


def port(var: str) -> str:
    return os.environ.get(var, SETTINGS[var])


def test_trino_runs_the_pinned_release() -> None:
    assert (
        str(trino_client.scalar("SELECT node_version FROM system.runtime.nodes")) == VERSIONS["TRINO_VERSION"]
    )


def test_postgres_and_redis_run_the_pinned_debian_packages() -> None:
    import psycopg
    import redis

    p = postgres_settings()
    with psycopg.connect(p.dsn("postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row and row[0].split()[0] == debian_upstream("postgresql-15")
    info = redis.Redis.from_url(redis_settings().redis_url).info("server")
    assert info["redis_version"] == debian_upstream("redis-server")


def test_prometheus_and_alertmanager_run_the_pinned_debian_packages() -> None:
    build = http_json(f"http://localhost:{port('PROMETHEUS_PORT')}/api/v1/status/buildinfo")["data"]
    assert build["version"].split("+")[0] == debian_upstream("prometheus")  # Debian's says 2.42.0+ds
    status = http_json(f"http://localhost:{port('ALERTMANAGER_PORT')}/api/v2/status")
    assert status["versionInfo"]["version"] == debian_upstream("prometheus-alertmanager")


def test_schema_registry_runs_the_pinned_apicurio_release() -> None:
    pom = (ROOT / "infra/registry/pom.xml").read_text()
    pinned = re.search(r"<apicurio.version>(.+?)</apicurio.version>", pom)
    assert pinned
    info = http_json(f"http://localhost:{port('SCHEMA_REGISTRY_PORT')}/apis/registry/v3/system/info")
    assert info["version"] == pinned.group(1)


def test_mlflow_server_runs_the_locked_release() -> None:
    with urllib.request.urlopen(f"{mlflow_settings().mlflow_tracking_uri}/version", timeout=15) as r:
        assert r.read().decode().strip() == locked("mlflow")
