"""Kafka → Bronze for real: Kafka, the Schema Registry, Spark, Delta on the object store, Trino.

Every test works on its own topics, registry subjects, Delta tables, checkpoint and Trino names
(unique suffix) and removes them afterwards; the platform's own topics and tables are never
touched. Records are produced with the producer's real Avro schemas (``producer/schemas``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
import requests

from common.settings import kafka_settings, s3_settings, trino_settings
from streaming.dlq import DlqRecord, distinct_streaming_records, read_dlq
from streaming.settings import StreamingSettings
from streaming.wire import frame

pytestmark = [pytest.mark.usefixtures("local_stack"), pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
TX_SCHEMA = json.loads((ROOT / "producer/schemas/transaction.avsc").read_text())
LABEL_SCHEMA = json.loads((ROOT / "producer/schemas/label.avsc").read_text())
REGISTRY_HEADERS = {"Content-Type": "application/vnd.schemaregistry.v1+json"}


# ----------------------------------------------------------------------------------- plumbing


def registry() -> str:
    return kafka_settings().schema_registry_url.rstrip("/")


def register(subject: str, schema: dict[str, Any]) -> int:
    r = requests.post(
        f"{registry()}/subjects/{subject}/versions",
        data=json.dumps({"schema": json.dumps(schema)}),
        headers=REGISTRY_HEADERS,
        timeout=15,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def delete_subject(subject: str) -> None:
    for q in ("", "?permanent=true"):
        requests.delete(f"{registry()}/subjects/{subject}{q}", timeout=15)


def encode(schema: dict[str, Any], schema_id: int, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return frame(schema_id, buf.getvalue())


def s3_delete_prefix(prefix: str) -> None:
    import boto3

    s = s3_settings()
    client = boto3.client("s3", **s.boto3_kwargs())
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=s.lakehouse_bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=s.lakehouse_bucket, Delete={"Objects": keys})


def s3_keys(prefix: str) -> list[str]:
    import boto3

    s = s3_settings()
    client = boto3.client("s3", **s.boto3_kwargs())
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s.lakehouse_bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def trino_rows(sql: str) -> list[list[Any]]:
    import trino

    t = trino_settings()
    cur = trino.dbapi.connect(
        host=t.trino_host, port=t.trino_port, user=t.trino_user, catalog=t.trino_catalog
    ).cursor()
    cur.execute(sql)
    return list(cur.fetchall())


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


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Iterator[Env]:
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
    tx_id = register(f"{raw}-value", TX_SCHEMA)
    label_id = register(f"{labels}-value", LABEL_SCHEMA)
    yield Env(unique, settings, tx_id, label_id)
    for table in (settings.transactions_table, settings.labels_table):
        with contextlib.suppress(Exception):  # never registered
            trino_rows(
                f"CALL {trino_settings().trino_catalog}.system.unregister_table("
                f"schema_name => '{settings.bronze_schema}', table_name => '{table}')"
            )
        s3_delete_prefix(settings.table_key(table) + "/")
    s3_delete_prefix(settings.checkpoint_prefix + "/")
    delete_topics(raw, labels, dlq)
    delete_subject(f"{raw}-value")
    delete_subject(f"{labels}-value")


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


def run_available_now(spark: Any, settings: StreamingSettings, **kwargs: Any) -> Any:
    """Both queries over what is in Kafka now; returns the transactions query."""
    from streaming.job import build_streams

    queries = build_streams(spark, settings, available_now=True, **kwargs)
    for query in queries:
        query.awaitTermination(600)
        assert not query.isActive, f"the availableNow query {query.name} did not finish in 10 minutes"
        assert query.exception() is None, query.exception()
    return queries[0]


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


# --------------------------------------------------------------------------------------- tests


def test_reconciliation_trino_metrics_and_maintenance(spark: Any, env: Env) -> None:
    """N events with every kind of bad input → Bronze + DLQ = N, no duplicate ids, Trino agrees;
    then the table maintenance of the same tables."""
    from streaming.job import attach_metrics, batch_writer
    from streaming.metrics import StreamingMetrics

    produced = produce_mixed(env, n_good=200)
    # copies of early transactions sent last: a later micro-batch finds their originals in Bronze
    produce_late_duplicates(env, produced, [5, 7])
    settings = env.settings.model_copy(update={"max_offsets_per_trigger": 120})
    metrics = StreamingMetrics()
    listener = attach_metrics(spark, metrics, settings)
    try:
        query = run_available_now(spark, settings, metrics=metrics)
    finally:
        spark.streams.removeListener(listener)
    reports = batch_writer(query).reports
    assert len(reports) >= 2 and sum(r.already_ingested for r in reports) == 0
    # the late copies are duplicates of rows an earlier micro-batch wrote to Bronze
    assert sum(r.dlq.get(("streaming.dedup", "duplicate"), 0) for r in reports[1:]) >= 2
    dlq = assert_reconciles(spark, env, produced)

    # the headers a DLQ consumer needs: original bytes, stage, reason, field, source coordinates
    rec = next(r for r in dlq.values() if r.reason == "unknown_currency")
    h = rec.headers
    assert h["field"] == "currency" and "XXX" in h["error"]
    assert h["event_type"] == "transaction" and h["source_topic"] == env.raw
    assert h["schema_id"] == str(env.tx_id) and h["content_type"] == "application/vnd.confluent.avro"
    assert datetime.fromisoformat(h["error_time"].replace("Z", "+00:00")).tzinfo is not None
    assert rec.value is not None and rec.value[0] == 0  # the original wire-format bytes
    garbage = next(r for r in dlq.values() if r.value == b"not avro at all")
    assert (
        "schema_id" not in garbage.headers and garbage.headers["content_type"] == "application/octet-stream"
    )

    # ingestion metadata
    tx = bronze(spark, env.settings, env.settings.transactions_table)
    row = tx.where("transaction_id = 'tx-00001'").collect()[0]
    assert row["schema_id"] == env.tx_id and row["kafka_topic"] == env.raw
    assert row["event_date"] == row["event_time"].date() and row["batch_id"] >= 0
    assert row["amount"] == Decimal("2.01") and row["ingested_at"] is not None

    # Trino reads the registered tables and sees the same rows
    cat, schema = trino_settings().trino_catalog, env.settings.bronze_schema
    n_tx = trino_rows(f"SELECT count(*) FROM {cat}.{schema}.{env.settings.transactions_table}")[0][0]
    n_lb = trino_rows(f"SELECT count(*) FROM {cat}.{schema}.{env.settings.labels_table}")[0][0]
    assert (n_tx, n_lb) == (tx.count(), bronze(spark, env.settings, env.settings.labels_table).count())
    assert trino_rows(
        f"SELECT amount, currency FROM {cat}.{schema}.{env.settings.transactions_table} "
        "WHERE transaction_id = 'tx-00001'"
    ) == [[Decimal("2.01"), "EUR"]]

    # metrics: rows by table and DLQ reason, lag 0 after catching up, a last-batch time
    sample = metrics.registry.get_sample_value
    assert sample("fraud_streaming_bronze_rows_total", {"table": env.settings.transactions_table}) == n_tx
    assert (
        sample(
            "fraud_streaming_dlq_rows_total",
            {"event_type": "transaction", "stage": "streaming.decode", "reason": "not_wire_format"},
        )
        == produced.count("streaming.decode/not_wire_format") - 1
    )  # one of them was a label
    name = settings.query_name("transaction")
    assert (sample("fraud_streaming_batches_total", {"query": name}) or 0) >= 2
    assert (sample("fraud_streaming_last_batch_timestamp_seconds", {"query": name}) or 0) > time.time() - 600
    for p in range(3):
        lag = {"query": name, "topic": env.raw, "partition": str(p)}
        assert sample("fraud_streaming_kafka_lag_records", lag) == 0
    labels_lag = {"query": settings.query_name("label"), "topic": env.labels, "partition": "0"}
    assert sample("fraud_streaming_kafka_lag_records", labels_lag) == 0

    check_maintenance(spark, settings)


def check_maintenance(spark: Any, settings: StreamingSettings) -> None:
    """OPTIMIZE leaves one file per partition and the same rows; the CLI guard and the retention
    floor refuse unsafe runs."""
    from delta.tables import DeltaTable

    from streaming.maintenance import (
        TableBusyError,
        last_maintenance_age_s,
        maintain,
        maintain_bronze,
        maintain_table,
    )
    from streaming.sources import source_specs

    uri = settings.table_uri(settings.transactions_table)
    table = bronze(spark, settings, settings.transactions_table)
    count = table.count()
    partitions = table.select("event_date").distinct().count()
    files_before = DeltaTable.forPath(spark, uri).detail().first()["numFiles"]
    assert files_before > partitions  # several micro-batches wrote small files
    with pytest.raises(TableBusyError, match="committed to"):
        maintain(spark, settings, busy_within_s=3600)
    with pytest.raises(ValueError, match="below the safe minimum"):
        maintain_table(spark, source_specs(settings)[0], retention_hours=1)
    reports = maintain(spark, settings, tables=[settings.transactions_table])
    assert reports[0]["files"] == partitions
    assert reports[0]["optimize"]["files_removed"] > reports[0]["optimize"]["files_added"]
    assert bronze(spark, settings, settings.transactions_table).count() == count
    assert DeltaTable.forPath(spark, uri).detail().first()["properties"]["delta.appendOnly"] == "true"
    # the scheduler's daily task: the table just maintained is left alone; the labels table (never
    # maintained, written minutes ago) is refused while "the stream" may be writing it, then done
    tx_spec, labels_spec = source_specs(settings)
    assert (last_maintenance_age_s(tx_spec) or 1e9) < 600
    assert last_maintenance_age_s(labels_spec) is None
    with pytest.raises(TableBusyError, match=settings.labels_table):
        maintain_bronze(settings, spark=spark, idle_minutes=60)
    done = maintain_bronze(settings, spark=spark, idle_minutes=0)
    assert list(done["up_to_date"]) == [settings.transactions_table]
    assert [r["table"] for r in done["maintained"]] == [settings.labels_table]
    assert last_maintenance_age_s(labels_spec) is not None


def test_a_replayed_batch_changes_nothing_in_bronze(spark: Any, env: Env) -> None:
    """The batch writer called twice with the same batch (a crash before the checkpoint commit):
    Bronze is written once (txnAppId/txnVersion), the DLQ receives identical copies that collapse
    on their source coordinates; a new batch id over the same records (a lost checkpoint) adds
    nothing either: those records are already ingested."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F  # noqa: N812

    from streaming.job import BronzeBatchWriter, ensure_tables, prepare
    from streaming.sources import source_specs

    produced = produce_mixed(env, n_good=40)
    s = env.settings
    specs = source_specs(s)
    ensure_tables(spark, s, specs)
    for spec in specs:
        kafka = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", kafka_settings().kafka_bootstrap_servers)
            .option("subscribe", spec.topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
        )
        # a fixed batch timestamp, as Spark restores it from the offset log on a replay
        ingested_at = (NOW + timedelta(minutes=1)).replace(tzinfo=None)
        batch = prepare(kafka).withColumn("ingested_at", F.lit(ingested_at))
        writer = BronzeBatchWriter(spark, s, spec)
        writer(batch, 7)
        first = writer.reports[-1]
        assert first.bronze > 0 and first.dlq_rows > 0
        versions = DeltaTable.forPath(spark, spec.table_uri).history().count()
        writer(batch, 7)  # the replay
        replay = writer.reports[-1]
        assert DeltaTable.forPath(spark, spec.table_uri).history().count() == versions
        assert (replay.bronze, replay.already_ingested) == (0, first.bronze)
        assert replay.dlq == first.dlq  # classified exactly as the first time
        writer(batch, 8)  # the same records under a new batch id
        assert (writer.reports[-1].bronze, writer.reports[-1].already_ingested) == (0, first.bronze)
    records, dlq = streaming_dlq(env)
    assert len(records) == 3 * len(dlq)
    assert_reconciles(spark, env, produced)


