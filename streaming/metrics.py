"""Prometheus metrics of the streaming job, fed by a ``StreamingQueryListener`` and the batch writer.

The Kafka source commits no consumer offsets (Spark keeps them in its checkpoint), so consumer
lag cannot come from Kafka's group tooling: :func:`partition_lag` computes it per partition from
each progress event as ``latestOffset - endOffset`` (the newest offset available when the batch
was planned minus the offset the batch processed up to).

Metric names follow the platform's ``fraud_<service>_…`` convention in base units.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger(__name__)

BATCH_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300)


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    """A source's start/end/latest offset field: JSON text or already a dict (or null)."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        return {}
    return {
        str(topic): {str(p): int(o) for p, o in parts.items()}
        for topic, parts in value.items()
        if isinstance(parts, Mapping)
    }


def partition_lag(progress: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """Records behind per (topic, partition) from a ``StreamingQueryProgress`` JSON dict.

    Only Kafka sources carry ``latestOffset``; a partition missing from ``endOffset`` (just
    added) counts from 0. Lag never goes below 0.
    """
    out: dict[tuple[str, int], int] = {}
    for source in progress.get("sources") or []:
        latest = _offsets(source.get("latestOffset"))
        end = _offsets(source.get("endOffset"))
        for topic, parts in latest.items():
            done = end.get(topic, {})
            for p, offset in parts.items():
                out[(topic, int(p))] = max(0, offset - done.get(p, 0))
    return out


class StreamingMetrics:
    """The job's metrics in their own registry (several jobs can live in one test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        q = ["query"]
        self.input_rows_per_second = Gauge(
            "fraud_streaming_input_rows_per_second", "Rows/s arriving in the last micro-batch", q, registry=r
        )
        self.processed_rows_per_second = Gauge(
            "fraud_streaming_processed_rows_per_second",
            "Rows/s processed in the last micro-batch",
            q,
            registry=r,
        )
        self.batch_duration = Histogram(
            "fraud_streaming_batch_duration_seconds",
            "Wall time of a micro-batch (trigger execution)",
            q,
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.input_rows = Counter("fraud_streaming_input_rows", "Kafka records read", q, registry=r)
        self.batches = Counter("fraud_streaming_batches", "Micro-batches completed", q, registry=r)
        self.last_batch = Gauge(
            "fraud_streaming_last_batch_timestamp_seconds",
            "Unix time the last micro-batch ended",
            q,
            registry=r,
        )
        self.last_progress = Gauge(
            "fraud_streaming_last_progress_timestamp_seconds",
            "Unix time of the last progress or idle event (the query is alive)",
            q,
            registry=r,
        )
        self.query_active = Gauge(
            "fraud_streaming_query_active", "1 while the streaming query runs", q, registry=r
        )
        self.query_failures = Counter(
            "fraud_streaming_query_failures", "Queries that terminated with an error", q, registry=r
        )
        self.lag = Gauge(
            "fraud_streaming_kafka_lag_records",
            "Records behind the latest offset, per partition (from the query progress)",
            ["query", "topic", "partition"],
            registry=r,
        )
        self.bronze_rows = Counter(
            "fraud_streaming_bronze_rows", "Rows appended to a Bronze table", ["table"], registry=r
        )
        self.dlq_rows = Counter(
            "fraud_streaming_dlq_rows",
            "Records sent to the DLQ (a replayed micro-batch counts again)",
            ["event_type", "stage", "reason"],
            registry=r,
        )
        self.skipped_rows = Counter(
            "fraud_streaming_skipped_rows",
            "Records already in Bronze from an earlier attempt of the batch (neither re-written nor DLQ'd)",
            ["table"],
            registry=r,
        )
        self.maintenance_last_success = Gauge(
            "fraud_streaming_maintenance_last_success_timestamp_seconds",
            "Unix time of the last successful OPTIMIZE/VACUUM of a table",
            ["table"],
            registry=r,
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
        log.info("metrics on :%d/metrics", port)

    def observe_progress(self, progress: Mapping[str, Any], now: float | None = None) -> None:
        now = time.time() if now is None else now
        name = str(progress.get("name") or progress.get("id") or "")
        self.input_rows_per_second.labels(name).set(float(progress.get("inputRowsPerSecond") or 0.0))
        self.processed_rows_per_second.labels(name).set(float(progress.get("processedRowsPerSecond") or 0.0))
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if duration_ms is not None:
            self.batch_duration.labels(name).observe(float(duration_ms) / 1000)
        self.input_rows.labels(name).inc(int(progress.get("numInputRows") or 0))
        self.batches.labels(name).inc()
        self.last_batch.labels(name).set(now)
        self.last_progress.labels(name).set(now)
        for (topic, partition), lag in partition_lag(progress).items():
            self.lag.labels(name, topic, str(partition)).set(lag)

    def observe_idle(self, name: str, now: float | None = None) -> None:
        self.last_progress.labels(name).set(time.time() if now is None else now)

    def set_active(self, name: str, active: bool) -> None:
        self.query_active.labels(name).set(1 if active else 0)
        if active:
            self.last_progress.labels(name).set(time.time())


class PrometheusListener(StreamingQueryListener):
    """Feeds :class:`StreamingMetrics` from the events of the queries named in ``query_names``."""

    def __init__(self, metrics: StreamingMetrics, query_names: set[str]) -> None:
        self.metrics = metrics
        self.query_names = set(query_names)
        self._names: dict[str, str] = {}  # query id → name (idle/terminated events carry no name)

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802
        if event.name in self.query_names:
            self._names[str(event.id)] = event.name
            self.metrics.set_active(event.name, True)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        progress = json.loads(event.progress.json)
        if progress.get("name") not in self.query_names:
            return
        try:
            self.metrics.observe_progress(progress)
        except Exception:  # a metrics bug must never take the stream down
            log.exception("could not export the progress of batch %s", progress.get("batchId"))

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        name = self._names.get(str(event.id))
        if name is not None:
            self.metrics.observe_idle(name)

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        name = self._names.get(str(event.id))
        if name is None:
            return
        self.metrics.set_active(name, False)
        if event.exception:
            self.metrics.query_failures.labels(name).inc()
            log.error("query %s terminated with an error: %s", name, str(event.exception)[:2000])
