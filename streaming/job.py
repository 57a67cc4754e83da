"""Kafka → Bronze: ``build_stream(spark, settings)`` starts one query and returns it.

Two queries, one per topic, in one driver: ``bronze_transactions`` (``transactions.raw`` →
``bronze.transactions``) and ``bronze_labels`` (``transactions.labels`` → ``bronze.labels``). On
a 2-core machine a micro-batch costs mostly fixed overhead (Spark jobs, object-store round trips,
the Delta commit), so the labels trickle (<1 % of the volume) gets its own, slower trigger instead
of doubling the work of every transactions batch; each query has its own checkpoint and Delta
``txnAppId``, and a problem in one (a labels schema gone wrong) does not stop the other. What a
micro-batch does is :mod:`streaming.batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from common.schema_registry import SchemaRegistry
from streaming.batch import BatchReport, BronzeBatchWriter
from streaming.metrics import PrometheusListener, StreamingMetrics
from streaming.settings import StreamingSettings
from streaming.sources import SourceSpec, source_specs
from streaming.tables import ensure_table, register_in_trino

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

SOURCES = ("transaction", "label")


def prepare(kafka_df: DataFrame) -> DataFrame:
    """The Kafka source's rows as the batch writer reads them.

    ``ingested_at`` is ``current_timestamp()`` of the streaming plan: Spark replaces it with the
    micro-batch's timestamp from the offset log, the same when a batch is replayed.
    """

    return kafka_df.select(
        F.col("key").alias("_key"),
        F.col("value").alias("_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    )


def ensure_tables(
    spark: SparkSession, settings: StreamingSettings, specs: list[SourceSpec] | None = None
) -> None:
    """Create (or evolve) the Bronze tables and register them in Trino, idempotently."""
    for spec in specs or source_specs(settings):
        ensure_table(spark, spec)
        if settings.register_in_trino:
            register_in_trino(settings.bronze_schema, spec.table, spec.table_uri_s3)


def attach_metrics(
    spark: SparkSession, metrics: StreamingMetrics, settings: StreamingSettings
) -> PrometheusListener:
    """Export the queries' progress to ``metrics``; remove with ``spark.streams.removeListener``."""
    listener = PrometheusListener(metrics, {s.query_name for s in source_specs(settings)})
    spark.streams.addListener(listener)
    return listener


def build_stream(
    spark: SparkSession,
    settings: StreamingSettings,
    *,
    source: str = "transaction",
    available_now: bool = False,
    metrics: StreamingMetrics | None = None,
    registry: SchemaRegistry | None = None,
    on_batch: Sequence[Callable[[BatchReport], None]] = (),
) -> StreamingQuery:
    """Start the Kafka → Bronze query of one source (``transaction`` or ``label``) and return it.

    Its table is created (or evolved) and registered first. ``available_now`` processes what is
    in Kafka at start in ``maxOffsetsPerTrigger``-sized batches and stops (backfills, tests);
    otherwise a batch starts every trigger interval of the source. ``metrics`` receives the
    per-batch row counts (the progress comes through :func:`attach_metrics`); each of ``on_batch``
    receives every :class:`~streaming.batch.BatchReport`.
    """
    specs = {s.event_type: s for s in source_specs(settings)}
    if source not in specs:
        raise ValueError(f"unknown source {source!r}; one of {sorted(specs)}")
    spec = specs[source]
    ensure_tables(spark, settings, [spec])
    writer = BronzeBatchWriter(spark, settings, spec, registry=registry, metrics=metrics, on_batch=on_batch)
    kafka_df = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.kafka_bootstrap_servers)
        .option("subscribe", spec.topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("maxOffsetsPerTrigger", str(settings.max_offsets_per_trigger))
        # a gap in the topic (retention outran the stream) stops the query: never silent loss
        .option("failOnDataLoss", "true")
        .load()
    )
    stream = prepare(kafka_df).writeStream.queryName(spec.query_name).foreachBatch(writer)
    stream = stream.option("checkpointLocation", settings.checkpoint_uri(spec.query_name))
    if available_now:
        stream = stream.trigger(availableNow=True)
    else:
        stream = stream.trigger(processingTime=f"{spec.trigger_interval_s} seconds")
    query = stream.start()
    log.info(
        "query %s (%s) started: %s → %s, checkpoint %s",
        spec.query_name,
        query.id,
        spec.topic,
        spec.table_uri,
        settings.checkpoint_uri(spec.query_name),
    )
    return query


def restartable_spark_bug(exc: object) -> bool:
    """True for SPARK-55271 (Spark 4.1.1): the Kafka source's progress metrics throw a
    NullPointerException after the first micro-batch of a restarted query when that batch was
    replayed from the offset log (``latestOffset()`` never ran). The failure comes after the batch
    and its checkpoint commit, so starting the query again simply continues."""
    parts: list[str] = []
    seen: object = exc
    for _ in range(5):  # the exception and its causes, with their JVM stack traces
        if seen is None:
            break
        parts += [str(seen), str(getattr(seen, "_stackTrace", "") or "")]
        seen = getattr(seen, "_cause", None)
    text = "\n".join(parts)
    if "KafkaMicroBatchStream" in text and "metrics" in text and "NullPointerException" in text:
        return True
    # the query's exception carries the NPE's message; its stack trace is on the cause
    return 'return value of "scala.Option.get()" is null' in text and "IterableOps.map" in text


def build_streams(
    spark: SparkSession,
    settings: StreamingSettings,
    *,
    available_now: bool = False,
    metrics: StreamingMetrics | None = None,
    registry: SchemaRegistry | None = None,
    on_batch: Sequence[Callable[[BatchReport], None]] = (),
) -> list[StreamingQuery]:
    """Both queries (transactions and labels), as the service runs them."""
    return [
        build_stream(
            spark,
            settings,
            source=s,
            available_now=available_now,
            metrics=metrics,
            registry=registry,
            on_batch=on_batch,
        )
        for s in SOURCES
    ]
