"""Plumbing of the producer's integration tests: one test's topics (:func:`test_topics`, the
``topics`` fixture of tests/integration/conftest.py), the registry, reading topics back."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common.schema_registry import SchemaRegistry
from common.settings import kafka_settings
from contracts.avro import HISTORY_DIR, subject_for
from contracts.wire import parse_frame
from producer.pipeline import Pipeline, Topics
from producer.service import start
from producer.settings import ProducerSettings, get_settings
from producer.stream import run_stream

K = kafka_settings()


def settings(**overrides: Any) -> ProducerSettings:
    return get_settings().model_copy(update={"delivery_timeout_ms": 20_000, **overrides})


@functools.cache
def registry() -> SchemaRegistry:
    return SchemaRegistry(K.schema_registry_url)


@functools.cache
def writer_schema(schema_id: int) -> Any:
    return fastavro.parse_schema(json.loads(registry().client.get_schema(schema_id).schema_str))


def read_all(topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every record of ``topic`` (ordered by partition, then offset)."""
    consumer = Consumer(
        {
            "bootstrap.servers": K.kafka_bootstrap_servers,
            "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        pending = {p for p in parts if ends[p] > 0}
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            out.append(msg)
            if msg.offset() + 1 >= ends[msg.partition()]:
                pending.discard(msg.partition())
        assert not pending, f"could not read {topic} to its end"
        return sorted(out, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()


def end_offsets(topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": K.kafka_bootstrap_servers, "group.id": "it-offsets"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


def decode_with_writer_schema(value: bytes) -> tuple[int, dict[str, Any]]:
    """What any consumer does: read the id from the wire format, fetch it, decode with fastavro."""
    framed = parse_frame(value)
    schema_id, body = framed.schema_id, framed.body
    record = fastavro.schemaless_reader(io.BytesIO(body), writer_schema(schema_id))
    assert isinstance(record, dict)
    return schema_id, record


def good_event(i: int, card: str | None = None, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": f"tx-{i:05d}",
        "event_time": datetime(2025, 3, 1, tzinfo=UTC) + timedelta(seconds=i),
        "card_id": card or f"card-{i % 17:03d}",
        "customer_id": f"cust-{i % 17:03d}",
        "terminal_id": f"term-{i % 5}",
        "merchant_name": "Casa Rossi Market 12",
        "amount": round(5 + i * 0.37, 2),
        "currency": "EUR",
        "mcc": "5411",
        "channel": "card_present",
        "device_id": None,
        "latitude": 45.46,
        "longitude": 9.19,
        "country": "IT",
    }
    event.update(overrides)
    return event


@contextlib.contextmanager
def test_topics(unique: str) -> Iterator[Topics]:
    """One test's raw, labels and DLQ topics (and their subjects), deleted afterwards."""
    t = Topics(raw=f"it.{unique}.raw", labels=f"it.{unique}.labels", dlq=f"it.{unique}.dlq")
    admin = AdminClient({"bootstrap.servers": K.kafka_bootstrap_servers})
    specs = [NewTopic(t.raw, 6, 1), NewTopic(t.labels, 3, 1), NewTopic(t.dlq, 3, 1)]
    for fut in admin.create_topics(specs).values():
        fut.result(timeout=30)
    yield t
    for fut in admin.delete_topics([t.raw, t.labels, t.dlq]).values():
        fut.result(timeout=30)
    for topic in (t.raw, t.labels):
        registry().delete_subject(subject_for(topic))


def produce(topics: Topics, events: list[tuple[str, dict[str, Any]]], **kwargs: Any) -> Pipeline:
    rt = start("it-test", settings=settings(), topics=topics, spool_path=None, **kwargs)
    run_stream(rt.pipeline, events)
    assert rt.pipeline.flush(30) == 0
    return rt.pipeline


def v1_schema() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((HISTORY_DIR / "transaction.v1.avsc").read_text())
    return raw
