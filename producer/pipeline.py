"""The producing core: validate → serialise → produce, and dead-letter whatever fails at any step.

:class:`Pipeline` owns one idempotent ``confluent_kafka.Producer`` (acks=all). For each event:

1. ``producer.validate`` — the pydantic model of its type (:mod:`contracts.events`); a refused
   event goes to the DLQ as JSON with the reason and field;
2. ``producer.serialize`` — Avro in the Confluent wire format with the registered schema id;
   a failure goes to the DLQ as JSON;
3. ``producer.deliver`` — produced with key = card_id; if the broker never acknowledges it
   (after librdkafka's retries, bounded by ``delivery.timeout.ms``) the record goes to the DLQ
   with its Avro bytes and the topic it was meant for.

A DLQ write that itself fails is appended to a local spool file (JSON lines) and counted, so even
then nothing vanishes silently, and the run does not reconcile. :class:`metrics.Counters` holds
every outcome; ``accepted + dead_lettered == generated`` once :meth:`Pipeline.flush` returns 0.

Delivery guarantees: ``enable.idempotence=true`` (implies acks=all, bounded in-flight requests and
retries) means a broker that disappears mid-run is retried until ``delivery.timeout.ms`` without
duplicates or reordering within a partition; records still unacknowledged then are dead-lettered.
"""

from __future__ import annotations

import json
import logging
import re
import time
from base64 import b64encode
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel, ValidationError

from contracts.dlq import (
    CONTENT_AVRO,
    CONTENT_JSON,
    STAGE_DELIVER,
    STAGE_SERIALIZE,
    STAGE_VALIDATE,
    Headers,
    dlq_headers,
    header_dict,
)
from contracts.events import MODELS, failure_of, to_json_bytes
from contracts.wire import schema_id_of
from producer.encoders import Encoder
from producer.metrics import Counters, LatencyHistogram

log = logging.getLogger(__name__)

POLL_EVERY: Final = 1000  # serve delivery reports every N produce() calls
_FIELD_IN_ERROR = re.compile(r"on field (\w+)")


def _field_of(exc: Exception) -> str:
    """The schema field an encoder error is about, when it says (KeyError: the missing field)."""
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    m = _FIELD_IN_ERROR.search(str(exc))
    return m.group(1) if m else ""


class StartupError(RuntimeError):
    """The producer cannot start (a dependency is unreachable or missing); exit code 2."""


@dataclass(frozen=True)
class Topics:
    raw: str
    labels: str
    dlq: str

    def target(self, event_type: str) -> str:
        return self.labels if event_type == "label" else self.raw

    def event_type_of(self, topic: str) -> str | None:
        return {self.raw: "transaction", self.labels: "label"}.get(topic)


def check_broker(bootstrap: str, topics: Iterable[str], timeout_s: float) -> None:
    """Fail fast (:class:`StartupError`) if the broker is unreachable or a topic is missing."""
    from confluent_kafka.admin import AdminClient

    # log_level 0: the connection failures are summed up in the error below, not logged one by one
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        detail = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        raise StartupError(
            f"Kafka broker unreachable at {bootstrap} (no metadata within {timeout_s:.0f}s): {detail}"
        ) from exc
    missing = [t for t in dict.fromkeys(topics) if t not in metadata.topics or metadata.topics[t].error]
    if missing:
        raise StartupError(
            f"topic(s) {', '.join(missing)} do not exist on the Kafka broker at {bootstrap} "
            "(auto-creation is off: run `python -m common.bootstrap kafka`)"
        )


def producer_config(bootstrap: str, settings: Any, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings: idempotent, acks=all, batched and compressed for throughput."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": "fraud-producer",
        "enable.idempotence": True,  # no duplicates or reordering on retries
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,  # the maximum idempotence allows
        "compression.type": settings.compression,
        "linger.ms": settings.linger_ms,
        "batch.size": settings.batch_size,
        "batch.num.messages": settings.batch_num_messages,
        "queue.buffering.max.messages": settings.queue_max_messages,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.timeout.ms": settings.delivery_timeout_ms,
        # the Java client's key hash: the same card lands on the same partition whoever produces
        "partitioner": "murmur2_random",
        "log.connection.close": False,
        "logger": logging.getLogger("producer.librdkafka"),  # librdkafka's log → logging, not stderr
    }
    conf.update(overrides)
    return conf


