"""What /predict could not append while Redis was down comes back through Kafka: serving publishes
what it scored, the online applier appends it; a transaction produced to Kafka reaches the next
/predict and counts once when it also comes through /predict."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import kafka_support
import pytest
import redis
from serving_support import (
    Registry,
    free_port,
    metric,
    running,
    set_champion,
    settings_for,
    start_redis,
    wait_ready,
)

import features
from contracts.online_store import MODE_READ, OnlineLayout
from ml import online_applier
from ml.online_state import apply_events
from ml.settings import ApplierSettings

pytestmark = pytest.mark.usefixtures("running_stack")


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