def test_schema_evolution_v1_and_v2_in_one_topic(spark: Any, env: Env, tmp_path: Path) -> None:
    """v2 = v1 + an optional field with a default, registered under the test subject: records of
    both versions land in Bronze, read into the current (v2) reader schema."""
    v2 = json.loads(json.dumps(TX_SCHEMA))
    v2["fields"].append(
        {"name": "risk_hint", "type": ["null", "string"], "default": None, "doc": "Test field added in v2."}
    )
    v2_id = register(f"{env.raw}-value", v2)
    assert v2_id != env.tx_id
    reader = tmp_path / "transaction_v2.avsc"
    reader.write_text(json.dumps(v2))
    produced = Produced()
    s = Sender(produced)
    for i in range(20):
        s.send(env.raw, f"card-{i}", encode(TX_SCHEMA, env.tx_id, txn(i)), "bronze")
        s.send(env.raw, f"card-{i}", encode(v2, v2_id, txn(1000 + i, risk_hint=f"hint-{i}")), "bronze")
    s.flush()
    settings = env.settings.model_copy(update={"transaction_schema": reader})
    run_available_now(spark, settings)
    tx = bronze(spark, settings, settings.transactions_table)
    assert tx.count() == 40
    by_schema = {r["schema_id"]: r["count"] for r in tx.groupBy("schema_id").count().collect()}
    assert by_schema == {env.tx_id: 20, v2_id: 20}
    assert tx.where(f"schema_id = {env.tx_id} AND risk_hint IS NOT NULL").count() == 0  # the default
    assert {r["risk_hint"] for r in tx.where(f"schema_id = {v2_id}").collect()} == {
        f"hint-{i}" for i in range(20)
    }
    _, dlq = streaming_dlq(env)
    assert not dlq


