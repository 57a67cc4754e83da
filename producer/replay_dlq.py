"""``make replay-dlq``: re-validate dead-lettered records and re-send those that now pass.

The DLQ is read with its own consumer group (``PRODUCER_DLQ_REPLAY_GROUP``) from the group's
committed offsets up to the end offsets seen at start (records arriving meanwhile wait for the
next run). Each record is re-validated from its original bytes:

* ``application/json`` payloads (producer validation/serialisation failures) are parsed;
* Confluent wire-format payloads (``producer.deliver`` failures, and later stages such as
  ``streaming.*`` whose payload is the Avro record as read from Kafka) are decoded with their
  writer schema, fetched from the registry by the id in the header.

Then: valid now → re-sent to ``transactions.raw`` or ``transactions.labels`` (by the
``event_type`` header, else the record name, else the ``source_topic`` header) through the same
serialise/produce path; still invalid → left in the DLQ (not re-sent), counted by reason;
undecodable (not JSON, unknown schema id, corrupt Avro) → left, counted by reason; records of
``streaming.dedup`` (duplicates the stream already holds) are never re-sent, only counted.

Offsets are committed per batch, only after every re-sent record of the batch was acknowledged;
if a re-send fails nothing of that batch is committed and the run exits non-zero, so a record is
never lost between the DLQ and the target topic. A record left in the DLQ is not revisited by
later runs of the same group; ``--from-beginning`` re-reads the whole DLQ (records that pass are
then sent again: downstream deduplicates on ``transaction_id``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import BaseModel

from contracts.avro import RECORD_EVENT_TYPES
from contracts.dlq import CONTENT_AVRO, CONTENT_JSON, STAGE_DEDUP, header_dict
from contracts.events import MODELS, ValidationFailure, validate
from contracts.wire import MAGIC_BYTE, WireFormatError
from producer.encoders import WireDecoder
from producer.pipeline import Pipeline, StartupError

log = logging.getLogger(__name__)

BATCH: Final = 500
MAX_SAMPLES: Final = 20
#: Stages whose records are not failures to fix: a duplicate the stream already holds would only
#: come back as a duplicate again. Left in the DLQ and counted, never re-sent.
NOT_REPLAYABLE_STAGES: Final = frozenset({STAGE_DEDUP})


@dataclass(frozen=True)
class Resend:
    event_type: str
    model: BaseModel


@dataclass(frozen=True)
class StillInvalid:
    event_type: str
    failure: ValidationFailure


@dataclass(frozen=True)
class Undecodable:
    reason: str
    detail: str


@dataclass(frozen=True)
class NotReplayable:
    reason: str
    detail: str


Decision = Resend | StillInvalid | Undecodable | NotReplayable


def _event_type(
    headers: dict[str, str], record_name: str | None, record: Any, labels_topic: str
) -> str | None:
    declared = headers.get("event_type")
    if declared:
        return declared
    if record_name and record_name in RECORD_EVENT_TYPES:
        return RECORD_EVENT_TYPES[record_name]
    topic = headers.get("source_topic") or headers.get("topic")
    if topic:
        return "label" if topic == labels_topic else "transaction"
    if isinstance(record, dict):
        return "label" if "label_time" in record and "amount" not in record else "transaction"
    return None


def decide(value: bytes | None, headers: dict[str, str], decoder: WireDecoder, labels_topic: str) -> Decision:
    """What to do with one DLQ record (no side effects besides registry look-ups)."""
    stage = headers.get("stage", "")
    if stage in NOT_REPLAYABLE_STAGES:
        return NotReplayable(headers.get("reason") or stage, f"{stage} records are not re-sent")
    if not value:
        return Undecodable("empty", "the record has no payload")
    content_type = headers.get("content_type", "")
    record_name: str | None = None
    if content_type == CONTENT_AVRO or (content_type != CONTENT_JSON and value[0] == MAGIC_BYTE):
        try:
            _, record_name, record = decoder.decode(value)
        except WireFormatError as exc:
            return Undecodable(exc.reason, str(exc))
    else:
        try:
            record = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = "not_json" if content_type == CONTENT_JSON else "not_wire_format"
            return Undecodable(reason, f"payload is neither wire-format Avro nor JSON: {exc}")
    event_type = _event_type(headers, record_name, record, labels_topic)
    if event_type not in MODELS:
        return Undecodable("unknown_event_type", f"cannot tell the event type ({event_type!r})")
    result = validate(event_type, record)
    if isinstance(result, ValidationFailure):
        return StillInvalid(event_type, result)
    return Resend(event_type, result)


def _count(table: dict[str, int], key: str) -> None:
    table[key] = table.get(key, 0) + 1


def replay_dlq(
    pipeline: Pipeline,
    consumer: Consumer,
    decoder: WireDecoder,
    *,
    dlq_topic: str,
    timeout_s: float = 10.0,
    flush_timeout_s: float = 60.0,
    max_records: int = 0,
    from_beginning: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Replay the DLQ once (see the module doc); returns the report."""
    try:
        metadata = consumer.list_topics(dlq_topic, timeout=timeout_s)
    except KafkaException as exc:
        raise StartupError(f"Kafka broker unreachable (no metadata within {timeout_s:.0f}s): {exc}") from exc
    topic_md = metadata.topics.get(dlq_topic)
    if topic_md is None or topic_md.error is not None:
        raise StartupError(f"DLQ topic {dlq_topic} does not exist")
    partitions = sorted(topic_md.partitions)
    committed = consumer.committed([TopicPartition(dlq_topic, p) for p in partitions], timeout=timeout_s)
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for tp in committed:
        low, high = consumer.get_watermark_offsets(TopicPartition(dlq_topic, tp.partition), timeout=timeout_s)
        starts[tp.partition] = low if from_beginning or tp.offset < 0 else max(tp.offset, low)
        ends[tp.partition] = high
    pending = {p for p in partitions if starts[p] < ends[p]}
    report: dict[str, Any] = {
        "dlq_topic": dlq_topic,
        "from_beginning": from_beginning,
        "start_offsets": {str(p): starts[p] for p in partitions},
        "end_offsets": {str(p): ends[p] for p in partitions},
        "read": 0,
        "resent": 0,
        "resent_by_event_type": {},
        "resent_by_original_stage_reason": {},
        "left_invalid": 0,
        "left_invalid_by_reason": {},
        "left_undecodable": 0,
        "left_undecodable_by_reason": {},
        "left_not_replayable": 0,
        "left_not_replayable_by_reason": {},
        "left_samples": [],
        "by_original_stage": {},
        "committed_offsets": {},
        "stopped_by": "end_of_dlq",
    }
    log.info("replaying %s: %d record(s) to read", dlq_topic, sum(ends[p] - starts[p] for p in partitions))
    consumer.assign([TopicPartition(dlq_topic, p, starts[p]) for p in partitions if p in pending])
    last_data = time.monotonic()
    while pending:
        if should_stop():
            report["stopped_by"] = "signal"
            break
        if max_records and report["read"] >= max_records:
            report["stopped_by"] = "max_records"
            break
        msgs = consumer.consume(num_messages=BATCH, timeout=1.0)
        if not msgs:
            if time.monotonic() - last_data > max(timeout_s, 5.0):
                report["stopped_by"] = "stalled"
                log.error("no DLQ record arrived for %.0fs while %s were pending", timeout_s, sorted(pending))
                break
            continue
        last_data = time.monotonic()
        handled: dict[int, int] = {}
        for msg in msgs:
            if msg.error() is not None:
                log.warning("DLQ consumer: %s", msg.error())
                continue
            p, off = msg.partition(), msg.offset()
            if p is None or off is None or p not in pending or off >= ends[p]:
                continue  # past the snapshot: next run
            if max_records and report["read"] >= max_records:
                break
            _handle(msg, pipeline, decoder, report)
            handled[p] = off + 1
            if off + 1 >= ends[p]:
                pending.discard(p)
        remaining = pipeline.flush(flush_timeout_s)
        if remaining or pipeline.undelivered:
            report["stopped_by"] = "resend_failed"
            log.error(
                "%d re-sent record(s) were not acknowledged; this batch's offsets are NOT committed",
                remaining + pipeline.undelivered,
            )
            break
        if handled:
            consumer.commit(
                offsets=[TopicPartition(dlq_topic, p, o) for p, o in handled.items()], asynchronous=False
            )
            for p, o in handled.items():
                report["committed_offsets"][str(p)] = o
    report["ok"] = report["stopped_by"] in ("end_of_dlq", "max_records")
    return report


