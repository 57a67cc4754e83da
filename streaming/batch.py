"""The micro-batch writer of a Bronze query: decode, check, de-duplicate, append, dead-letter.

Each micro-batch (:class:`BronzeBatchWriter`, the query's ``foreachBatch`` function):

1. is persisted once (``MEMORY_AND_DISK``): Kafka is read once per batch, never re-read for the
   several outputs;
2. is decoded by schema id, checked by the quality rules, looked up for duplicates (within the
   batch, and in Bronze for the batch's event dates and time ranges, see :mod:`streaming.dedup`),
   and every record classified as ``bronze``, ``dlq`` (with stage and reason) or
   ``already_ingested``;
3. appends its Bronze rows with ``txnAppId`` = the query id (stable across restarts of one
   checkpoint) and ``txnVersion`` = the batch id, so Delta ignores a second write of the same
   batch after a crash between the Delta commit and the checkpoint commit;
4. sends its DLQ records to Kafka with their source coordinates in the headers;
5. reports what it did (:class:`BatchReport`): logged, counted in the metrics, and handed to the
   ``on_batch`` listeners its owner attached.

Every decision depends only on the batch's records (fixed by the offset log), the ingest
timestamp of the batch (also in the offset log) and Bronze rows of *other* Kafka records, so a
replayed batch classifies every record exactly as the first attempt did: Bronze rows are never
duplicated (the records already written count as ``already_ingested``) and the DLQ receives the
same records again (at-least-once, de-duplicated by consumers on the source coordinates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F  # noqa: N812

from common.schema_registry import SchemaRegistry
from contracts.dlq import DUPLICATE, STAGE_DECODE, STAGE_DEDUP, STAGE_QUALITY
from contracts.wire import DECODE_REASONS
from streaming import dlq
from streaming.decode import decode, reader_struct, schema_id_column
from streaming.dedup import KAFKA_COLUMNS, flag_duplicates, time_ranges
from streaming.metrics import StreamingMetrics
from streaming.quality import failure_column
from streaming.schema_registry import UNRESOLVED, Resolution, WriterSchemas, stream_registry
from streaming.settings import StreamingSettings
from streaming.sources import SourceSpec
from streaming.tables import METADATA_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

BRONZE, DLQ, ALREADY = "bronze", "dlq", "already_ingested"
# Spark settings for the work of one micro-batch (set on the batch's session, restored after):
# micro-batches are small, so fewer Spark jobs beat adaptive re-planning (AQE runs every
# shuffle stage as a job of its own), and two shuffle partitions match local[2].
BATCH_CONF = {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "2"}


@dataclass
class BatchReport:
    """What one micro-batch did (logged, counted in the metrics, handed to the listeners)."""

    batch_id: int
    input_rows: int = 0
    seconds: float = 0.0
    bronze: int = 0  # rows appended
    already_ingested: int = 0  # records of a replayed batch already in Bronze
    dlq: dict[tuple[str, str], int] = field(default_factory=dict)  # (stage, reason) → records
    committed_at: float | None = None  # unix time the Bronze append was committed (visible)
    steps: dict[str, float] = field(default_factory=dict)  # step → seconds (where the batch went)

    @property
    def dlq_rows(self) -> int:
        return sum(self.dlq.values())

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.monotonic() - t0, 3)


class BronzeBatchWriter:
    """The ``foreachBatch`` function of one Bronze query (see the module doc)."""

    def __init__(
        self,
        spark: SparkSession,
        settings: StreamingSettings,
        spec: SourceSpec,
        registry: SchemaRegistry | None = None,
        metrics: StreamingMetrics | None = None,
        on_batch: Sequence[Callable[[BatchReport], None]] = (),
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.spec = spec
        self.writers = WriterSchemas(
            spark,
            registry or stream_registry(settings.kafka.schema_registry_url, settings.registry_timeout_s),
        )
        self.metrics = metrics
        self.listeners = list(on_batch)
        self.reader_type: StructType = reader_struct(spark, spec.reader_schema)
        self.app_id_fallback = f"fraud-streaming-{spec.query_name}"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel

        spec = self.spec
        started = time.monotonic()
        report = BatchReport(batch_id)
        app_id = self._app_id()
        cached: list[DataFrame] = []
        session = batch.sparkSession
        saved = {k: session.conf.get(k, None) for k in BATCH_CONF}
        for k, v in BATCH_CONF.items():
            session.conf.set(k, v)
        try:
            raw = batch.withColumn("_schema_id", schema_id_column(F.col("_value")))
            with report.step("decode"):
                # the first job reads Kafka once into the cache of `checked`, which keeps the raw
                # columns too: a second decoding pass (new schema ids) reads them from the cache
                resolution = self.writers.known(spec.reader_schema)
                checked, bounds = self._checked(raw, resolution, cached)
                if bounds["unresolved"]:  # ids first seen in this batch: ask the registry, decode again
                    ids = {int(i) for i in bounds["unresolved"]}
                    resolution = self.writers.resolve(spec.reader_schema, ids)
                    checked, bounds = self._checked(checked.select(*raw.columns), resolution, cached)
            report.input_rows = int(bounds["n"])
            if not bounds["n"]:
                return
            if bounds["valid"]:
                with report.step("lookup"):
                    existing = self._existing(session, bounds)
                flagged = flag_duplicates(checked, existing, self.spec.key_column)
            else:
                flagged = checked.select("*", F.lit(False).alias("_already"), F.lit(False).alias("_dup"))
            final = self._outcome(flagged).persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(final)
            dups = 0
            if bounds["valid"]:
                with report.step("dedup"):
                    # one job: the duplicate look-up fills the cache of `final`, which the writes read
                    counts = self._count(final)
                report.bronze, report.already_ingested, dups = counts
                if report.bronze:
                    with report.step("write"):
                        self._append_bronze(
                            final.where(F.col("_outcome") == BRONZE), batch_id, app_id, bounds
                        )
                    report.committed_at = time.time()
            failures = {k: int(v) for k, v in bounds["failures"].items() if v}
            if dups:
                failures[f"{STAGE_DEDUP}/{DUPLICATE}"] = dups
            report.dlq = {(k.split("/", 1)[0], k.split("/", 1)[1]): n for k, n in failures.items()}
            if failures:
                with report.step("dlq"):
                    self._send_dlq(dlq.dlq_frame(final.where(F.col("_outcome") == DLQ), spec.event_type))
        finally:
            with report.step("unpersist"):
                for df in cached:
                    df.unpersist()
            for k, old in saved.items():
                if old is None:
                    session.conf.unset(k)
                else:
                    session.conf.set(k, old)
            report.seconds = time.monotonic() - started
        self._record(report)

    def _checked(
        self, raw: DataFrame, resolution: Resolution, cached: list[DataFrame]
    ) -> tuple[DataFrame, dict[str, Any]]:
        """Decoded, quality-checked records (persisted) and their bounds (one Spark job)."""
        from pyspark import StorageLevel

        spec = self.spec
        decoded = decode(raw, spec, resolution, self.reader_type)
        quality = F.when(F.col("_decode_error").isNull(), failure_column(spec.rules, F.col("ingested_at")))
        checked = decoded.select(
            "*",
            quality.alias("_quality"),
            F.to_date(F.col(spec.time_column)).alias(spec.date_column),
        ).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(checked)
        return checked, self._bounds(checked)

    def _bounds(self, checked: DataFrame) -> dict[str, Any]:
        """Materialises ``checked``; counts by failure and the valid rows' dates and time ranges.

        One job: rows grouped by the minute of their event time (invalid rows in one null group),
        so the time ranges of the duplicate look-up are as tight as the data.
        """
        spec = self.spec
        valid = F.col("_decode_error").isNull() & F.col("_quality").isNull()
        t = F.col(spec.time_column)
        kinds = [("_decode_error", STAGE_DECODE, r) for r in DECODE_REASONS] + [
            ("_quality", STAGE_QUALITY, r) for r in dict.fromkeys(rule.reason for rule in spec.rules)
        ]
        names = [f"{stage}/{reason}" for _, stage, reason in kinds]
        failures = [
            F.count_if(F.col(f"{col}.reason") == reason).alias(name)
            for (col, _, reason), name in zip(kinds, names, strict=True)
        ]
        groups = (
            checked.groupBy(F.when(valid, F.date_trunc("minute", t)).alias("minute"))
            .agg(
                F.count(F.lit(1)).alias("n"),
                F.min(t).alias("lo"),
                F.max(t).alias("hi"),
                F.max("ingested_at").alias("ingested_at"),
                F.collect_set(F.when(F.col("_decode_error.reason") == UNRESOLVED, F.col("_schema_id"))).alias(
                    "unresolved"
                ),
                *failures,
            )
            .collect()
        )
        totals: dict[str, int] = dict.fromkeys(names, 0)
        out: dict[str, Any] = {"n": 0, "valid": 0, "dates": set(), "spans": [], "unresolved": set()}
        out["ingested_at"] = max((g["ingested_at"] for g in groups if g["ingested_at"]), default=None)
        for g in groups:
            out["n"] += g["n"]
            out["unresolved"] |= set(g["unresolved"])
            for name in totals:
                totals[name] += g[name]
            if g["minute"] is not None:
                out["valid"] += g["n"]
                out["dates"].add(g["minute"].date())
                out["spans"].append((g["lo"], g["hi"]))
        out["failures"] = totals
        return out

    def _existing(self, session: SparkSession, bounds: dict[str, Any]) -> DataFrame:
        """Bronze rows that may share a key with this batch's valid rows (see streaming/dedup.py).

        Small by construction (the batch's dates and time ranges), so it is broadcast. It is
        materialised now (a local checkpoint, one job): a plan that still read the Delta table
        would be invalidated in the cache by this batch's own Bronze commit and recomputed
        against the new version.
        """
        spec = self.spec
        t = F.col(spec.time_column)
        time_pred: Column = F.lit(False)
        for lo, hi in time_ranges(bounds["spans"]):
            time_pred = time_pred | t.between(F.lit(lo), F.lit(hi))
        pred = F.col(spec.date_column).isin(sorted(bounds["dates"])) & time_pred
        if self.settings.dedup_window_hours > 0:
            since = bounds["ingested_at"] - timedelta(hours=self.settings.dedup_window_hours)
            pred = pred & (F.col("ingested_at") >= F.lit(since))
        existing = (
            session.read.format("delta")
            .load(spec.table_uri)
            .where(pred)
            .select(
                F.col(spec.key_column).alias("_e_key"), *[F.col(c).alias(f"_e_{c}") for c in KAFKA_COLUMNS]
            )
        )
        return F.broadcast(existing.localCheckpoint(eager=True))

    @staticmethod
    def _count(final: DataFrame) -> tuple[int, int, int]:
        """Rows to Bronze, already ingested, and duplicates (materialises ``final``)."""
        row = final.agg(
            F.count_if(F.col("_outcome") == BRONZE).alias("bronze"),
            F.count_if(F.col("_outcome") == ALREADY).alias("already"),
            F.count_if(F.col("_dup")).alias("dups"),
        ).first()
        assert row is not None
        return int(row["bronze"]), int(row["already"]), int(row["dups"])

    def _outcome(self, df: DataFrame) -> DataFrame:
        spec = self.spec
        de, q, dup = F.col("_decode_error"), F.col("_quality"), F.col("_dup")
        dup_error = F.concat(
            F.lit(f"{spec.key_column} "),
            F.col(spec.key_column),
            F.lit(f" is already in {spec.table} or earlier in the batch (from another Kafka record)"),
        )
        return df.select(
            "*",
            F.when(de.isNotNull() | q.isNotNull() | dup, F.lit(DLQ))
            .when(F.col("_already"), F.lit(ALREADY))
            .otherwise(F.lit(BRONZE))
            .alias("_outcome"),
            F.when(de.isNotNull(), F.lit(STAGE_DECODE))
            .when(q.isNotNull(), F.lit(STAGE_QUALITY))
            .when(dup, F.lit(STAGE_DEDUP))
            .alias("_stage"),
            F.when(de.isNotNull(), de["reason"])
            .when(q.isNotNull(), q["reason"])
            .when(dup, F.lit(DUPLICATE))
            .alias("_reason"),
            F.when(q.isNotNull(), q["field"])
            .when(dup, F.lit(spec.key_column))
            .otherwise(F.lit(""))
            .alias("_field"),
            F.when(de.isNotNull(), de["error"])
            .when(q.isNotNull(), q["error"])
            .when(dup, dup_error)
            .alias("_error"),
        )

    # ------------------------------------------------------------------ outputs
    def _append_bronze(self, rows: DataFrame, batch_id: int, app_id: str, bounds: dict[str, Any]) -> None:
        spec = self.spec
        fields = [f.name for f in self.reader_type.fields]
        computed = {"schema_id": F.col("_schema_id"), "batch_id": F.lit(batch_id).cast("long")}
        out = rows.select(
            *fields,
            spec.date_column,
            *[computed.get(name, F.col(name)).alias(name) for name, _, _ in METADATA_COLUMNS],
        )
        n = self.settings.write_partitions
        # few files per batch: one per date (several dates: replays), else one per write partition
        out = out.repartition(n, spec.date_column) if len(bounds["dates"]) > 1 else out.coalesce(n)
        (
            out.write.format("delta")
            .mode("append")
            .partitionBy(spec.date_column)
            .option("txnAppId", app_id)
            .option("txnVersion", batch_id)
            .save(spec.table_uri)
        )

    def _send_dlq(self, out: DataFrame) -> None:
        (
            out.write.format("kafka")
            .option("kafka.bootstrap.servers", self.settings.kafka.kafka_bootstrap_servers)
            .option("kafka.acks", "all")
            .option("topic", self.settings.dlq_topic_name)
            .save()
        )

    def _app_id(self) -> str:
        """The Delta ``txnAppId``: the streaming query's id, stable across restarts of its checkpoint.

        A new checkpoint means a new query id, whose batch ids restart at 0 without colliding
        with the transaction versions the old query recorded.
        """
        query_id = self.spark.sparkContext.getLocalProperty("sql.streaming.queryId")
        return f"fraud-streaming-{query_id}" if query_id else self.app_id_fallback

    def _record(self, report: BatchReport) -> None:
        table = self.spec.table
        if self.metrics is not None:
            self.metrics.bronze_rows.labels(table).inc(report.bronze)
            self.metrics.skipped_rows.labels(table).inc(report.already_ingested)
            for (stage, reason), n in report.dlq.items():
                self.metrics.dlq_rows.labels(self.spec.event_type, stage, reason).inc(n)
        log.info(
            "%s batch %d: %d records in %.1fs → %d to %s, %d to the DLQ %s, %d already ingested; steps %s",
            self.spec.query_name,
            report.batch_id,
            report.input_rows,
            report.seconds,
            report.bronze,
            table,
            report.dlq_rows,
            {f"{s}/{r}": n for (s, r), n in report.dlq.items()},
            report.already_ingested,
            report.steps,
        )
        for listener in self.listeners:
            listener(report)
