"""The streaming job's settings: every variable documented, names derived, unsafe values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values
from pydantic import ValidationError

from common.settings import kafka_settings, s3_settings
from streaming.dlq import DlqRecord, distinct_streaming_records, summary
from streaming.settings import StreamingSettings

ROOT = Path(__file__).resolve().parents[3]
ENV = dotenv_values(ROOT / ".env.example")


def test_every_field_is_listed_in_env_example() -> None:
    missing = [
        f"STREAMING_{f.upper()}"
        for f in StreamingSettings.model_fields
        if f"STREAMING_{f.upper()}" not in ENV
    ]
    assert not missing, f"add to .env.example: {missing}"


def test_empty_topics_mean_the_platform_topics() -> None:
    s = StreamingSettings()
    k = kafka_settings()
    assert (s.raw_topic_name, s.labels_topic_name, s.dlq_topic_name) == (
        k.kafka_topic_raw,
        k.kafka_topic_labels,
        k.kafka_topic_dlq,
    )


def test_tests_can_point_the_job_elsewhere() -> None:
    s = StreamingSettings(
        raw_topic="t.raw", transactions_table="tx_abc", checkpoint_prefix="_cp/x", query_prefix="q"
    )
    bucket = s3_settings().lakehouse_bucket
    assert s.raw_topic_name == "t.raw"
    assert s.table_uri("tx_abc") == f"s3a://{bucket}/bronze/tx_abc"
    assert s.table_uri("tx_abc", scheme="s3") == f"s3://{bucket}/bronze/tx_abc"
    assert s.query_name("transaction") == "q_transactions"
    assert s.checkpoint_uri(s.query_name("label")) == f"s3a://{bucket}/_cp/x/q_labels"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMING_MAX_OFFSETS_PER_TRIGGER", "1234")
    monkeypatch.setenv("STREAMING_TRIGGER_INTERVAL_S", "2.5")
    s = StreamingSettings()
    assert s.max_offsets_per_trigger == 1234
    assert s.trigger_interval_s == 2.5


def test_vacuum_retention_below_seven_days_is_refused() -> None:
    with pytest.raises(ValidationError, match="vacuum_retention_hours"):
        StreamingSettings(vacuum_retention_hours=24)


def test_defaults_are_the_documented_ones() -> None:
    s = StreamingSettings()
    assert s.metrics_port == int(ENV["STREAMING_METRICS_PORT"] or 0)
    assert s.transaction_schema.name == "transaction.avsc" and s.transaction_schema.exists()
    assert s.label_schema.name == "label.avsc" and s.label_schema.exists()
    assert s.max_event_age_days >= 365  # replays of months of simulated history must pass


def rec(stage: str, reason: str, offset: int | None, partition: int = 0) -> DlqRecord:
    h = {"stage": stage, "reason": reason}
    if offset is not None:
        h |= {
            "source_topic": "transactions.raw",
            "source_partition": str(partition),
            "source_offset": str(offset),
        }
    return DlqRecord(h, b"k", b"v")


def test_dlq_records_collapse_on_their_source_coordinates() -> None:
    """A replayed micro-batch sends its DLQ records again; consumers count each source record once."""
    records = [
        rec("streaming.decode", "undecodable", 5),
        rec("streaming.decode", "undecodable", 5),  # the replay
        rec("streaming.quality", "missing", 5, partition=1),
        rec("streaming.dedup", "duplicate", 9),
        rec("producer.validate", "unknown_currency", None),  # another stage: not the stream's
    ]
    distinct = distinct_streaming_records(records)
    assert set(distinct) == {
        ("transactions.raw", 0, 5),
        ("transactions.raw", 1, 5),
        ("transactions.raw", 0, 9),
    }
    s = summary(records)
    assert s["streaming_records"] == 4
    assert s["streaming_distinct"] == 3
    assert s["streaming_replayed_copies"] == 1
    assert s["streaming_distinct_by_reason"]["streaming.decode/undecodable"] == 1
