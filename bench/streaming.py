"""`make bench BENCH=streaming`: Kafka → Bronze throughput and produce→visible latency.

Runs on its own topics, registry subjects, Delta tables and checkpoints (unique names, removed
afterwards) with the job's own code path (``build_stream`` with ``local[2]``), beside whatever
else runs on the machine — the native stack shares the same cores, so the load average is
reported with the figures.

1. **Throughput**: N records (transactions with labels at the simulator's fraud rate, plus a few
   duplicates and bad records) are produced first, then an ``availableNow`` query drains them in
   ``maxOffsetsPerTrigger``-sized micro-batches. ``events_per_s`` is the sustained rate of the
   batches after the first one (which pays JIT and code generation), from the query's progress.
2. **Latency**: a paced producer sends 2 000 records/s for a while to a running query with the
   service's trigger interval. A record is visible when the Delta commit of its micro-batch is
   done; its latency is that commit time minus its Kafka timestamp (set when it was produced).
   ``p95_latency_s`` is over the records after a warm-up.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro

from common import object_store
from common.schema_registry import SchemaRegistry
from common.settings import kafka_settings
from contracts.avro import load_schema, subject_for
from contracts.wire import frame
from streaming.batch import BatchReport
from streaming.job import SOURCES, build_stream
from streaming.settings import StreamingSettings

log = logging.getLogger("bench.streaming")

FRAUD_RATE = 0.007
BAD_RATE = 0.001  # duplicates + corrupt records mixed in, as in real traffic


class _Fixture:
    """Topics, subjects, tables and checkpoint of one bench phase (removed by :meth:`close`)."""

    def __init__(self, name: str) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        self.suffix = f"{name}_{uuid.uuid4().hex[:8]}"
        k = kafka_settings()
        self.raw, self.labels, self.dlq = (
            f"bench.streaming.{self.suffix}.{t}" for t in ("raw", "labels", "dlq")
        )
        self.admin = AdminClient({"bootstrap.servers": k.kafka_bootstrap_servers})
        new = [NewTopic(self.raw, 6, 1), NewTopic(self.labels, 3, 1), NewTopic(self.dlq, 3, 1)]
        for f in self.admin.create_topics(new).values():
            f.result(timeout=30)
        self.registry = SchemaRegistry(k.schema_registry_url)
        self.tx_schema, self.label_schema = load_schema("transaction"), load_schema("label")
        self.tx_id = self._register(self.raw, self.tx_schema)
        self.label_id = self._register(self.labels, self.label_schema)
        self.settings = StreamingSettings(
            raw_topic=self.raw,
            labels_topic=self.labels,
            dlq_topic=self.dlq,
            transactions_table=f"bench_tx_{self.suffix}",
            labels_table=f"bench_labels_{self.suffix}",
            checkpoint_prefix=f"_checkpoints/bench/{self.suffix}",
            register_in_trino=False,
            metrics_port=0,
            maintenance_interval_minutes=0,
        )

    def _register(self, topic: str, schema: dict[str, Any]) -> int:
        return self.registry.ensure_subject(subject_for(topic), json.dumps(schema), "BACKWARD").schema_id

    def close(self) -> None:
        for f in self.admin.delete_topics([self.raw, self.labels, self.dlq]).values():
            try:
                f.result(timeout=30)
            except Exception as exc:  # cleanup is best effort
                log.warning("could not delete a bench topic: %s", exc)
        for topic in (self.raw, self.labels):
            self.registry.delete_subject(subject_for(topic))
        for prefix in (
            self.settings.table_key(self.settings.transactions_table) + "/",
            self.settings.table_key(self.settings.labels_table) + "/",
            self.settings.checkpoint_prefix + "/",
        ):
            object_store.delete_prefix(prefix)


class _Events:
    """Realistic records, pre-encoded in the Confluent wire format."""

    def __init__(self, fx: _Fixture, seed: int = 7) -> None:
        self.fx = fx
        self.rng = random.Random(seed)
        self.tx = fastavro.parse_schema(fx.tx_schema)
        self.lb = fastavro.parse_schema(fx.label_schema)
        self.n = 0

    def _encode(self, schema: Any, schema_id: int, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, record)
        return frame(schema_id, buf.getvalue())

    def transaction(self, now: datetime) -> tuple[str, str, bytes, bytes | None]:
        """(topic, key, value, label value or None) of the next record."""
        self.n += 1
        r = self.rng
        card = f"card-{r.randrange(50_000):06d}"
        online = r.random() < 0.3
        rec = {
            "transaction_id": f"{self.fx.suffix}-{self.n:09d}",
            "event_time": now - timedelta(milliseconds=r.randrange(0, 2000)),
            "card_id": card,
            "customer_id": f"cust-{card[5:]}",
            "terminal_id": f"term-{r.randrange(4000):05d}",
            "merchant_name": "Maison Dupont",
            "amount": Decimal(r.randrange(50, 50_000)) / 100,
            "currency": "EUR",
            "mcc": r.choice(("5411", "5812", "5999", "4111")),
            "channel": "online" if online else "card_present",
            "device_id": f"dev-{r.randrange(20_000)}" if online else None,
            "latitude": None if online else 48.85 + r.random(),
            "longitude": None if online else 2.35 + r.random(),
            "country": "FR",
        }
        value = self._encode(self.tx, self.fx.tx_id, rec)
        roll = r.random()
        if roll < BAD_RATE / 2:
            value = value[:8]  # truncated: undecodable
        elif roll < BAD_RATE:
            rec["transaction_id"] = f"{self.fx.suffix}-{max(1, self.n - 5):09d}"  # a duplicate
            value = self._encode(self.tx, self.fx.tx_id, rec)
        label = None
        if r.random() < FRAUD_RATE:
            label = self._encode(
                self.lb,
                self.fx.label_id,
                {
                    "transaction_id": rec["transaction_id"],
                    "card_id": card,
                    "is_fraud": True,
                    "fraud_scenario": "card_testing",
                    "label_time": now,
                },
            )
        return self.fx.raw, card, value, label


def _producer() -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": kafka_settings().kafka_bootstrap_servers,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "enable.idempotence": True,
        }
    )


def _send(producer: Any, fx: _Fixture, events: _Events, now: datetime) -> int:
    topic, key, value, label = events.transaction(now)
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            break
        except BufferError:
            producer.poll(0.05)
    if label is not None:
        producer.produce(fx.labels, key=key, value=label)
        return 2
    return 1


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _start(
    spark: Any, settings: StreamingSettings, available_now: bool
) -> tuple[list[Any], dict[str, list[BatchReport]]]:
    """Both queries, as the service runs them, and each one's batch reports (the bench's listener)."""
    reports: dict[str, list[BatchReport]] = {source: [] for source in SOURCES}
    queries = [
        build_stream(
            spark, settings, source=source, available_now=available_now, on_batch=[reports[source].append]
        )
        for source in SOURCES
    ]
    return queries, reports


def _throughput(spark: Any, n: int, max_per_batch: int) -> dict[str, Any]:
    fx = _Fixture("tput")
    try:
        events, producer = _Events(fx), _producer()
        t0 = time.monotonic()
        sent = 0
        while sent < n:
            sent += _send(producer, fx, events, datetime.now(UTC))
            if sent % 10_000 < 2:
                producer.poll(0)
        producer.flush(120)
        produce_s = time.monotonic() - t0
        settings = fx.settings.model_copy(update={"max_offsets_per_trigger": max_per_batch})
        load_before = _load()
        t0 = time.monotonic()
        queries, by_source = _start(spark, settings, available_now=True)  # labels beside, as in service
        reports = by_source["transaction"]
        for q in queries:
            q.awaitTermination()
            if q.exception() is not None:
                raise RuntimeError(f"bench query {q.name} failed: {q.exception()}")
        wall = time.monotonic() - t0
        query = queries[0]
        batches = [p for p in query.recentProgress if p["numInputRows"]]
        rows = [int(p["numInputRows"]) for p in batches]
        secs = [p["durationMs"]["triggerExecution"] / 1000 for p in batches]
        steady_rows, steady_s = sum(rows[1:]), sum(secs[1:])
        steps: dict[str, float] = {}
        for rep in reports[1:]:
            for k, v in rep.steps.items():
                steps[k.split(":")[0]] = steps.get(k.split(":")[0], 0.0) + v
        return {
            "events_per_s": round(steady_rows / steady_s, 1) if steady_s else None,
            "records": sum(rows),
            "batches": len(rows),
            "max_offsets_per_trigger": max_per_batch,
            "events_per_s_incl_first_batch": round(sum(rows) / sum(secs), 1) if secs else None,
            "wall_s_incl_startup": round(wall, 1),
            "batch_seconds": [round(s, 1) for s in secs],
            "steady_step_seconds": {k: round(v, 1) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
            "bronze_rows": sum(r.bronze for r in reports),
            "dlq_rows": sum(r.dlq_rows for r in reports),
            "produce_events_per_s": round(n / produce_s, 1),
            "load_avg_1m_before": load_before,
            "load_avg_1m_after": _load(),
        }
    finally:
        fx.close()


def _latency(spark: Any, rate: int, seconds: int, warmup_s: int) -> dict[str, Any]:
    from pyspark.sql import functions as F  # noqa: N812

    fx = _Fixture("latency")
    try:
        settings = fx.settings
        queries, by_source = _start(spark, settings, available_now=False)
        time.sleep(5)  # the query is planning its first (empty) trigger
        events, producer = _Events(fx, seed=11), _producer()
        stop = threading.Event()
        sent = [0]

        def pace() -> None:
            t0 = time.monotonic()
            tick = 0.01
            while not stop.is_set():
                due = int((time.monotonic() - t0) * rate)
                while sent[0] < due:
                    sent[0] += _send(producer, fx, events, datetime.now(UTC))
                producer.poll(0)
                time.sleep(tick)
            producer.flush(60)

        load_before = _load()
        started_at = time.time()
        thread = threading.Thread(target=pace, name="bench-producer")
        thread.start()
        time.sleep(seconds)
        stop.set()
        thread.join()
        produced_s = time.time() - started_at
        # wait until the query has read everything produced
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if sum(r.input_rows for rs in by_source.values() for r in rs) >= sent[0]:
                break
            time.sleep(1)
        reports = list(by_source["transaction"])
        for q in queries:
            q.stop()
        commits = {r.batch_id: r.committed_at for r in reports}
        commits_df = spark.createDataFrame(
            [(b, t) for b, t in commits.items() if t is not None], "batch_id long, committed_at double"
        )
        tx = spark.read.format("delta").load(settings.table_uri(settings.transactions_table))
        lat = (
            tx.where(F.unix_millis("kafka_timestamp") >= int((started_at + warmup_s) * 1000))
            .join(commits_df, "batch_id")
            .select((F.col("committed_at") - F.unix_millis("kafka_timestamp") / 1000).alias("latency"))
        )
        q = lat.agg(
            F.count(F.lit(1)).alias("n"),
            F.percentile_approx("latency", [0.5, 0.95, 0.99], 10_000).alias("p"),
            F.max("latency").alias("max"),
        ).first()
        assert q is not None and q["n"], "no rows to measure latency on"
        durations = [r.seconds for r in reports if r.input_rows]
        return {
            "p95_latency_s": round(q["p"][1], 2),
            "p50_latency_s": round(q["p"][0], 2),
            "p99_latency_s": round(q["p"][2], 2),
            "max_latency_s": round(q["max"], 2),
            "rate_events_per_s": rate,
            "achieved_rate_events_per_s": round(sent[0] / produced_s, 1),
            "measured_rows": int(q["n"]),
            "seconds": seconds,
            "warmup_s": warmup_s,
            "trigger_interval_s": settings.trigger_interval_s,
            "batches": len(durations),
            "mean_batch_s": round(sum(durations) / len(durations), 2) if durations else None,
            "max_batch_s": round(max(durations), 2) if durations else None,
            "load_avg_1m_before": load_before,
            "load_avg_1m_after": _load(),
        }
    finally:
        fx.close()


def run(quick: bool = False) -> dict[str, Any]:
    from streaming.session import build_spark

    logging.getLogger("streaming").setLevel(logging.WARNING)
    spark = build_spark("fraud-streaming-bench", master="local[2]")
    try:
        tput = _throughput(spark, n=60_000 if quick else 400_000, max_per_batch=30_000 if quick else 100_000)
        latency = _latency(spark, rate=2000, seconds=30 if quick else 120, warmup_s=10 if quick else 20)
    finally:
        spark.stop()
    return {
        "events_per_s": tput.pop("events_per_s"),
        "p95_latency_s": latency.pop("p95_latency_s"),
        "throughput": tput,
        "latency": latency,
        "master": "local[2]",
        "cpus": os.cpu_count(),
        "note": "the native stack (Kafka, Trino, Airflow, MLflow, ...) runs on the same cores",
    }
