"""Plumbing of the streaming integration tests: one test's topics, subjects, Delta tables and
checkpoint (:func:`stream_env`, the ``env`` fixture of tests/integration/conftest.py), realistic
records with the outcome each must have, and the reconciliation every test ends with: every produced
record is in Bronze exactly once or in the DLQ with its expected reason."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro

from common import object_store, trino_client
from common.schema_registry import SchemaRegistry
from common.settings import kafka_settings
from contracts.avro import load_schema, subject_for
from contracts.wire import frame
from streaming.batch import BatchReport
from streaming.dlq import DlqRecord, distinct_streaming_records, read_dlq
from streaming.settings import StreamingSettings

TX_SCHEMA = load_schema("transaction")
LABEL_SCHEMA = load_schema("label")


def registry() -> SchemaRegistry:
    return SchemaRegistry(kafka_settings().schema_registry_url)


def register(topic: str, schema: dict[str, Any]) -> int:
    return registry().ensure_subject(subject_for(topic), json.dumps(schema), "BACKWARD").schema_id


def encode(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return frame(schema_id, buf.getvalue())


@dataclass
class Produced:
    """What a test sent, with the outcome it expects for each record (by topic/partition/offset)."""

    expected: dict[tuple[str, int, int], str] = field(default_factory=dict)  # "bronze" or "stage/reason"
    pending: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.expected)

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.expected.values() if v == outcome)


class Sender:
    def __init__(self, produced: Produced) -> None:
        from confluent_kafka import Producer

        self.produced = produced
        self._producer = Producer(
            {
                "bootstrap.servers": kafka_settings().kafka_bootstrap_servers,
                "linger.ms": 5,
                "enable.idempotence": True,
            }
        )

    def send(self, topic: str, key: str | None, value: bytes | None, expect: str) -> None:
        def delivered(err: Any, msg: Any) -> None:
            assert err is None, err
            self.produced.expected[(msg.topic(), msg.partition(), msg.offset())] = expect

        self._producer.produce(topic, key=key, value=value, on_delivery=delivered)
        self._producer.poll(0)

    def flush(self) -> None:
        assert self._producer.flush(60) == 0


@dataclass
class Env:
    """One test's topics, subjects, tables and checkpoint."""

    suffix: str
    settings: StreamingSettings
    tx_id: int
    label_id: int

    @property
    def raw(self) -> str:
        return self.settings.raw_topic_name

    @property
    def labels(self) -> str:
        return self.settings.labels_topic_name

    @property
    def dlq(self) -> str:
        return self.settings.dlq_topic_name


def create_topics(*specs: tuple[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_settings().kafka_bootstrap_servers})
    for f in admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in specs]
    ).values():
        f.result(timeout=30)


def delete_topics(*topics: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_settings().kafka_bootstrap_servers})
    for f in admin.delete_topics(list(topics)).values():
        try:
            f.result(timeout=30)
        except Exception:  # best-effort cleanup
            continue


@contextlib.contextmanager
def stream_env(unique: str) -> Iterator[Env]:
    """Topics, subjects, Delta tables and checkpoint of one test, removed afterwards."""
    raw, labels, dlq = (
        f"test.streaming.{unique}.raw",
        f"test.streaming.{unique}.labels",
        f"test.streaming.{unique}.dlq",
    )
    create_topics((raw, 3), (labels, 1), (dlq, 1))
    settings = StreamingSettings(
        raw_topic=raw,
        labels_topic=labels,
        dlq_topic=dlq,
        transactions_table=f"test_tx_{unique}",
        labels_table=f"test_labels_{unique}",
        checkpoint_prefix=f"_checkpoints/test/{unique}",
        metrics_port=0,
        maintenance_interval_minutes=0,
        trigger_interval_s=0,
    )
    tx_id = register(raw, TX_SCHEMA)
    label_id = register(labels, LABEL_SCHEMA)
    yield Env(unique, settings, tx_id, label_id)
    for table in (settings.transactions_table, settings.labels_table):
        with contextlib.suppress(Exception):  # never registered
            trino_client.rows(
                f"CALL {trino_client.catalog()}.system.unregister_table("
                f"schema_name => '{settings.bronze_schema}', table_name => '{table}')"
            )
        object_store.delete_prefix(settings.table_key(table) + "/")
    object_store.delete_prefix(settings.checkpoint_prefix + "/")
    delete_topics(raw, labels, dlq)
    for topic in (raw, labels):
        registry().delete_subject(subject_for(topic))


