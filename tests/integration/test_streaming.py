"""Kafka → Bronze for real: Kafka, the Schema Registry, Spark, Delta on the object store, Trino.

Every test works on its own topics, registry subjects, Delta tables, checkpoint and Trino names
(unique suffix, streaming_support.stream_env) and removes them afterwards; the platform's own topics
and tables are never touched. Records are produced with the contract's Avro schemas.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from streaming_support import (
    NOW,
    TX_SCHEMA,
    Env,
    Produced,
    Sender,
    assert_reconciles,
    bronze,
    encode,
    produce_late_duplicates,
    produce_mixed,
    register,
    run_available_now,
    streaming_dlq,
    txn,
)

from common import trino_client
from common.settings import kafka_settings
from streaming.batch import BatchReport
from streaming.settings import StreamingSettings

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow, pytest.mark.timeout(900)]


def test_reconciliation_trino_metrics_and_maintenance(spark: Any, env: Env) -> None:
    """N events with every kind of bad input → Bronze + DLQ = N, no duplicate ids, Trino agrees;
    then the table maintenance of the same tables."""
    from streaming.job import attach_metrics
    from streaming.metrics import StreamingMetrics

    produced = produce_mixed(env, n_good=200)
    # copies of early transactions sent last: a later micro-batch finds their originals in Bronze
    produce_late_duplicates(env, produced, [5, 7])
    settings = env.settings.model_copy(update={"max_offsets_per_trigger": 120})
    metrics = StreamingMetrics()
    listener = attach_metrics(spark, metrics, settings)
    name = settings.query_name("transaction")
    try:
        reports = run_available_now(spark, settings, metrics=metrics)
        # Spark delivers listener events asynchronously: the last progress (lag 0) may arrive after
        # the query stopped. Wait for it (bounded) before the listener goes; the asserts come below.
        lags = [{"query": name, "topic": env.raw, "partition": str(p)} for p in range(3)]
        lags.append({"query": settings.query_name("label"), "topic": env.labels, "partition": "0"})
        sample = metrics.registry.get_sample_value
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            (sample("fraud_streaming_batches_total", {"query": name}) or 0) >= 2
            and all(sample("fraud_streaming_kafka_lag_records", lag) == 0 for lag in lags)
        ):
            time.sleep(0.2)
    finally:
        spark.streams.removeListener(listener)
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
    cat, schema = trino_client.catalog(), env.settings.bronze_schema
    n_tx = trino_client.rows(f"SELECT count(*) FROM {cat}.{schema}.{env.settings.transactions_table}")[0][0]
    n_lb = trino_client.rows(f"SELECT count(*) FROM {cat}.{schema}.{env.settings.labels_table}")[0][0]
    assert (n_tx, n_lb) == (tx.count(), bronze(spark, env.settings, env.settings.labels_table).count())
    assert trino_client.rows(
        f"SELECT amount, currency FROM {cat}.{schema}.{env.settings.transactions_table} "
        "WHERE transaction_id = 'tx-00001'"
    ) == [[Decimal("2.01"), "EUR"]]

    # metrics: rows by table and DLQ reason, lag 0 after catching up, a last-batch time
    assert sample("fraud_streaming_bronze_rows_total", {"table": env.settings.transactions_table}) == n_tx
    assert (
        sample(
            "fraud_streaming_dlq_rows_total",
            {"event_type": "transaction", "stage": "streaming.decode", "reason": "not_wire_format"},
        )
        == produced.count("streaming.decode/not_wire_format") - 1
    )  # one of them was a label
    assert (sample("fraud_streaming_batches_total", {"query": name}) or 0) >= 2
    assert (sample("fraud_streaming_last_batch_timestamp_seconds", {"query": name}) or 0) > time.time() - 600
    for lag in lags:
        assert sample("fraud_streaming_kafka_lag_records", lag) == 0, lag

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

    from streaming.batch import BronzeBatchWriter
    from streaming.job import ensure_tables, prepare
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
        reports: list[BatchReport] = []
        writer = BronzeBatchWriter(spark, s, spec, on_batch=[reports.append])
        writer(batch, 7)
        first = reports[-1]
        assert first.bronze > 0 and first.dlq_rows > 0
        versions = DeltaTable.forPath(spark, spec.table_uri).history().count()
        writer(batch, 7)  # the replay
        replay = reports[-1]
        assert DeltaTable.forPath(spark, spec.table_uri).history().count() == versions
        assert (replay.bronze, replay.already_ingested) == (0, first.bronze)
        assert replay.dlq == first.dlq  # classified exactly as the first time
        writer(batch, 8)  # the same records under a new batch id
        assert (reports[-1].bronze, reports[-1].already_ingested) == (0, first.bronze)
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
    v2_id = register(env.raw, v2)
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