class Pipeline:
    """Validate, serialise, produce and dead-letter events of one source."""

    def __init__(
        self,
        producer_conf: Mapping[str, Any],
        encoders: Mapping[str, Encoder],
        topics: Topics,
        *,
        source: str,
        spool_path: Path | None = None,
        dead_letter_undeliverable: bool = True,
        on_delivered: Callable[[float], None] | None = None,
    ) -> None:
        self.bootstrap = str(producer_conf.get("bootstrap.servers", "?"))
        self.producer = Producer({**producer_conf, "error_cb": self._on_error})
        self.encoders = dict(encoders)
        self.topics = topics
        self.source = source
        self.spool_path = spool_path
        self.dead_letter_undeliverable = dead_letter_undeliverable
        self.counters = Counters()
        self.latency = LatencyHistogram()
        self._on_delivered = on_delivered  # each acknowledged record's latency (seconds)
        self.fatal_error: KafkaError | None = None
        self.stop_reason: str | None = None
        self.undelivered = 0  # delivery failures not dead-lettered (replay-dlq mode)
        self._pending_dlq: list[tuple[str, Any, bytes | None, Headers, str, str]] = []
        self._since_poll = 0
        self._last_error_log: dict[int, float] = {}
        for event_type in self.encoders:
            self.counters.generated.setdefault(event_type, 0)
            self.counters.accepted.setdefault(event_type, 0)
        self._callbacks = {t: self._delivery_callback(t) for t in self.encoders}
        self._targets = {t: topics.target(t) for t in self.encoders}

    # ------------------------------------------------------------------ hot path

    def submit(self, event_type: str, raw: Any) -> bool:
        """Validate, serialise and produce one raw event. False if it was dead-lettered at once."""
        generated = self.counters.generated
        generated[event_type] += 1
        try:
            model = MODELS[event_type].model_validate(raw)
        except ValidationError as exc:
            failure = failure_of(exc)
            self._dead_letter_json(
                event_type, raw, STAGE_VALIDATE, failure.reason, failure.field, failure.message
            )
            return False
        return self._send(event_type, model, raw)

    def send_valid(self, event_type: str, model: BaseModel) -> bool:
        """Serialise and produce an already validated model (replay-dlq); counted as generated."""
        self.counters.generated[event_type] += 1
        return self._send(event_type, model, None)

    def _send(self, event_type: str, model: BaseModel, raw: Any) -> bool:
        record = model.__dict__
        try:
            value = self.encoders[event_type](record)
        except Exception as exc:  # any encoder failure is a dead letter, never a lost event
            self._dead_letter_json(
                event_type,
                raw if raw is not None else record,
                STAGE_SERIALIZE,
                "serialize_error",
                _field_of(exc),
                f"{type(exc).__name__}: {exc}",
            )
            return False
        self.counters.avro_bytes += len(value)
        self._produce(
            self._targets[event_type], record["card_id"], value, self._callbacks[event_type], event_type
        )
        return True

    def _produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes,
        callback: Callable[[KafkaError | None, Message], None],
        event_type: str,
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=callback)
                break
            except BufferError:
                self.poll(0.05)  # the local queue is full: serve delivery reports, then retry
            except KafkaException as exc:  # refused synchronously (e.g. larger than message.max.bytes)
                self._delivery_failed(event_type, topic, key, value, exc.args[0])
                break
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self.poll(0)

    def _delivery_callback(self, event_type: str) -> Callable[[KafkaError | None, Message], None]:
        accepted = self.counters.accepted
        observe = self.latency.observe
        listener = self._on_delivered

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                accepted[event_type] += 1
                latency = msg.latency() or 0.0
                observe(latency)
                if listener is not None:
                    listener(latency)
            else:
                self._delivery_failed(event_type, msg.topic() or "", msg.key(), msg.value(), err)

        return on_delivery

    # ------------------------------------------------------------------ dead letters

    def _delivery_failed(
        self, event_type: str, topic: str, key: Any, value: bytes | None, err: KafkaError
    ) -> None:
        reason = err.name().lower().lstrip("_") or "delivery_failed"
        self.counters.add(self.counters.delivery_errors, (topic, reason))
        if err.fatal():
            self.fatal_error = err
            self.stop_reason = self.stop_reason or "fatal_error"
        if not self.dead_letter_undeliverable:
            self.undelivered += 1
            return
        headers = dlq_headers(
            stage=STAGE_DELIVER,
            reason=reason,
            field="",
            error=err.str(),
            source=self.source,
            event_type=event_type,
            content_type=CONTENT_AVRO,
            source_topic=topic,
            schema_id=schema_id_of(value),
        )
        # May run inside a delivery callback: queue it, poll()/flush() write it.
        self._pending_dlq.append((event_type, key, value, headers, STAGE_DELIVER, reason))

    def _dead_letter_json(
        self, event_type: str, raw: Any, stage: str, reason: str, field: str, error: str
    ) -> None:
        key = raw.get("card_id") if isinstance(raw, Mapping) else None
        headers = dlq_headers(
            stage=stage,
            reason=reason,
            field=field,
            error=error,
            source=self.source,
            event_type=event_type,
            content_type=CONTENT_JSON,
        )
        self._produce_dlq(
            event_type, key if isinstance(key, str) else None, to_json_bytes(raw), headers, stage, reason
        )

    def _produce_dlq(
        self,
        event_type: str,
        key: Any,
        value: bytes | None,
        headers: Headers,
        stage: str,
        reason: str,
    ) -> None:
        counters = self.counters

        def on_dlq_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                counters.add(counters.dead_lettered, (event_type, stage, reason))
            else:
                self._spool(msg.key(), msg.value(), headers, f"DLQ write failed: {err.str()}")

        while True:
            try:
                self.producer.produce(
                    self.topics.dlq, value, key, headers=headers, on_delivery=on_dlq_delivery
                )
                return
            except BufferError:
                self.producer.poll(0.05)
            except KafkaException as exc:
                self._spool(key, value, headers, f"DLQ write refused: {exc}")
                return

    def _spool(
        self, key: Any, value: bytes | None, headers: Iterable[tuple[str, str | bytes | None]], error: str
    ) -> None:
        """Last resort when the DLQ itself cannot be written: a JSON line on local disk."""
        self.counters.dlq_write_failures += 1
        log.error("%s; record spooled to %s", error, self.spool_path)
        if self.spool_path is None:
            return
        if isinstance(key, str):
            key = key.encode()
        line = {
            "topic": self.topics.dlq,
            "key_b64": b64encode(key).decode() if key else None,
            "value_b64": b64encode(value).decode() if value else None,
            "headers": header_dict(headers),
            "spool_error": error,
        }
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spool_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def _drain_pending(self) -> None:
        while self._pending_dlq:
            event_type, key, value, headers, stage, reason = self._pending_dlq.pop(0)
            self._produce_dlq(event_type, key, value, headers, stage, reason)

    # ------------------------------------------------------------------ lifecycle

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports (and write the dead letters they produced)."""
        self._since_poll = 0
        self.producer.poll(timeout)
        if self._pending_dlq:
            self._drain_pending()

    def flush(self, timeout_s: float) -> int:
        """Wait until every record (and every dead letter) is acknowledged; returns what is left."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._drain_pending()
            remaining = self.producer.flush(max(0.0, deadline - time.monotonic()))
            if not self._pending_dlq and remaining == 0:
                return 0
            if time.monotonic() >= deadline:
                return remaining + len(self._pending_dlq)

    def in_flight(self) -> int:
        return len(self.producer)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal_error = err
            self.stop_reason = self.stop_reason or "fatal_error"
            log.error("fatal Kafka client error, stopping: %s", err.str())
            return
        now = time.monotonic()
        if now - self._last_error_log.get(err.code(), -1e9) >= 10.0:  # one line per code per 10 s
            self._last_error_log[err.code()] = now
            log.warning(
                "Kafka client error (retrying for up to delivery.timeout.ms, no duplicates): %s", err.str()
            )