def test_quality_rules_mean_the_same_in_spark_and_python(spark: Any) -> None:
    """The two interpretations of the declarative rules agree row by row."""
    from pyspark.sql import functions as F  # noqa: N812

    from streaming.decode import reader_struct
    from streaming.quality import failure_column, first_failure, transaction_rules
    from streaming.sources import source_specs

    settings = StreamingSettings()
    rules = transaction_rules(settings)
    ref = datetime(2026, 6, 1, 12, tzinfo=UTC)
    t0 = ref - timedelta(minutes=5)
    cases = [
        txn(1, event_time=t0),
        txn(2, event_time=t0, card_id=None),
        txn(3, event_time=t0, card_id=" "),
        txn(4, event_time=t0, amount=Decimal("0.00")),
        txn(5, event_time=t0, amount=Decimal("100000.01")),
        txn(6, event_time=t0, currency="ABC"),
        txn(7, event_time=ref + timedelta(seconds=301)),
        txn(8, event_time=ref + timedelta(seconds=300)),
        txn(9, event_time=ref - timedelta(days=1826)),
        txn(10, event_time=t0, channel="atm"),
        txn(11, event_time=t0, mcc="12a4"),
        txn(12, event_time=t0, country="FRA"),
        txn(13, event_time=t0, latitude=-90.5),
        txn(14, event_time=t0, longitude=float("nan")),
        txn(15, event_time=t0, mcc=None, channel=None, country=None, latitude=None, longitude=None),
        txn(16, event_time=None, currency="XXX"),
    ]
    schema = reader_struct(spark, source_specs(settings)[0].reader_schema)
    df = spark.createDataFrame(cases, schema).withColumn("ref", F.lit(ref.replace(tzinfo=None)))
    got = df.select("transaction_id", failure_column(rules, F.col("ref")).alias("f")).collect()
    spark_says = {r["transaction_id"]: (r["f"]["reason"], r["f"]["field"]) if r["f"] else None for r in got}
    python_says = {}
    for c in cases:
        f = first_failure(rules, c, ref)
        python_says[c["transaction_id"]] = (f.reason, f.field) if f else None
    assert spark_says == python_says
    assert sum(v is None for v in python_says.values()) == 3  # the valid ones, so the test can fail


