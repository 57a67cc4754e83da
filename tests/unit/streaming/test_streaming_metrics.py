"""Consumer lag from a StreamingQueryProgress (the Kafka source commits no offsets) and its export."""

from __future__ import annotations

import json
from typing import Any

from streaming.metrics import StreamingMetrics, partition_lag

# A progress event as Spark 4.1 emits it for a query over two topics (offsets as JSON objects).
PROGRESS: dict[str, Any] = json.loads(
    """
{
  "id": "5e81932f-1e55-4a59-a13f-3de0cb42c995",
  "runId": "83785a80-9c6f-4e62-afd8-88756c5f4e10",
  "name": "bronze_ingest",
  "timestamp": "2026-11-29T06:41:28.167Z",
  "batchId": 2,
  "batchDuration": 10250,
  "numInputRows": 66,
  "inputRowsPerSecond": 7.3,
  "processedRowsPerSecond": 6.4,
  "durationMs": {"addBatch": 8458, "commitOffsets": 1007, "getBatch": 1, "latestOffset": 1,
                 "queryPlanning": 14, "triggerExecution": 10250, "walCommit": 767},
  "stateOperators": [],
  "sources": [
    {
      "description": "KafkaV2[Subscribe[transactions.raw,transactions.labels]]",
      "startOffset": {"transactions.raw": {"0": 33, "1": 45}, "transactions.labels": {"0": 7}},
      "endOffset": {"transactions.raw": {"0": 42, "1": 58}, "transactions.labels": {"0": 9}},
      "latestOffset": {"transactions.raw": {"0": 1042, "1": 58, "2": 5}, "transactions.labels": {"0": 9}},
      "numInputRows": 66,
      "inputRowsPerSecond": 7.3,
      "processedRowsPerSecond": 6.4,
      "metrics": {"avgOffsetsBehindLatest": "335.0", "maxOffsetsBehindLatest": "1000",
                  "minOffsetsBehindLatest": "0"}
    }
  ],
  "sink": {"description": "ForeachBatchSink", "numOutputRows": -1}
}
"""
)


def test_lag_is_latest_minus_end_offset_per_partition() -> None:
    assert partition_lag(PROGRESS) == {
        ("transactions.raw", 0): 1000,
        ("transactions.raw", 1): 0,
        ("transactions.raw", 2): 5,  # a partition the query has not read yet counts from 0
        ("transactions.labels", 0): 0,
    }


def test_lag_accepts_offsets_as_json_text() -> None:
    """PySpark's SourceProgress exposes offsets as JSON strings; both spellings are read."""
    source = dict(PROGRESS["sources"][0])
    source["endOffset"] = json.dumps(source["endOffset"])
    source["latestOffset"] = json.dumps(source["latestOffset"])
    assert partition_lag({"sources": [source]}) == partition_lag(PROGRESS)


def test_no_lag_without_a_latest_offset() -> None:
    """Sources other than Kafka (or a first progress before planning) report no latestOffset."""
    assert partition_lag({"sources": [{"endOffset": {"t": {"0": 5}}, "latestOffset": None}]}) == {}
    assert partition_lag({}) == {}


def test_lag_never_negative() -> None:
    p = {"sources": [{"endOffset": {"t": {"0": 10}}, "latestOffset": {"t": {"0": 8}}}]}
    assert partition_lag(p) == {("t", 0): 0}


def sample(metrics: StreamingMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_progress_exports_rates_duration_lag_and_batch_time() -> None:
    m = StreamingMetrics()
    m.observe_progress(PROGRESS, now=1_800_000_000.0)
    q = {"query": "bronze_ingest"}
    assert sample(m, "fraud_streaming_input_rows_per_second", q) == 7.3
    assert sample(m, "fraud_streaming_processed_rows_per_second", q) == 6.4
    assert sample(m, "fraud_streaming_input_rows_total", q) == 66
    assert sample(m, "fraud_streaming_batches_total", q) == 1
    assert sample(m, "fraud_streaming_batch_duration_seconds_sum", q) == 10.25
    assert sample(m, "fraud_streaming_last_batch_timestamp_seconds", q) == 1_800_000_000.0
    lag = {"query": "bronze_ingest", "topic": "transactions.raw", "partition": "0"}
    assert sample(m, "fraud_streaming_kafka_lag_records", lag) == 1000


def test_idle_events_keep_the_progress_time_but_not_the_batch_time() -> None:
    m = StreamingMetrics()
    m.observe_progress(PROGRESS, now=100.0)
    m.observe_idle("bronze_ingest", now=200.0)
    q = {"query": "bronze_ingest"}
    assert sample(m, "fraud_streaming_last_batch_timestamp_seconds", q) == 100.0
    assert sample(m, "fraud_streaming_last_progress_timestamp_seconds", q) == 200.0


def test_each_job_has_its_own_registry() -> None:
    """Two jobs in one process (tests, the bench) do not collide on metric names."""
    a, b = StreamingMetrics(), StreamingMetrics()
    a.bronze_rows.labels("transactions").inc(3)
    assert sample(b, "fraud_streaming_bronze_rows_total", {"table": "transactions"}) is None
