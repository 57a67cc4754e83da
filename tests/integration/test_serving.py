"""The serving API on the real Redis, MLflow registry and Postgres prediction log.

* online/offline parity: the vector /predict used (read back from the prediction log) equals the
  training row's vector (the online state holds the history; each request reads before its time);
* the circuit breaker: a throwaway redis-server killed (and frozen) mid-load → no failed request,
  breaker open, fallbacks counted; Redis back → breaker closed, features online again;
* champion swap under load: the alias moves from v1 to v2 while requests flow, none fails;
* auth on the real app; prediction-log rows match the requests.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from serving_support import (
    Registry,
    body_of,
    free_port,
    load,
    log_table_exists,
    metric,
    running,
    set_champion,
    settings_for,
    start_redis,
    until_online,
    wait_logged,
    wait_ready,
)

from ml.feature_writer import seed_frame
from ml.pit import feature_matrix

pytestmark = pytest.mark.usefixtures("running_stack")


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
        deadline = time.monotonic() + 10
        while not log_table_exists(unique) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert log_table_exists(unique), "the writer creates the log table as serving starts"
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
