"""The serving API on the real Redis, MLflow registry and Postgres prediction log.

* online/offline parity: the vector /predict used (read back from the prediction log) equals the
  training row's vector when Redis holds the snapshot as of that transaction's time;
* the circuit breaker: a throwaway redis-server killed (and frozen) mid-load → no failed request,
  breaker open, fallbacks counted; Redis back → breaker closed, features online again;
* champion swap under load: the alias moves from v1 to v2 while requests flow, none fails;
* auth on the real app; prediction-log rows match the requests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import kafka_support
import numpy as np
import pandas as pd
import psycopg
import pytest
import redis
from mlflow import MlflowClient

import features
from common.settings import mlflow_settings, postgres_settings, redis_settings
from contracts.online_store import MODE_READ, OnlineLayout
from ml import online_applier
from ml.data import validate_transactions
from ml.feature_writer import seed_frame
from ml.online_state import apply_events
from ml.pit import build_feature_frame, feature_matrix
from ml.protocol import ProtocolConfig
from ml.settings import ApplierSettings
from ml.train import train
from producer.simulator import SimulatorConfig, simulate
from serving.app import create_app
from serving.settings import ServingSettings

pytestmark = pytest.mark.usefixtures("running_stack")

SIM = SimulatorConfig(
    seed=11, days=60, n_customers=300, n_terminals=250, n_online_merchants=30, fraud_rate=0.02
)


@dataclass
class Registry:
    name: str
    versions: dict[str, str]  # family -> registered version
    history: pd.DataFrame
    frame: pd.DataFrame


@pytest.fixture(scope="module")
def registry(running_stack: None) -> Iterator[Registry]:
    """Two small models registered in the real MLflow under a unique name (LightGBM, RandomForest)."""
    uri = mlflow_settings().mlflow_tracking_uri
    name = f"fraud-detector-serving-test-{os.getpid()}-{int(time.time())}"
    history = validate_transactions(simulate(SIM).to_pandas())
    frame = build_feature_frame(history)
    versions = {}
    for family in ("lightgbm", "random_forest"):
        cfg = ProtocolConfig(n_test_folds=1, n_val_folds=1, burn_in_days=14, models=(family, "random"))
        result = train(frame, cfg, tracking_uri=uri, experiment="serving-integration-tests", register_as=name)
        assert result.registered_version is not None
        versions[family] = result.registered_version
    yield Registry(name, versions, history, frame)
    MlflowClient(uri, uri).delete_registered_model(name)


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


@pytest.fixture
def cleanup(unique: str) -> Iterator[None]:
    yield
    r = redis.Redis.from_url(redis_settings().redis_url)
    keys = list(r.scan_iter(match=f"test-serving-{unique}:*", count=10_000))
    if keys:
        r.delete(*keys)
    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS test_prediction_log_{unique}")


def log_rows(unique: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db)) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"test_prediction_log_{unique}",)).fetchone()
        if exists is None or exists[0] is None:  # the writer creates it with its first batch
            return {}
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


# --------------------------------------------------------------------------- parity


@pytest.mark.asyncio
async def test_online_vector_equals_training_vector_and_log_matches(
    registry: Registry, unique: str, cleanup: None
) -> None:
    set_champion(registry, "lightgbm")
    s = settings_for(registry, unique)
    frame = registry.frame
    x = feature_matrix(frame)
    # transactions of the last weeks, with and without geo / device / prior history
    candidates = frame[frame["event_time_ms"] > frame["event_time_ms"].quantile(0.5)]
    sample = pd.concat(
        [
            candidates[candidates["channel"] == "online"].sample(5, random_state=1),
            candidates[candidates["channel"] == "card_present"].sample(5, random_state=2),
            candidates.sample(5, random_state=3),
        ]
    ).drop_duplicates("transaction_id")
    # the whole history in the state: each transaction reads only what came strictly before it
    seed_frame(registry.history, namespace=s.feature_namespace)
    async with running(s) as (_app, client):
        ready = await wait_ready(client)
        assert ready["model"]["version"] == registry.versions["lightgbm"]
        responses = {}
        for idx, row in sample.iterrows():
            r = await client.post("/predict", json=body_of(row))
            assert r.status_code == 200, r.text
            responses[row["transaction_id"]] = (idx, r.json())
        ids = list(responses)
        rows = await wait_logged(unique, ids)
    assert set(rows) == set(ids), "every prediction is in the log"
    for tid, (idx, out) in responses.items():
        logged = rows[tid]
        training_vector = x[frame.index.get_loc(idx)]
        assert np.allclose(logged["vector"], training_vector, rtol=1e-9, atol=1e-9), tid
        assert out["feature_source"] == "online"
        assert logged["p"] == out["fraud_probability"] and logged["decision"] == out["decision"]
        assert logged["version"] == out["model_version"] == registry.versions["lightgbm"]
        assert logged["source"] == out["feature_source"] and logged["latency"] > 0
        assert float(logged["amount"]) == float(frame.loc[idx, "amount"])


# --------------------------------------------------------------------------- breaker


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


@pytest.mark.asyncio
async def test_breaker_redis_killed_and_frozen_mid_load(
    registry: Registry, unique: str, cleanup: None, tmp_path: Any
) -> None:
    set_champion(registry, "lightgbm")
    port = free_port()
    proc = start_redis(port, str(tmp_path))
    url = f"redis://127.0.0.1:{port}/0"
    history = registry.history
    ns = f"test-serving-{unique}"

    def publish() -> None:
        seed_frame(history.tail(3000), namespace=ns, client=redis.Redis.from_url(url))

    publish()
    bodies = [body_of(r) for _, r in history.tail(200).iterrows()]
    s = settings_for(
        registry,
        unique,
        redis_url=url,
        redis_timeout_ms=100,
        breaker_failure_threshold=3,
        breaker_reset_timeout_s=1.0,
    )
    try:
        async with running(s) as (_app, client):
            await wait_ready(client)
            before = await load(client, bodies, 1.0)
            assert {st for _, st, _ in before} == {200}
            assert {b["feature_source"] for _, _, b in before} == {"online"}

            # 1. Redis dies mid-load
            killer = asyncio.get_running_loop().call_later(0.5, proc.kill)
            during = await load(client, bodies, 2.5)
            killer.cancel()
            assert {st for _, st, _ in during} == {200}, "no request fails because Redis is down"
            assert "default" in {b["feature_source"] for _, _, b in during}
            ready = (await client.get("/ready")).json()
            assert ready["online_features"]["breaker"] in ("open", "half_open")
            text = (await client.get("/metrics")).text
            assert metric(text, "fraud_api_feature_fallbacks_total") > 0
            assert metric(text, 'fraud_api_feature_fallbacks_total{reason="breaker_open"}') > 0
            assert metric(text, 'fraud_api_redis_breaker_transitions_total{to="open"}') >= 1
            assert all(b["model_version"] == registry.versions["lightgbm"] for _, _, b in during)

            # 2. Redis is back: the next trial after the reset timeout closes the breaker
            proc.wait()
            proc = start_redis(port, str(tmp_path))
            publish()
            after = await until_online(client, bodies)
            assert {st for _, st, _ in after} == {200}
            assert (await client.get("/ready")).json()["online_features"]["breaker"] == "closed"

            # 3. Redis hangs (SIGSTOP): per-call timeouts, then the breaker opens; latency stays bounded
            proc.send_signal(signal.SIGSTOP)
            try:
                frozen = await load(client, bodies, 2.0)
            finally:
                proc.send_signal(signal.SIGCONT)
            assert {st for _, st, _ in frozen} == {200}
            assert max(b["latency_ms"] for _, _, b in frozen) < 2000
            assert "default" in {b["feature_source"] for _, _, b in frozen}
            text = (await client.get("/metrics")).text
            assert metric(text, 'fraud_api_feature_fallbacks_total{reason="timeout"}') > 0
            recovered = await until_online(client, bodies)
            assert {st for _, st, _ in recovered} == {200}
            assert (await client.get("/ready")).json()["online_features"]["breaker"] == "closed"
    finally:
        proc.kill()


# --------------------------------------------------------------------------- champion swap


@pytest.mark.asyncio
async def test_champion_swap_under_load(registry: Registry, unique: str, cleanup: None) -> None:
    set_champion(registry, "lightgbm")
    history = registry.history
    s = settings_for(registry, unique)
    seed_frame(history, namespace=s.feature_namespace)
    bodies = [body_of(r) for _, r in history.tail(300).iterrows()]
    v1, v2 = registry.versions["lightgbm"], registry.versions["random_forest"]
    async with running(s) as (_app, client):
        await wait_ready(client)

        async def move_alias() -> float:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(set_champion, registry, "random_forest")
            return time.monotonic()

        results, moved_at = await asyncio.gather(load(client, bodies, 12.0), move_alias())
        model = (await client.get("/model")).json()
    assert {st for _, st, _ in results} == {200}, "no request failed during the swap"
    versions = [b["model_version"] for _, _, b in results]
    assert versions[0] == v1 and v1 in versions and v2 in versions
    swapped_at = min(t for t, _, b in results if b["model_version"] == v2)
    assert swapped_at > moved_at
    assert all(b["model_version"] == v2 for t, _, b in results if t > swapped_at + 0.5)
    assert model["version"] == v2 and model["family"] == "random_forest"
    assert "RandomForest" in model["reasons_method"]


# --------------------------------------------------------------------------- auth


@pytest.mark.asyncio
async def test_api_keys_on_the_real_app(registry: Registry, unique: str, cleanup: None) -> None:
    set_champion(registry, "lightgbm")
    s = settings_for(registry, unique, api_keys="integration-key")
    body = body_of(registry.history.iloc[-1])
    async with running(s) as (_app, client):
        await wait_ready(client)
        assert (await client.post("/predict", json=body)).status_code == 401
        wrong = await client.post("/predict", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        ok = await client.post("/predict", json=body, headers={"X-API-Key": "integration-key"})
        assert ok.status_code == 200 and ok.json()["feature_source"] == "online"
        assert (await client.get("/health")).status_code == 200


# --------------------------------------------------------------------------- Redis down, Kafka path


def card_count_1h(url: str, ns: str, card: str, at_ms: int) -> int:
    """The card's transactions in the hour before ``at_ms``, as /predict would read them."""
    probe = features.Transaction("probe", features.from_epoch_ms(at_ms), card, "term-probe", 1.0)
    with redis.Redis.from_url(url) as r:
        (got,) = apply_events(r, OnlineLayout(ns), [probe], MODE_READ)
    assert got.card is not None
    return got.card.card_count_txn_1h