def test_framing_means_the_same_in_spark_and_python(spark: Any) -> None:
    from pyspark.sql import functions as F  # noqa: N812

    from streaming.decode import body_column, frame_error_column, schema_id_column
    from streaming.wire import FrameError, parse_frame

    values = [None, b"", b"\x00", b"\x00\x00\x00\x00", b"\x07\x00\x00\x00\x01ab", b"\x00\x00\x00\x01\x00",
              b"\x00\x00\x00\x30\x39body", b"\x00\xff\xff\xff\xffx", b"{}"]  # fmt: skip
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, value binary")
    rows = df.select(
        "i",
        schema_id_column(F.col("value")).alias("sid"),
        body_column(F.col("value")).alias("body"),
        frame_error_column(F.col("value")).alias("err"),
    ).collect()
    for r in sorted(rows, key=lambda r: r["i"]):
        try:
            f = parse_frame(values[r["i"]])
            assert (r["err"], r["sid"], bytes(r["body"])) == (None, f.schema_id, f.body)
        except FrameError as exc:
            assert r["err"] is not None, values[r["i"]]
            assert (r["err"]["reason"], r["err"]["error"]) == (exc.reason, str(exc))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def delta_commits(settings: StreamingSettings, table: str) -> int:
    return sum(1 for k in s3_keys(settings.table_key(table) + "/_delta_log/") if k.endswith(".json"))


