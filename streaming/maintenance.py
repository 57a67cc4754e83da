"""Bronze table maintenance: compaction of small files (OPTIMIZE) and VACUUM.

Streaming appends a few files per table per micro-batch. OPTIMIZE rewrites the partitions that
hold more than one file into large files Z-ordered by the event time (``dataChange=false``: readers
and the stream see no new data, and the append-only property holds). Ordering by event time keeps
each file's min/max event time tight, which is what keeps the stream's duplicate look-up
(:mod:`streaming.dedup`) to a few files; a plain bin-packing would mix hours in one file. Z-ORDER
is not incremental in Delta, so partitions already in one file are left alone (the file count per
partition comes from the Delta log, read with delta-rs). VACUUM then deletes files no longer
referenced and older than the retention, never below
:data:`~streaming.settings.SAFE_VACUUM_RETENTION_HOURS` (7 days): a lagging reader or a
time-travel query may still need them.

Who runs it: Delta on S3 has no safe concurrent commits from two drivers (no put-if-absent in
S3A's log store), so the long-running service runs :func:`maintain` itself, in a background thread
of the streaming driver (:class:`MaintenanceScheduler`, every
``STREAMING_MAINTENANCE_INTERVAL_MINUTES``): one JVM, where Delta serialises commits and OPTIMIZE
never conflicts with blind appends. The CLI (``python -m streaming maintain``) is for a scheduled
task when the stream does not run it, and refuses while the stream is writing the table
(``--force`` overrides).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common.settings import s3_settings
from streaming.settings import SAFE_VACUUM_RETENTION_HOURS, StreamingSettings
from streaming.sources import SourceSpec, source_specs

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from streaming.metrics import StreamingMetrics

log = logging.getLogger(__name__)


class TableBusyError(RuntimeError):
    """Another driver (the streaming service) committed to the table recently."""


def last_commit_age_s(spark: SparkSession, table_uri: str) -> float | None:
    """Seconds since the table's latest commit, or None when it is not a Delta table."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, table_uri):
        return None
    row = DeltaTable.forPath(spark, table_uri).history(1).select("timestamp").first()
    if row is None:
        return None
    ts: datetime = row["timestamp"]
    now = datetime.now(UTC).replace(tzinfo=None) if ts.tzinfo is None else datetime.now(UTC)
    return max(0.0, (now - ts).total_seconds())


def partitions_to_compact(spec: SourceSpec) -> list[str]:
    """Partition dates of the table that hold more than one data file (from the Delta log)."""
    import deltalake

    table = deltalake.DeltaTable(spec.table_uri_s3, storage_options=_delta_rs_options())
    values = table.get_add_actions(flatten=True).column(f"partition.{spec.date_column}").to_pylist()
    counts = Counter(str(v) for v in values if v is not None)
    return sorted(d for d, n in counts.items() if n > 1)


def _delta_rs_options() -> dict[str, str]:
    s = s3_settings()
    return {
        "AWS_ENDPOINT_URL": s.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": s.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": s.s3_secret_key.get_secret_value(),
        "AWS_REGION": s.s3_region,
        "AWS_ALLOW_HTTP": str(s.s3_endpoint_url.startswith("http://")).lower(),
    }


def maintain_table(
    spark: SparkSession,
    spec: SourceSpec,
    *,
    optimize: bool = True,
    vacuum: bool = True,
    retention_hours: int = SAFE_VACUUM_RETENTION_HOURS,
) -> dict[str, Any]:
    """OPTIMIZE (Z-ORDER BY the event time) the partitions with several files, then VACUUM."""
    from delta.tables import DeltaTable

    if retention_hours < SAFE_VACUUM_RETENTION_HOURS:
        raise ValueError(
            f"VACUUM retention {retention_hours}h is below the safe minimum of {SAFE_VACUUM_RETENTION_HOURS}h"
        )
    table = DeltaTable.forPath(spark, spec.table_uri)
    report: dict[str, Any] = {"table": spec.table, "location": spec.table_uri}
    started = time.monotonic()
    if optimize:
        dates = partitions_to_compact(spec)
        report["optimize"] = {"partitions": len(dates), "files_removed": 0, "files_added": 0}
        if dates:
            where = f"{spec.date_column} IN ({', '.join(repr(d) for d in dates)})"
            m = table.optimize().where(where).executeZOrderBy(spec.time_column).select("metrics.*").first()
            if m is not None:
                report["optimize"] |= {
                    "files_removed": int(m["numFilesRemoved"]),
                    "files_added": int(m["numFilesAdded"]),
                }
    if vacuum:
        table.vacuum(float(retention_hours))
        report["vacuum"] = {"retention_hours": retention_hours}
    detail = table.detail().select("numFiles", "sizeInBytes").first()
    if detail is not None:
        report["files"] = int(detail["numFiles"])
        report["size_bytes"] = int(detail["sizeInBytes"])
    report["seconds"] = round(time.monotonic() - started, 2)
    log.info("maintenance of %s: %s", spec.table, report)
    return report


