"""Helpers of the serving integration tests (tests/integration/test_serving*.py): two small models
registered in the real MLflow, the app run in-process, a throwaway redis-server, load loops."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import redis
from mlflow import MlflowClient

import features
from common.settings import mlflow_settings, postgres_settings
from producer.simulator import SimulatorConfig
from serving.app import create_app
from serving.settings import ServingSettings

SIM = SimulatorConfig(
    seed=11, days=60, n_customers=300, n_terminals=250, n_online_merchants=30, fraud_rate=0.02
)


@dataclass
class Registry:
    name: str
    versions: dict[str, str]  # family -> registered version
    history: pd.DataFrame
    frame: pd.DataFrame


def set_champion(reg: Registry, family: str) -> None:
    uri = mlflow_settings().mlflow_tracking_uri
    MlflowClient(uri, uri).set_registered_model_alias(reg.name, "champion", reg.versions[family])


def body_of(row: pd.Series) -> dict[str, Any]:
    def opt(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    return {
        "transaction_id": row["transaction_id"],
        "event_time": features.from_epoch_ms(int(row["event_time_ms"])).isoformat(timespec="milliseconds"),
        "card_id": row["card_id"],
        "terminal_id": row["terminal_id"],
        "amount": repr(float(row["amount"])),
        "currency": opt(row.get("currency")) or "EUR",
        "mcc": opt(row["mcc"]),
        "channel": opt(row["channel"]),
        "device_id": opt(row["device_id"]),
        "latitude": opt(row["latitude"]),
        "longitude": opt(row["longitude"]),
        "country": opt(row["country"]),
        "merchant_name": opt(row.get("merchant_name")),
    }


@asynccontextmanager
async def running(settings: ServingSettings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving", timeout=30) as client:
            yield app, client


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = await client.get("/ready")
        if r.status_code == 200:
            return r.json()  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready after {timeout_s}s: {r.json()}")


def settings_for(reg: Registry, unique: str, **kw: Any) -> ServingSettings:
    base: dict[str, Any] = {
        "model_name": reg.name,
        "model_poll_interval_s": 0.5,
        "feature_namespace": f"test-serving-{unique}",
        "prediction_log_table": f"test_prediction_log_{unique}",
        "prediction_log_flush_interval_s": 0.2,
        "redis_timeout_ms": 100,
        "publish_scored": False,  # the test that publishes names its own topic
    }
    return ServingSettings(**{**base, **kw})


def log_table_exists(unique: str) -> bool:
    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db)) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"test_prediction_log_{unique}",)).fetchone()
        return exists is not None and exists[0] is not None


def log_rows(unique: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not log_table_exists(unique):
        return {}
    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db)) as conn:
        cur = conn.execute(
            f"SELECT transaction_id, feature_vector, fraud_probability, decision, model_version, "
            f"feature_source, latency_ms, request->>'amount' FROM test_prediction_log_{unique} "
            f"WHERE transaction_id = ANY(%s)",
            (ids,),
        )
        cols = ("vector", "p", "decision", "version", "source", "latency", "amount")
        return {r[0]: dict(zip(cols, r[1:], strict=True)) for r in cur.fetchall()}


async def wait_logged(unique: str, ids: list[str], timeout_s: float = 30) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = log_rows(unique, ids)
        if len(rows) == len(set(ids)) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, tmp: str, *, persist: bool = False) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes" if persist else "no", "--appendfsync", "always", "--dir", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("throwaway redis-server did not start")


async def load(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], seconds: float, concurrency: int = 8
) -> list[tuple[float, int, dict[str, Any]]]:
    """Requests in a loop for ``seconds``: (time, status, body) of each."""
    out: list[tuple[float, int, dict[str, Any]]] = []
    end = time.monotonic() + seconds

    async def worker(k: int) -> None:
        i = k
        while time.monotonic() < end:
            r = await client.post("/predict", json=bodies[i % len(bodies)])
            out.append((time.monotonic(), r.status_code, r.json()))
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return out


async def until_online(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], timeout_s: float = 15.0
) -> list[tuple[float, int, dict[str, Any]]]:
    """Load in short rounds until answers come from Redis again (the breaker closed)."""
    seen: list[tuple[float, int, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += await load(client, bodies, 0.5)
        if seen[-1][2]["feature_source"] == "online":
            return seen
    raise AssertionError(f"features still not online after {timeout_s}s")


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total