def cli(env: Env, *args: str, port: int = 0) -> list[str]:
    s = env.settings
    return [
        sys.executable, "-m", "streaming", "run",
        "--raw-topic", s.raw_topic_name, "--labels-topic", s.labels_topic_name,
        "--dlq-topic", s.dlq_topic_name,
        "--transactions-table", s.transactions_table, "--labels-table", s.labels_table,
        "--checkpoint-prefix", s.checkpoint_prefix, "--metrics-port", str(port),
        "--maintenance-interval", "0",
        *args,
    ]  # fmt: skip


def test_kill_9_mid_run_then_restart_loses_and_duplicates_nothing(
    spark: Any, env: Env, tmp_path: Path
) -> None:
    """The streaming driver (Python and its JVM) is killed with SIGKILL while micro-batches are in
    flight, restarted from its checkpoint, and the reconciliation still holds exactly."""
    produced = produce_mixed(env, n_good=600)
    log_path = tmp_path / "streaming.log"
    port = free_port()
    run_env = {**os.environ, "SPARK_LOG_LEVEL": "ERROR"}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cli(env, "--trigger-interval", "0", "--max-offsets-per-trigger", "100", port=port),
            cwd=ROOT,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the JVM dies with it
        )
        try:
            deadline = time.monotonic() + 420
            served = False
            while delta_commits(env.settings, env.settings.transactions_table) < 3:  # create + 2 batches
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    "no micro-batch committed in time\n" + log_path.read_text()[-3000:]
                )
                if not served:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                            served = b"fraud_streaming_query_active" in r.read()
                    except OSError:
                        pass
                time.sleep(0.5)
            assert served, "the metrics endpoint never answered"
            time.sleep(1.5)  # into the next micro-batch
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    before = bronze(spark, env.settings, env.settings.transactions_table).count()
    assert before < produced.count("bronze"), "the run finished before the kill: nothing was tested"

    # the batch planned before the kill is replayed with its offsets, the rest in one batch
    restart = subprocess.run(
        cli(env, "--available-now", "--max-offsets-per-trigger", "100000"),
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = restart.stdout + restart.stderr
    errors = [line for line in out.splitlines() if "ERROR" in line or "Exception" in line]
    assert restart.returncode == 0, "\n".join(errors[:20]) + "\n...\n" + out[-2000:]
    assert_reconciles(spark, env, produced)
