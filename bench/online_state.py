"""``make bench BENCH=online_state``: the online state's write paths and its size, on the real stack.

1. **seed** — ``ml.feature_writer.seed_frame`` of a simulated history (what the Airflow task does
   from Gold) into a throwaway namespace: rows/s.
2. **size** — ``MEMORY USAGE`` of the seeded keys: bytes per card (its events, its transaction
   index and waiting labels) and per terminal, per transaction, and projected to 1 M cards over the
   history simulated and over the full retention (91 days) at the same pace (Redis Cluster is the
   scale-out path: every key of a card carries the card's hash tag).
3. **applier throughput** — a backlog of transactions produced to a throwaway topic (the producer
   pipeline), then ``ml.online_applier.run`` started on it: decoded and applied events/s.
4. **Kafka → state latency** — with the applier running, transactions produced at a fixed rate:
   the time from each record's Kafka timestamp to its batch being applied (p50/p95/max), the
   applier's own measure (``fraud_online_state_apply_delay_seconds``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import numpy as np
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from common.schema_registry import SchemaRegistry
from common.settings import kafka_settings, redis_settings
from contracts.avro import subject_for
from contracts.online_store import RETENTION_MS, OnlineLayout
from ml import online_applier
from ml.data import validate_transactions
from ml.feature_writer import seed_frame
from ml.online_state import state_bytes
from ml.settings import ApplierSettings
from producer.pipeline import Topics
from producer.service import start
from producer.settings import get_settings as producer_settings
from producer.simulator import SimulatorConfig, simulate
from producer.stream import run_stream

log = logging.getLogger("bench.online_state")


def _drop(r: redis.Redis, layout: OnlineLayout) -> None:
    keys = list(r.scan_iter(match=layout.pattern(), count=10_000))
    for start_i in range(0, len(keys), 10_000):
        r.unlink(*keys[start_i : start_i + 10_000])


def _events(history: Any, tag: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for row in history.to_dict("records"):
        raw = {
            k: v
            for k, v in row.items()
            if k not in ("is_fraud", "label_time", "fraud_scenario", "event_time_ms")
        }
        raw["transaction_id"] = f"{tag}-{row['transaction_id']}"
        raw["amount"] = f"{row['amount']:.2f}"
        out.append(
            (
                "transaction",
                {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in raw.items()},
            )
        )
    return out


def run(quick: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_before": os.getloadavg(), "command": "make bench BENCH=online_state"}
    tag = f"bench-os-{os.getpid()}"
    r = redis.Redis.from_url(redis_settings().redis_url)
    customers = 1500 if quick else 6000
    sim = SimulatorConfig(
        seed=17, days=30, n_customers=customers, n_terminals=customers // 2, n_online_merchants=100
    )
    history = validate_transactions(simulate(sim).to_pandas())
    layout = OnlineLayout(f"{tag}-seed")
    try:
        seeded = seed_frame(history, client=r, namespace=layout.namespace)
        out["seed_rows"] = seeded["transactions"]
        out["seed_rows_per_s"] = seeded["rows_per_s"]
        size = state_bytes(r, layout)
        out.update({f"state_{k}": v for k, v in size.items()})
        per_card = len(history) / history["card_id"].nunique()
        out["state_days_of_history"] = sim.days
        out["state_mean_transactions_per_card"] = round(per_card, 1)
        out["state_bytes_per_transaction"] = round(size["bytes_per_card"] / per_card, 1)
        # a card keeps RETENTION_MS of events: at this card's pace, the 1 M cards of a full retention
        per_card_retained = per_card / sim.days * RETENTION_MS / 86_400_000
        out["state_projected_gib_1m_cards_full_retention"] = round(
            size["bytes_per_card"] / per_card * per_card_retained * 1_000_000 / 2**30, 2
        )
    finally:
        _drop(r, layout)

    # applier: backlog, then a fixed rate
    k = kafka_settings()
    topics = Topics(raw=f"{tag}.raw", labels=f"{tag}.labels", dlq=f"{tag}.dlq")
    admin = AdminClient({"bootstrap.servers": k.kafka_bootstrap_servers})
    for fut in admin.create_topics(
        [NewTopic(t, 6, 1) for t in (topics.raw, topics.labels, topics.dlq)]
    ).values():
        fut.result(timeout=30)
    layout = OnlineLayout(f"{tag}-applier")
    runtime = start("bench-online", settings=producer_settings(), topics=topics, spool_path=None)
    stop = threading.Event()
    metrics = online_applier.ApplierMetrics()
    delays: list[float] = []
    try:
        backlog = _events(history, "backlog")
        n_backlog = min(len(backlog), 20_000 if quick else 100_000)
        run_stream(runtime.pipeline, backlog[:n_backlog])
        assert runtime.pipeline.flush(120) == 0
        thread = threading.Thread(
            target=online_applier.run,
            kwargs={"settings": ApplierSettings(group_id=tag), "stop": stop,
                    "topics": [topics.raw, topics.labels], "namespace": layout.namespace,
                    "metrics": metrics, "delays": delays},
            daemon=True,
        )  # fmt: skip
        started = time.perf_counter()
        thread.start()
        applied = metrics.events.labels("kafka", "new")
        while applied._value.get() < n_backlog:
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"the applier applied {applied._value.get()} of {n_backlog} in 600 s")
            time.sleep(0.05)
        took = time.perf_counter() - started
        out["applier_backlog_events"] = n_backlog
        out["applier_events_per_s"] = round(n_backlog / took, 1)
        out["applier_goal_events_per_s"] = 20_000
        delays.clear()
        rate, seconds = (1000, 5) if quick else (2000, 10)
        live = _events(history, "live")[: rate * seconds]
        run_stream(runtime.pipeline, live, tps=rate)
        assert runtime.pipeline.flush(60) == 0
        deadline = time.perf_counter() + 120
        while len(delays) < len(live) and time.perf_counter() < deadline:
            time.sleep(0.05)
        d = np.array(delays)
        out.update({
            "kafka_to_state_rate_per_s": rate,
            "kafka_to_state_events": len(d),
            "kafka_to_state_p50_s": round(float(np.percentile(d, 50)), 3),
            "kafka_to_state_p95_s": round(float(np.percentile(d, 95)), 3),
            "kafka_to_state_max_s": round(float(d.max()), 3),
            "kafka_to_state_goal_p95_s": 5.0,
        })  # fmt: skip
    finally:
        stop.set()
        runtime.pipeline.flush(10)
        for fut in admin.delete_topics([topics.raw, topics.labels, topics.dlq]).values():
            fut.result(timeout=30)
        registry = SchemaRegistry(k.schema_registry_url)
        for topic in (topics.raw, topics.labels):
            registry.delete_subject(subject_for(topic))
        _drop(r, layout)
        r.close()
    out["load_average_after"] = os.getloadavg()
    out["cpus"] = os.cpu_count()
    log.info("online state: %s", out)
    return out
