"""Superset for the integration and browser tests: the dashboards-as-code bundle as the repository
holds it (superset/assets), a signed-in REST API client, and the bootstrap run as the service runs
it (natively, or in the `superset` container under FRAUD_RUNTIME=compose)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dotenv import dotenv_values

from common.settings import superset_settings

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "superset" / "assets"
BOOTSTRAP = ["infra/local/services/superset.sh", "bootstrap"]


@dataclass
class Bundle:
    """uuid -> YAML document of each kind; a dashboard's charts are the uuids in its layout."""

    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def dashboard_charts(self, dashboard_uuid: str) -> list[str]:
        position = self.dashboards[dashboard_uuid]["position"]
        return [
            v["meta"]["uuid"] for v in position.values() if isinstance(v, dict) and v.get("type") == "CHART"
        ]


def load_bundle() -> Bundle:
    bundle = Bundle()
    for kind in ("databases", "datasets", "charts", "dashboards"):
        for path in sorted((ASSETS / kind).rglob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            getattr(bundle, kind)[str(doc["uuid"])] = doc
    return bundle


class SupersetApi:
    """Superset's REST API, signed in as the admin of the settings (a JWT from /security/login)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    @classmethod
    @contextmanager
    def connect(cls, timeout_s: float = 120) -> Iterator[SupersetApi]:
        s = superset_settings()
        with httpx.Client(base_url=s.superset_url, timeout=timeout_s) as client:
            login = client.post(
                "/api/v1/security/login",
                json={
                    "username": s.superset_admin_user,
                    "password": s.superset_admin_password.get_secret_value(),
                    "provider": "db",
                    "refresh": False,
                },
            )
            login.raise_for_status()
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            yield cls(client)

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, params=params)
        assert r.status_code == 200, f"GET {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json()

    def listing(self, resource: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every row of a list endpoint (chart, dashboard, dataset, database), paged."""
        rows: list[dict[str, Any]] = []
        page = 0
        while True:
            q = f"(columns:!({','.join(columns)}),page:{page},page_size:100)"
            body = self.get(f"/api/v1/{resource}/", q=q)
            rows += body["result"]
            if len(rows) >= body["count"] or not body["result"]:
                return rows
            page += 1

    def charts_by_uuid(self) -> dict[str, dict[str, Any]]:
        return {r["uuid"]: r for r in self.listing("chart", ("id", "uuid", "slice_name", "viz_type"))}

    def counts(self) -> dict[str, int]:
        return {
            resource: int(self.get(f"/api/v1/{resource}/", q="(page_size:1)")["count"])
            for resource in ("dashboard", "chart", "dataset", "database")
        }


def run_bootstrap(*args: str) -> subprocess.CompletedProcess[str]:
    """superset.sh bootstrap, where the service runs: natively with the stack's settings, or in
    the compose stack's `superset` container."""
    if os.environ.get("FRAUD_RUNTIME", "local") == "compose":
        files = ["--env-file", "infra/versions.env", "--env-file", ".env.example"]
        files += ["--env-file", ".env"] if (ROOT / ".env").exists() else []
        cmd = ["docker", "compose", *files, "exec", "-T", "superset", *BOOTSTRAP, *args]
        env = dict(os.environ)
    else:
        cmd = [*BOOTSTRAP, *args]
        env = {}
        for f in (ROOT / ".env.example", ROOT / ".env", ROOT / "infra" / "versions.env"):
            if f.exists():
                env.update({k: v for k, v in dotenv_values(f).items() if v is not None})
        env.update(os.environ)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


# The fixtures of the Superset tests (integration and e2e), imported by their modules.
@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return load_bundle()


@pytest.fixture(scope="module")
def api() -> Iterator[SupersetApi]:
    with SupersetApi.connect() as client:
        yield client
