"""Start-up, the three modes (simulate, replay a file, replay the DLQ) and their reports.

Start-up order, all before the first record is sent:

1. the Kafka broker answers and the target topics and the DLQ exist (else :class:`StartupError`,
   naming the broker address);
2. the registry answers (else :class:`RegistryUnavailableError`, naming its URL), each subject's
   compatibility is set and the current schema registered — a refusal raises
   :class:`SchemaRegistrationError` with the registry's 409 message;
3. the encoders are built with the registered ids.

The CLI (``producer/cli.py``) maps these to exit codes and draws the progress; tests and the bench
call the same functions with their own topics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from common.schema_registry import RegisteredSubject, SchemaRegistry
from common.settings import ROOT, KafkaSettings, kafka_settings
from contracts.avro import load_schema_str, subject_for
from producer.encoders import Encoder, WireDecoder, make_encoder
from producer.inject import BadEventInjector
from producer.pipeline import Pipeline, StartupError, Topics, check_broker, producer_config
from producer.settings import ProducerSettings, get_settings
from producer.sources import file_events, simulator_events
from producer.stream import StreamResult, run_stream

log = logging.getLogger(__name__)

SPOOL_PATH: Final = ROOT / "var" / "spool" / "producer-dlq.jsonl"
EVENT_TYPES: Final = ("transaction", "label")


@dataclass
class Runtime:
    """A started producer: its pipeline, registry client and registered subjects."""

    pipeline: Pipeline
    registry: SchemaRegistry
    registered: dict[str, RegisteredSubject]
    topics: Topics
    settings: ProducerSettings
    kafka: KafkaSettings
    started_at: str = field(default_factory=lambda: _now())
    injector: BadEventInjector | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def default_topics(k: KafkaSettings | None = None) -> Topics:
    k = k or kafka_settings()
    return Topics(raw=k.kafka_topic_raw, labels=k.kafka_topic_labels, dlq=k.kafka_topic_dlq)


def register_all(
    registry: SchemaRegistry,
    topics: Mapping[str, str],
    compatibility: str,
    schemas: Mapping[str, str] | None = None,
) -> dict[str, RegisteredSubject]:
    """Register the schema of each event type under its topic's value subject.

    ``topics`` maps event type → topic; ``schemas`` overrides the schema text (tests). Every
    subject is registered before anything is sent; the first refusal raises
    :class:`~common.schema_registry.SchemaRegistrationError` (under the default FULL_TRANSITIVE a
    field added or removed *with a default* registers; a changed type is refused with HTTP 409).
    """
    return {
        event_type: registry.ensure_subject(
            subject_for(topic), (schemas or {}).get(event_type) or load_schema_str(event_type), compatibility
        )
        for event_type, topic in topics.items()
    }


def build_encoders(
    registry: SchemaRegistry, registered: Mapping[str, RegisteredSubject], topics: Topics, serializer: str
) -> dict[str, Encoder]:
    return {
        event_type: make_encoder(
            serializer,
            reg.schema_str,
            reg.schema_id,
            registry=registry,
            topic=topics.target(event_type),
        )
        for event_type, reg in registered.items()
    }


def start(
    source: str,
    *,
    settings: ProducerSettings | None = None,
    kafka: KafkaSettings | None = None,
    topics: Topics | None = None,
    schemas: Mapping[str, str] | None = None,
    event_types: Iterable[str] = EVENT_TYPES,
    dead_letter_undeliverable: bool = True,
    on_delivered: Callable[[float], None] | None = None,
    spool_path: Path | None = SPOOL_PATH,
    conf_overrides: Mapping[str, Any] | None = None,
) -> Runtime:
    """Check the broker, register the schemas, build the pipeline. Nothing is sent here."""
    s = settings or get_settings()
    k = kafka or kafka_settings()
    topics = topics or default_topics(k)
    types = list(event_types)
    check_broker(
        k.kafka_bootstrap_servers, [*(topics.target(t) for t in types), topics.dlq], s.connect_timeout_s
    )
    registry = SchemaRegistry(k.schema_registry_url, s.connect_timeout_s)
    registered = register_all(
        registry, {t: topics.target(t) for t in types}, s.subject_compatibility, dict(schemas or {})
    )
    encoders = build_encoders(registry, registered, topics, s.serializer)
    conf = producer_config(k.kafka_bootstrap_servers, s, **dict(conf_overrides or {}))
    pipeline = Pipeline(
        conf,
        encoders,
        topics,
        source=source,
        spool_path=spool_path,
        dead_letter_undeliverable=dead_letter_undeliverable,
        on_delivered=on_delivered,
    )
    return Runtime(pipeline, registry, registered, topics, s, k)


def finish(rt: Runtime, mode: str, result: StreamResult | None, **extra: Any) -> dict[str, Any]:
    """Flush, then build the run report (``reconciliation.ok`` says whether every event is accounted)."""
    p = rt.pipeline
    flush_started = time.monotonic()
    left = p.flush(rt.settings.flush_timeout_s)
    flush_s = time.monotonic() - flush_started
    if left:
        log.error(
            "%d record(s) still unacknowledged after %.0fs of flushing", left, rt.settings.flush_timeout_s
        )
    counters = p.counters
    reconciliation = counters.reconciliation()
    reconciliation["in_flight_at_exit"] = left
    reconciliation["ok"] = bool(reconciliation["ok"]) and left == 0 and counters.dlq_write_failures == 0
    # throughput from the first event to the last acknowledgement (the source's start-up excluded)
    seconds = (result.seconds - result.first_event_s if result else 0.0) + flush_s
    total = sum(counters.accepted.values()) + sum(counters.dead_lettered_by_type().values())
    accepted = sum(counters.accepted.values())
    report: dict[str, Any] = {
        "mode": mode,
        "source": p.source,
        "started_at": rt.started_at,
        "finished_at": _now(),
        "stopped_by": result.stopped_by if result else None,
        "seconds": round(seconds, 3),
        "source_startup_s": round(result.first_event_s, 3) if result else None,
        "msgs_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "topics": {"raw": rt.topics.raw, "labels": rt.topics.labels, "dlq": rt.topics.dlq},
        "schemas": {
            reg.subject: {"id": reg.schema_id, "version": reg.version, "compatibility": reg.compatibility}
            for reg in rt.registered.values()
        },
        "config": {
            "acks": "all",
            "enable.idempotence": True,
            "compression": rt.settings.compression,
            "linger_ms": rt.settings.linger_ms,
            "batch_size": rt.settings.batch_size,
            "serializer": rt.settings.serializer,
        },
        **counters.as_report(),
        "avro_bytes_per_msg": round(counters.avro_bytes / accepted, 1) if accepted else None,
        "delivery_latency_s": {
            "p50_le": p.latency.quantile(0.5),
            "p99_le": p.latency.quantile(0.99),
            "mean": round(p.latency.total / p.latency.count, 4) if p.latency.count else None,
        },
        "fatal_error": p.fatal_error.str() if p.fatal_error else None,
        "reconciliation": reconciliation,
        **extra,
    }
    if counters.dlq_write_failures:
        report["spool_file"] = str(p.spool_path)
    return report


# --------------------------------------------------------------------------- modes


def simulate(
    rt: Runtime,
    *,
    seed: int,
    days: int,
    tps: float = 0.0,
    count: int = 0,
    duration_s: float = 0.0,
    inject_bad_rate: float = 0.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulator stream → Kafka; returns the report (flushed)."""
    injector = rt.injector = BadEventInjector(inject_bad_rate, seed=seed) if inject_bad_rate > 0 else None
    events = simulator_events(seed, days)
    result = run_stream(
        rt.pipeline,
        events,
        tps=tps,
        count=count,
        duration_s=duration_s,
        injector=injector,
        on_progress=on_progress,
    )
    if result.stopped_by == "end_of_stream" and count and result.transactions < count:
        log.warning(
            "the simulated stream ended after %d transactions (days=%d); pass --days for more",
            result.transactions,
            days,
        )
    return finish(
        rt,
        "run",
        result,
        simulator={"seed": seed, "days": days, "tps": tps, "count": count, "duration_s": duration_s},
        injected=dict(injector.injected) if injector else {},
        inject_bad_rate=inject_bad_rate,
    )