async def wait_count(url: str, ns: str, card: str, at_ms: int, want: int, timeout_s: float) -> float:
    started = time.monotonic()
    while (seen := card_count_1h(url, ns, card, at_ms)) != want:
        assert time.monotonic() - started < timeout_s, f"card count {seen}, not {want}, after {timeout_s}s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.asyncio
async def test_appends_missed_while_redis_is_down_come_back_through_kafka(
    registry: Registry, unique: str, cleanup: None, tmp_path: Any
) -> None:
    """Serving publishes what it scored; the online applier appends it. Redis down: /predict still
    answers, and the attempts it could not append reach the state once Redis is back. A
    transaction produced to Kafka (not sent to /predict) is visible to the next /predict; one seen
    by both paths counts once."""
    set_champion(registry, "lightgbm")
    port = free_port()
    proc = start_redis(port, str(tmp_path), persist=True)
    url = f"redis://127.0.0.1:{port}/0"
    ns = f"test-serving-{unique}"
    card = f"card-{unique}"
    t0 = int(time.time() * 1000) // 1000 * 1000

    def body(i: int) -> dict[str, Any]:
        return {
            "transaction_id": f"{unique}-{i}", "card_id": card, "terminal_id": "term-x", "amount": "1.00",
            "event_time": features.from_epoch_ms(t0 + 5_000 * i).isoformat(), "currency": "EUR",
            "channel": "online", "mcc": "5816",
        }  # fmt: skip

    stop = threading.Event()
    with kafka_support.test_topics(unique) as topics:
        s = settings_for(
            registry, unique, redis_url=url, publish_scored=True, publish_topic=topics.raw,
            breaker_failure_threshold=1, breaker_reset_timeout_s=0.5,
        )  # fmt: skip
        applier = threading.Thread(
            target=online_applier.run,
            kwargs={
                "settings": ApplierSettings(group_id=f"it-{unique}"), "stop": stop,
                "topics": [topics.raw, topics.labels], "namespace": ns, "redis_url": url,
                "metrics": online_applier.ApplierMetrics(),
            },
            daemon=True,
        )  # fmt: skip
        applier.start()
        try:
            async with running(s) as (_app, client):
                await wait_ready(client)
                for i in (0, 1):
                    r = await client.post("/predict", json=body(i))
                    assert r.status_code == 200 and r.json()["feature_source"] == "online"
                assert card_count_1h(url, ns, card, t0 + 60_000) == 2
                proc.terminate()
                proc.wait()
                for i in (2, 3, 4):
                    r = await client.post("/predict", json=body(i))
                    assert r.status_code == 200 and r.json()["feature_source"] == "default"
                proc = start_redis(port, str(tmp_path), persist=True)
                await wait_count(url, ns, card, t0 + 60_000, 5, timeout_s=60)

                # the Kafka path: produced, never sent to /predict → visible within seconds
                extra = {**body(5), "transaction_id": f"{unique}-kafka"}
                produced_at = time.monotonic()
                kafka_support.produce(topics, [("transaction", extra)])
                await wait_count(
                    url, ns, card, t0 + 60_000, 6, timeout_s=5 + (time.monotonic() - produced_at)
                )
                # ...and the same transaction via /predict counts once (it reads the 5 before it)
                r = await client.post("/predict", json=extra)
                assert r.status_code == 200 and r.json()["feature_source"] == "online"
                await asyncio.sleep(1.0)
                assert card_count_1h(url, ns, card, t0 + 60_000) == 6
                text = (await client.get("/metrics")).text
                assert metric(text, 'fraud_api_published_total{outcome="delivered"}') >= 5
        finally:
            stop.set()
            applier.join(timeout=30)
            proc.kill()