def _handle(msg: Any, pipeline: Pipeline, decoder: WireDecoder, report: dict[str, Any]) -> None:
    headers = header_dict(msg.headers())
    stage = headers.get("stage") or "unknown"
    original = f"{stage}/{headers.get('reason') or 'unknown'}"
    report["read"] += 1
    _count(report["by_original_stage"], stage)
    decision = decide(msg.value(), headers, decoder, pipeline.topics.labels)
    where = {"partition": msg.partition(), "offset": msg.offset(), "stage": stage}
    if isinstance(decision, Resend):
        pipeline.send_valid(decision.event_type, decision.model)
        report["resent"] += 1
        _count(report["resent_by_event_type"], decision.event_type)
        _count(report["resent_by_original_stage_reason"], original)
        return
    if isinstance(decision, StillInvalid):
        report["left_invalid"] += 1
        _count(report["left_invalid_by_reason"], f"{decision.event_type}/{decision.failure.reason}")
        detail = decision.failure.message
    elif isinstance(decision, NotReplayable):
        report["left_not_replayable"] += 1
        _count(report["left_not_replayable_by_reason"], f"{stage}/{decision.reason}")
        detail = decision.detail
    else:
        report["left_undecodable"] += 1
        _count(report["left_undecodable_by_reason"], f"{stage}/{decision.reason}")
        detail = decision.detail
    if len(report["left_samples"]) < MAX_SAMPLES:
        report["left_samples"].append({**where, "why": detail[:300]})