def maintain(
    spark: SparkSession,
    settings: StreamingSettings,
    *,
    tables: list[str] | None = None,
    optimize: bool = True,
    vacuum: bool = True,
    retention_hours: int | None = None,
    busy_within_s: float | None = None,
    metrics: StreamingMetrics | None = None,
) -> list[dict[str, Any]]:
    """Maintain the Bronze tables (all, or those named in ``tables``).

    ``busy_within_s``: refuse (:class:`TableBusyError`) a table committed to less than this many
    seconds ago — another driver is writing it (the CLI's guard; None inside the stream).
    """
    specs = [s for s in source_specs(settings) if tables is None or s.table in tables]
    if tables is not None and len(specs) != len(set(tables)):
        known = [s.table for s in source_specs(settings)]
        raise ValueError(f"unknown table(s) {sorted(set(tables) - {s.table for s in specs})}; known: {known}")
    if busy_within_s is not None:
        for spec in specs:
            age = last_commit_age_s(spark, spec.table_uri)
            if age is not None and age < busy_within_s:
                raise TableBusyError(
                    f"{spec.table} was committed to {age:.0f}s ago: the streaming service is writing it. "
                    "Delta on S3 has no safe concurrent writers across drivers; let the service maintain "
                    "its tables (STREAMING_MAINTENANCE_INTERVAL_MINUTES), stop it first, or pass --force"
                )
    reports = []
    for spec in specs:
        reports.append(
            maintain_table(
                spark,
                spec,
                optimize=optimize,
                vacuum=vacuum,
                retention_hours=retention_hours or settings.vacuum_retention_hours,
            )
        )
        if metrics is not None:
            metrics.maintenance_last_success.labels(spec.table).set(time.time())
    return reports


#: Least wait after the service starts before its first maintenance (start-up load settles first).
FIRST_DELAY_S = 600.0
#: Delta log operations that count as maintenance of a table.
MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM END"})


def last_maintenance_age_s(spec: SourceSpec) -> float | None:
    """Seconds since the table's last OPTIMIZE or VACUUM commit (from the Delta log), None if never."""
    import deltalake

    table = deltalake.DeltaTable(spec.table_uri_s3, storage_options=_delta_rs_options())
    stamps = [int(c["timestamp"]) for c in table.history(500) if c.get("operation") in MAINTENANCE_OPERATIONS]
    return max(0.0, time.time() - max(stamps) / 1000) if stamps else None


def maintain_bronze(
    settings: StreamingSettings | None = None,
    *,
    spark: SparkSession | None = None,
    max_age_hours: float = 24.0,
    idle_minutes: float = 15.0,
) -> dict[str, Any]:
    """The scheduler's daily task (Airflow ``fraud_pipeline.maintain_bronze``).

    While the streaming service runs it maintains its own tables (see the module docstring), so
    this makes sure maintenance happened rather than doing it twice: a table maintained within
    ``max_age_hours`` is left alone; any other is maintained here, in this process's own Spark
    driver (``spark``, or one started and stopped here), and refused (:class:`TableBusyError`)
    if the stream committed to it within ``idle_minutes`` — the service is writing it but not
    maintaining it (``STREAMING_MAINTENANCE_INTERVAL_MINUTES=0``), a configuration to fix, not
    to race.
    """
    settings = settings or StreamingSettings()
    report: dict[str, Any] = {"up_to_date": {}, "maintained": []}
    due = []
    for spec in source_specs(settings):
        age = last_maintenance_age_s(spec)
        if age is not None and age < max_age_hours * 3600:
            report["up_to_date"][spec.table] = f"maintained {age / 3600:.1f} h ago"
        else:
            due.append(spec.table)
    if due:
        own = spark is None
        if spark is None:
            from streaming.session import streaming_spark

            spark = streaming_spark(settings, "fraud-bronze-maintenance")
        try:
            report["maintained"] = maintain(spark, settings, tables=due, busy_within_s=idle_minutes * 60)
        finally:
            if own:
                spark.stop()
    log.info("Bronze maintenance: %s", report)
    return report


class MaintenanceScheduler(threading.Thread):
    """Runs :func:`maintain` every ``interval_s`` inside the streaming driver, until stopped."""

    def __init__(
        self,
        spark: SparkSession,
        settings: StreamingSettings,
        interval_s: float,
        metrics: StreamingMetrics | None = None,
    ) -> None:
        super().__init__(name="bronze-maintenance", daemon=True)
        self.spark = spark
        self.settings = settings
        self.interval_s = interval_s
        self.metrics = metrics
        self._stop_event = threading.Event()

    def first_wait_s(self) -> float:
        """Until the most overdue table is due (by its last maintenance in the Delta log), at least
        FIRST_DELAY_S after start, so a service restarted often still maintains its tables."""
        try:
            ages = [last_maintenance_age_s(spec) for spec in source_specs(self.settings)]
        except Exception:  # no table yet, store unreachable: the regular interval
            log.warning("could not read the last maintenance time; next run in %.0fs", self.interval_s)
            return self.interval_s
        oldest = float("inf") if any(a is None for a in ages) else max(a for a in ages if a is not None)
        return max(FIRST_DELAY_S, self.interval_s - oldest)

    def run(self) -> None:
        wait = self.first_wait_s()
        log.info("Bronze maintenance in %.0fs, then every %.0fs", wait, self.interval_s)
        while not self._stop_event.wait(wait):
            try:
                maintain(self.spark, self.settings, metrics=self.metrics)
            except Exception:  # the next round retries; the stream keeps running
                log.exception("Bronze maintenance failed")
            wait = self.interval_s

    def stop(self) -> None:
        self._stop_event.set()
