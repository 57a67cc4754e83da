"""``python -m streaming``: run the Kafka → Bronze stream, maintain its tables, inspect its DLQ.

    python -m streaming run [--available-now] [--trigger-interval S] [--max-offsets-per-trigger N] ...
    python -m streaming maintain [--table transactions] [--no-optimize] [--no-vacuum] [--force]
    python -m streaming create-tables
    python -m streaming dlq-summary

Options override the ``STREAMING_*`` settings (see ``.env.example``).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

import typer

from common.logs import setup_logging
from common.reports import write_report
from streaming.session import streaming_spark
from streaming.settings import StreamingSettings

log = logging.getLogger("streaming")
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)
# a query that hits a known, harmless Spark bug is started again in-process this often at most
MAX_BUG_RESTARTS = 3


def _logging() -> None:
    setup_logging()


def _settings(**overrides: Any) -> StreamingSettings:
    return StreamingSettings(**{k: v for k, v in overrides.items() if v is not None})


@app.command()
def run(
    available_now: bool = typer.Option(False, help="process what is in Kafka now, then stop (backfill)"),
    trigger_interval: float = typer.Option(None, help="seconds between micro-batches"),
    max_offsets_per_trigger: int = typer.Option(None, help="records per micro-batch at most"),
    raw_topic: str = typer.Option(None, help="transactions topic"),
    labels_topic: str = typer.Option(None, help="labels topic"),
    dlq_topic: str = typer.Option(None, help="dead-letter topic"),
    transactions_table: str = typer.Option(None, help="Bronze transactions table name"),
    labels_table: str = typer.Option(None, help="Bronze labels table name"),
    checkpoint_prefix: str = typer.Option(None, help="checkpoint key prefix in the lakehouse bucket"),
    query_prefix: str = typer.Option(None, help="query names: <prefix>_transactions, <prefix>_labels"),
    metrics_port: int = typer.Option(None, help="Prometheus port (0: none)"),
    maintenance_interval: int = typer.Option(None, help="minutes between in-driver maintenance (0: none)"),
) -> None:
    """Run the Kafka → Bronze queries (transactions, labels) until stopped.

    SIGTERM/SIGINT stop them cleanly; a query that fails stops the other and exits 1 (the
    supervisor restarts the service, which resumes from the checkpoints).
    """
    _logging()
    settings = _settings(
        trigger_interval_s=trigger_interval,
        max_offsets_per_trigger=max_offsets_per_trigger,
        raw_topic=raw_topic,
        labels_topic=labels_topic,
        dlq_topic=dlq_topic,
        transactions_table=transactions_table,
        labels_table=labels_table,
        checkpoint_prefix=checkpoint_prefix,
        query_prefix=query_prefix,
        metrics_port=metrics_port,
        maintenance_interval_minutes=maintenance_interval,
    )
    from streaming.job import SOURCES, attach_metrics, build_stream, restartable_spark_bug
    from streaming.maintenance import MaintenanceScheduler
    from streaming.metrics import StreamingMetrics

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping (an interrupted micro-batch is redone from the checkpoint)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    metrics = StreamingMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    spark = streaming_spark(settings, "fraud-streaming")
    attach_metrics(spark, metrics, settings)
    queries = {
        source: build_stream(spark, settings, source=source, available_now=available_now, metrics=metrics)
        for source in SOURCES
    }
    scheduler = None
    if settings.maintenance_interval_minutes and not available_now:
        scheduler = MaintenanceScheduler(spark, settings, settings.maintenance_interval_minutes * 60, metrics)
        scheduler.start()
    code = 0
    restarts: dict[str, int] = dict.fromkeys(SOURCES, 0)
    try:
        # until stopped, all done (available-now), or one query fails
        while not stop.is_set():
            for src, q in list(queries.items()):
                exc = None if q.isActive else q.exception()
                if exc is not None and restartable_spark_bug(exc) and restarts[src] < MAX_BUG_RESTARTS:
                    restarts[src] += 1
                    log.warning("query %s hit SPARK-55271 after a replayed batch; starting it again", q.name)
                    queries[src] = build_stream(
                        spark, settings, source=src, available_now=available_now, metrics=metrics
                    )
            if any(not q.isActive and q.exception() is not None for q in queries.values()):
                break
            if not any(q.isActive for q in queries.values()):
                break
            time.sleep(1)
        for q in queries.values():
            if q.isActive:
                q.stop()
        for q in queries.values():
            exc = q.exception()
            if exc is not None:
                log.error("query %s failed: %s", q.name, str(exc)[:4000])
                code = 1
    except Exception as exc:
        log.error("the streaming queries failed: %s", str(exc)[:4000])
        code = 1
    finally:
        if scheduler is not None:
            scheduler.stop()
        spark.stop()
    log.info("streaming stopped (exit %d)", code)
    raise typer.Exit(code)


@app.command()
def maintain(
    table: list[str] = typer.Option(None, help="table(s) to maintain (default: all Bronze tables)"),
    optimize: bool = typer.Option(True, help="compact small files (OPTIMIZE)"),
    vacuum: bool = typer.Option(True, help="delete unreferenced files older than the retention"),
    retention_hours: int = typer.Option(None, help="VACUUM retention (>= 168)"),
    idle_minutes: float = typer.Option(15, help="refuse if a table was written more recently"),
    force: bool = typer.Option(False, help="run even though the stream wrote the table recently"),
    transactions_table: str = typer.Option(None, help="Bronze transactions table name"),
    labels_table: str = typer.Option(None, help="Bronze labels table name"),
) -> None:
    """Compact and vacuum the Bronze tables (for a scheduled task; see docs/design/streaming.md)."""
    _logging()
    from streaming.maintenance import TableBusyError
    from streaming.maintenance import maintain as run_maintenance

    settings = _settings(transactions_table=transactions_table, labels_table=labels_table)
    spark = streaming_spark(settings, "fraud-streaming-maintenance")
    try:
        reports = run_maintenance(
            spark,
            settings,
            tables=table or None,
            optimize=optimize,
            vacuum=vacuum,
            retention_hours=retention_hours,
            busy_within_s=None if force else idle_minutes * 60,
        )
    except (TableBusyError, ValueError) as exc:
        log.error("%s", exc)
        raise typer.Exit(2) from None
    finally:
        spark.stop()
    path = write_report("streaming-maintenance", {"at": time.time(), "tables": reports})
    typer.echo(json.dumps(reports, indent=2, default=str))
    log.info("report: %s", path)


@app.command("create-tables")
def create_tables() -> None:
    """Create the Bronze tables and register them in Trino (idempotent)."""
    _logging()
    from streaming.job import ensure_tables

    settings = _settings()
    spark = streaming_spark(settings, "fraud-streaming-tables")
    try:
        ensure_tables(spark, settings)
    finally:
        spark.stop()


@app.command("dlq-summary")
def dlq_summary(
    dlq_topic: str = typer.Option(None, help="dead-letter topic"),
    timeout: float = typer.Option(60, help="seconds to read the topic to its end"),
) -> None:
    """Count DLQ records by stage and reason; streaming records once per source record."""
    _logging()
    from streaming.dlq import read_dlq, summary

    settings = _settings(dlq_topic=dlq_topic)
    records = read_dlq(settings.kafka.kafka_bootstrap_servers, settings.dlq_topic_name, timeout_s=timeout)
    out = summary(records)
    typer.echo(json.dumps(out, indent=2))
    write_report("streaming-dlq-summary", out)