def replay_file(
    rt: Runtime, path: Path, *, tps: float = 0.0, on_progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """A Parquet/CSV file of transactions (+ labels of its fraud rows) → Kafka; returns the report."""
    s = rt.settings
    events = file_events(
        path,
        default_currency=s.replay_default_currency,
        label_delay=timedelta(seconds=s.replay_label_delay_s),
    )
    result = run_stream(rt.pipeline, events, tps=tps, on_progress=on_progress)
    return finish(rt, "replay", result, file=str(path))


def replay_dead_letters(
    rt: Runtime,
    *,
    max_records: int = 0,
    from_beginning: bool = False,
    group: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Re-validate the DLQ and re-send what now passes; returns the report."""
    from confluent_kafka import Consumer

    from producer.replay_dlq import replay_dlq

    group_id = group or rt.settings.dlq_replay_group
    consumer = Consumer(
        {
            "bootstrap.servers": rt.kafka.kafka_bootstrap_servers,
            "group.id": group_id,
            "client.id": "fraud-replay-dlq",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    started = time.monotonic()
    try:
        outcome = replay_dlq(
            rt.pipeline,
            consumer,
            WireDecoder(rt.registry),
            dlq_topic=rt.topics.dlq,
            timeout_s=rt.settings.connect_timeout_s,
            flush_timeout_s=rt.settings.flush_timeout_s,
            max_records=max_records,
            from_beginning=from_beginning,
            should_stop=should_stop,
        )
    finally:
        consumer.close()
    result = StreamResult(outcome["stopped_by"], outcome["read"], outcome["read"], time.monotonic() - started)
    report = finish(rt, "replay-dlq", result, consumer_group=group_id, dlq=outcome)
    report["ok"] = bool(outcome["ok"]) and bool(report["reconciliation"]["ok"])
    return report


__all__ = [
    "Runtime",
    "StartupError",
    "default_topics",
    "finish",
    "replay_dead_letters",
    "replay_file",
    "simulate",
    "start",
]
