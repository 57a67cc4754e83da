"""Dead-letter records of the streaming stage, and reading them back.

A DLQ record is the original Kafka key and value bytes (untouched, so ``make replay-dlq`` can
decode and re-send a fixed record) with the headers of :mod:`contracts.dlq`: stage
(``streaming.decode`` | ``streaming.quality`` | ``streaming.dedup``), reason, field, error, and the
identity of the source record (topic, partition, offset, timestamp). A micro-batch replayed after a
crash sends its DLQ records again, byte-identical (the DLQ is at-least-once): readers collapse them
on the source identity (:func:`distinct_streaming_records`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from pyspark.sql import functions as F  # noqa: N812

from contracts.dlq import CONTENT_AVRO, CONTENT_BYTES, MAX_ERROR_CHARS, STREAMING_STAGE_PREFIX, header_dict

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

ISO_MILLIS: Final = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"


def dlq_frame(df: DataFrame, event_type: str) -> DataFrame:
    """Kafka sink rows (``key``, ``value``, ``headers``) for classified rows of ``df``.

    ``df`` carries ``_key``, ``_value``, the Kafka metadata columns, ``_schema_id``, ``_stage``,
    ``_reason``, ``_field`` and ``_error``.
    """

    from streaming.decode import framed_column

    def h(name: str, value: Column) -> Column:
        return F.struct(F.lit(name).alias("key"), F.encode(value.cast("string"), "UTF-8").alias("value"))

    headers = F.array(
        h("stage", F.col("_stage")),
        h("reason", F.col("_reason")),
        h("field", F.coalesce(F.col("_field"), F.lit(""))),
        h("error", F.substring(F.coalesce(F.col("_error"), F.lit("")), 1, MAX_ERROR_CHARS)),
        h("source", F.col("kafka_topic")),
        h("error_time", F.date_format(F.col("ingested_at"), ISO_MILLIS)),
        h("event_type", F.lit(event_type)),
        h("content_type", F.when(framed_column(F.col("_value")), CONTENT_AVRO).otherwise(CONTENT_BYTES)),
        h("source_topic", F.col("kafka_topic")),
        h("source_partition", F.col("kafka_partition")),
        h("source_offset", F.col("kafka_offset")),
        h("source_timestamp", F.unix_millis(F.col("kafka_timestamp"))),
        h("schema_id", F.col("_schema_id")),
    )
    # a header without a value (no schema id) is left out rather than sent empty
    headers = F.filter(headers, lambda x: x["value"].isNotNull())
    return df.select(F.col("_key").alias("key"), F.col("_value").alias("value"), headers.alias("headers"))


# ----------------------------------------------------------------------------- reading it back


@dataclass(frozen=True)
class DlqRecord:
    headers: dict[str, str]
    key: bytes | None
    value: bytes | None

    @property
    def stage(self) -> str:
        return self.headers.get("stage", "")

    @property
    def reason(self) -> str:
        return self.headers.get("reason", "")

    @property
    def identity(self) -> tuple[str, int, int] | None:
        """(source topic, partition, offset) of a streaming-stage record; None for other stages."""
        h = self.headers
        try:
            return (h["source_topic"], int(h["source_partition"]), int(h["source_offset"]))
        except (KeyError, ValueError):
            return None


def read_dlq(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[DlqRecord]:
    """Every record of ``topic`` from the beginning to the end offsets seen at the start.

    Reads with manual assignment and no consumer group: nothing is committed.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "streaming-dlq-reader", "enable.auto.commit": False}
    )
    try:
        md = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if md.error is not None:
            raise RuntimeError(f"DLQ topic {topic}: {md.error}")
        ends: dict[int, int] = {}
        assign = []
        for p in md.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if high > low:
                ends[p] = high
                assign.append(TopicPartition(topic, p, low))
        consumer.assign(assign)
        out: list[DlqRecord] = []
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(DlqRecord(header_dict(msg.headers()), msg.key(), msg.value()))
            p, offset = msg.partition(), msg.offset()
            if p in ends and offset is not None and offset + 1 >= ends[p]:
                del ends[p]
        if ends:
            raise TimeoutError(
                f"DLQ topic {topic}: partitions {sorted(ends)} not read to the end in {timeout_s}s"
            )
        return out
    finally:
        consumer.close()


def distinct_streaming_records(records: list[DlqRecord]) -> dict[tuple[str, int, int], DlqRecord]:
    """Streaming-stage DLQ records by the identity of their source record (replays collapse)."""
    out: dict[tuple[str, int, int], DlqRecord] = {}
    for r in records:
        ident = r.identity
        if r.stage.startswith(STREAMING_STAGE_PREFIX) and ident is not None:
            out.setdefault(ident, r)
    return out


def summary(records: list[DlqRecord]) -> dict[str, Any]:
    """Counts by stage and reason: all records, and streaming ones once per source record."""
    distinct = distinct_streaming_records(records)
    streaming_all = sum(1 for r in records if r.stage.startswith(STREAMING_STAGE_PREFIX))
    return {
        "records": len(records),
        "streaming_records": streaming_all,
        "streaming_distinct": len(distinct),
        "streaming_replayed_copies": streaming_all - len(distinct),
        "by_stage_reason": dict(Counter(f"{r.stage}/{r.reason}" for r in records).most_common()),
        "streaming_distinct_by_reason": dict(
            Counter(f"{r.stage}/{r.reason}" for r in distinct.values()).most_common()
        ),
    }
