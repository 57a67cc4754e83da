"""A small client of Airflow's REST API (``/api/v2``) for the platform's own scripts and tests:
switch DAGs on and off, read them and their runs.

Airflow 3 authenticates the API with a JWT: ``POST /auth/token`` with the admin user of
``AIRFLOW_ADMIN_*`` (the simple auth manager), then ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from common.settings import AirflowSettings, airflow_settings

#: the DAGs of airflow/dags/ (DAG id = file name)
PLATFORM_DAGS: tuple[str, ...] = ("fraud_pipeline", "fraud_training")


def fetch_token(base_url: str, user: str, password: str, *, client: httpx.Client | None = None) -> str:
    """A JWT for the API from ``POST /auth/token``."""
    c = client or httpx.Client(timeout=10)
    try:
        r = c.post(f"{base_url.rstrip('/')}/auth/token", json={"username": user, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])
    finally:
        if client is None:
            c.close()


class AirflowApi:
    """``with AirflowApi.connect() as api: api.set_paused("fraud_pipeline", False)``."""

    def __init__(self, client: httpx.Client) -> None:
        self._c = client

    @classmethod
    def connect(cls, settings: AirflowSettings | None = None, *, timeout_s: float = 10) -> AirflowApi:
        """A client authenticated as the admin user of the settings (``AIRFLOW_*``)."""
        s = settings or airflow_settings()
        client = httpx.Client(base_url=s.airflow_api_url.rstrip("/"), timeout=timeout_s)
        try:
            token = fetch_token(
                s.airflow_api_url,
                s.airflow_admin_user,
                s.airflow_admin_password.get_secret_value(),
                client=client,
            )
        except Exception:
            client.close()
            raise
        client.headers["Authorization"] = f"Bearer {token}"
        return cls(client)

    def __enter__(self) -> AirflowApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._c.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self._c.request(method, f"/api/v2{path}", **kwargs)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self._json("GET", f"/dags/{dag_id}")

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """Switch a DAG off (``paused=True``) or on; returns the DAG as the API now reports it."""
        return self._json(
            "PATCH", f"/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": paused}
        )

    def paused_states(self, dag_ids: Iterable[str] = PLATFORM_DAGS) -> dict[str, bool]:
        return {d: bool(self.dag(d)["is_paused"]) for d in dag_ids}

    def set_paused_states(self, states: Mapping[str, bool]) -> dict[str, bool]:
        """Set each DAG's paused state; returns the states they had before."""
        before = self.paused_states(states)
        for dag_id, paused in states.items():
            if before[dag_id] != paused:
                self.set_paused(dag_id, paused)
        return before

    def dag_runs(self, dag_id: str, *, limit: int = 25) -> list[dict[str, Any]]:
        """The latest runs of a DAG, newest first."""
        data = self._json("GET", f"/dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": limit})
        runs: list[dict[str, Any]] = data["dag_runs"]
        return runs

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        data = self._json("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        tis: list[dict[str, Any]] = data["task_instances"]
        return tis

    def delete_dag_run(self, dag_id: str, run_id: str) -> None:
        self._c.delete(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").raise_for_status()

    def busy_tasks(self, dag_ids: Iterable[str] = PLATFORM_DAGS) -> int:
        """How many task instances of these DAGs are queued or running (pausing a DAG stops its
        runs from scheduling more tasks, but lets those finish)."""
        total = 0
        for dag_id in dag_ids:
            data = self._json(
                "GET",
                f"/dags/{dag_id}/dagRuns/~/taskInstances",
                params={"state": ["queued", "running"], "limit": 1},
            )
            total += int(data["total_entries"])
        return total

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (its return value by default), deserialised by the API."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._json("GET", path, params={"deserialize": "true"}).get("value")