NOW = datetime.now(UTC).replace(microsecond=0)


def txn(i: int, **overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "transaction_id": f"tx-{i:05d}",
        "event_time": NOW - timedelta(minutes=i % 600),
        "card_id": f"card-{i % 37:03d}",
        "customer_id": f"cust-{i % 37:03d}",
        "terminal_id": f"term-{i % 11}",
        "merchant_name": "Chez Dupont",
        "amount": Decimal(f"{(i % 500) + 1}.{i % 100:02d}"),
        "currency": "EUR",
        "mcc": "5411",
        "channel": "card_present" if i % 3 else "online",
        "device_id": None if i % 3 else f"dev-{i % 13}",
        "latitude": 48.85 if i % 3 else None,
        "longitude": 2.35 if i % 3 else None,
        "country": "FR",
    }
    rec.update(overrides)
    return rec


def label(i: int, **overrides: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "transaction_id": f"tx-{i:05d}",
        "card_id": f"card-{i % 37:03d}",
        "is_fraud": True,
        "fraud_scenario": "card_testing",
        "label_time": NOW - timedelta(minutes=1),
    }
    rec.update(overrides)
    return rec


def produce_mixed(env: Env, n_good: int) -> Produced:
    """``n_good`` valid transactions, labels, and one record of every kind of bad input."""
    produced = Produced()
    s = Sender(produced)
    tx = lambda r: encode(TX_SCHEMA, env.tx_id, r)  # noqa: E731
    lb = lambda r: encode(LABEL_SCHEMA, env.label_id, r)  # noqa: E731
    for i in range(n_good):
        r = txn(i)
        s.send(env.raw, r["card_id"], tx(r), "bronze")
        if i == 3:  # a producer retry right behind the original: same micro-batch
            s.send(env.raw, r["card_id"], tx(r), "streaming.dedup/duplicate")
    # historical data (a replay of simulated months) is accepted
    s.send(env.raw, "card-900", tx(txn(90_000, event_time=NOW - timedelta(days=400))), "bronze")
    # decode failures
    s.send(env.raw, "card-x", b"not avro at all", "streaming.decode/not_wire_format")
    s.send(env.raw, "card-x", b"\x00\x00", "streaming.decode/not_wire_format")
    s.send(env.raw, "card-x", None, "streaming.decode/not_wire_format")
    s.send(env.raw, "card-x", frame(987_654_321, b"\x02a"), "streaming.decode/unknown_schema_id")
    s.send(env.raw, "card-x", frame(env.tx_id, b"\xff\xff\xff\xff\xff"), "streaming.decode/undecodable")
    s.send(
        env.raw,
        "card-x",
        encode(LABEL_SCHEMA, env.label_id, label(1)),
        "streaming.decode/incompatible_schema",
    )
    # quality failures
    bad = {
        "unknown_currency": txn(90_001, currency="XXX"),
        "out_of_range": txn(90_002, amount=Decimal("0.00")),
        "in_future": txn(90_003, event_time=NOW + timedelta(hours=2)),
        "too_old": txn(90_004, event_time=datetime(2001, 1, 1, tzinfo=UTC)),
        "empty": txn(90_005, terminal_id="  "),
        "bad_format": txn(90_006, mcc="54"),
        "unknown_country": txn(90_007, country="ZZ"),
        "invalid_value": txn(90_008, channel="mail"),
    }
    for reason, r in bad.items():
        s.send(env.raw, r["card_id"], tx(r), f"streaming.quality/{reason}")
    # labels: valid ones, a bad one, a duplicate, garbage
    for i in range(5):
        s.send(env.labels, f"card-{i:03d}", lb(label(i)), "bronze")
    s.send(env.labels, "card-x", lb(label(7, card_id="")), "streaming.quality/empty")
    s.send(env.labels, "card-000", lb(label(0)), "streaming.dedup/duplicate")
    s.send(env.labels, "card-x", b"\x01garbage", "streaming.decode/not_wire_format")
    s.flush()
    return produced


def produce_late_duplicates(env: Env, produced: Produced, ids: list[int]) -> None:
    """Copies of already-sent transactions, sent later: found in Bronze, not in the batch."""
    s = Sender(produced)
    for i in ids:
        r = txn(i)
        s.send(env.raw, r["card_id"], encode(TX_SCHEMA, env.tx_id, r), "streaming.dedup/duplicate")
    s.flush()


def run_available_now(spark: Any, settings: StreamingSettings, **kwargs: Any) -> list[BatchReport]:
    """Both queries over what is in Kafka now; returns the transactions query's batch reports."""
    from streaming.job import build_stream

    reports: list[BatchReport] = []
    queries = [
        build_stream(
            spark,
            settings,
            source=source,
            available_now=True,
            on_batch=[reports.append] if i == 0 else [],
            **kwargs,
        )
        for i, source in enumerate(("transaction", "label"))
    ]
    for query in queries:
        query.awaitTermination(600)
        assert not query.isActive, f"the availableNow query {query.name} did not finish in 10 minutes"
        assert query.exception() is None, query.exception()
    return reports


def bronze(spark: Any, settings: StreamingSettings, table: str) -> Any:
    return spark.read.format("delta").load(settings.table_uri(table))


def streaming_dlq(env: Env) -> tuple[list[DlqRecord], dict[tuple[str, int, int], DlqRecord]]:
    records = read_dlq(kafka_settings().kafka_bootstrap_servers, env.dlq, timeout_s=60)
    return records, distinct_streaming_records(records)


def assert_reconciles(spark: Any, env: Env, produced: Produced) -> dict[tuple[str, int, int], DlqRecord]:
    """Every produced record is in Bronze exactly once or in the DLQ with the expected reason."""
    s = env.settings
    tx = bronze(spark, s, s.transactions_table)
    lb = bronze(spark, s, s.labels_table)
    landed = {
        (r["kafka_topic"], r["kafka_partition"], r["kafka_offset"])
        for df in (tx, lb)
        for r in df.select("kafka_topic", "kafka_partition", "kafka_offset").collect()
    }
    n_bronze = tx.count() + lb.count()
    _, dlq = streaming_dlq(env)
    # count(bronze) + count(distinct DLQ records from streaming) = N, and nothing is in both
    assert n_bronze + len(dlq) == produced.n, (n_bronze, len(dlq), produced.n)
    assert not landed & set(dlq)
    assert n_bronze == len(landed), "a Kafka record landed in Bronze twice"
    dup_ids = tx.groupBy("transaction_id").count().where("count > 1").collect()
    assert not dup_ids, f"duplicate transaction_id in Bronze: {dup_ids[:5]}"
    assert not lb.groupBy("transaction_id").count().where("count > 1").collect()
    # each record where it was expected, DLQ records with their reason
    for coords, expect in produced.expected.items():
        if expect == "bronze":
            assert coords in landed, f"{coords} expected in Bronze"
        else:
            assert coords in dlq, f"{coords} expected in the DLQ ({expect})"
            got = f"{dlq[coords].stage}/{dlq[coords].reason}"
            assert got == expect, f"{coords}: {got} != {expect} ({dlq[coords].headers.get('error')})"
    return dlq
