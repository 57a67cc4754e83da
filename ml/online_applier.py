"""The online applier: ``transactions.raw`` and ``transactions.labels`` → the online state.

``python -m ml apply-online`` (the supervised service ``online-applier``) consumes both topics in
one consumer group and applies each batch in short script calls (``APPLY_CHUNK`` records each)
(:mod:`ml.online_state`): transactions are appended to their card and terminal (a no-op for one
that ``/predict`` already appended: idempotent by ``transaction_id``), then fraud labels count at
their transaction's terminal from ``max(label_time, event_time)`` on, the rule of training. Offsets
are committed after Redis took the batch (at least once; replays are harmless). While Redis is
down the batch is retried with backoff and nothing is committed, so what ``/predict`` could not
append meanwhile (serving publishes it to ``transactions.raw``) is applied when Redis returns.

Records that cannot be decoded are skipped here and counted (streaming dead-letters them).

Metrics (``ONLINE_APPLIER_METRICS_PORT``): ``fraud_online_state_events_total{source,outcome}``,
``fraud_online_state_newest_event_timestamp_seconds{source}`` (event time, or label time, of the
newest record applied), ``fraud_online_state_applied_timestamp_seconds{source}`` (when),
``fraud_online_state_apply_delay_seconds{source}`` (Kafka append → visible in Redis),
``fraud_online_applier_lag_messages{topic}``.

:func:`replay` re-applies the topics from a point in time with a throwaway consumer (no group):
``make rebuild-online`` seeds the state from Gold, then replays what came after it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from tenacity import retry, retry_if_exception_type, wait_exponential

import features
from common.avro_codec import WireDecoder
from common.schema_registry import SchemaRegistry
from common.settings import kafka_settings, redis_settings
from contracts.online_store import OnlineLayout
from contracts.wire import WireFormatError
from ml.online_state import Label, append_events, apply_labels
from ml.settings import ApplierSettings, applier_settings

log = logging.getLogger(__name__)

DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class ApplierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.events = Counter(
            "fraud_online_state_events", "Records applied to the online state by source and outcome "
            "(new, known, waiting = a label before its transaction, skipped = undecodable)",
            ["source", "outcome"], registry=r,
        )  # fmt: skip
        self.newest = Gauge(
            "fraud_online_state_newest_event_timestamp_seconds",
            "Event time of the newest transaction (label time of the newest label) applied, by source",
            ["source"], registry=r,
        )  # fmt: skip
        self.applied_at = Gauge(
            "fraud_online_state_applied_timestamp_seconds", "When records of a source were last applied",
            ["source"], registry=r,
        )  # fmt: skip
        self.delay = Histogram(
            "fraud_online_state_apply_delay_seconds",
            "From the record's Kafka timestamp (append) to visible in the online state",
            ["source"], buckets=DELAY_BUCKETS, registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "fraud_online_applier_lag_messages", "Records of a topic not applied yet", ["topic"], registry=r
        )
        self.redis_errors = Counter(
            "fraud_online_applier_redis_errors", "Failed apply attempts (retried)", registry=r
        )


def transaction_of(record: dict[str, Any]) -> features.Transaction:
    """A decoded ``transactions.raw`` record as the feature module takes it."""
    event_time = record["event_time"]
    if not isinstance(event_time, datetime):
        event_time = features.from_epoch_ms(int(event_time))
    amount = record["amount"]
    return features.Transaction(
        transaction_id=record["transaction_id"],
        event_time=event_time,
        card_id=record["card_id"],
        terminal_id=record["terminal_id"],
        amount=float(amount),
        channel=record.get("channel"),
        mcc=record.get("mcc"),
        device_id=record.get("device_id"),
        latitude=record.get("latitude"),
        longitude=record.get("longitude"),
        country=record.get("country"),
        currency=record.get("currency"),
        merchant_name=record.get("merchant_name"),
        customer_id=record.get("customer_id"),
    )


def label_of(record: dict[str, Any]) -> Label | None:
    """A fraud label (None for a genuine one: nothing to count)."""
    if not record.get("is_fraud"):
        return None
    return Label(record["transaction_id"], record["card_id"], features.to_epoch_ms(record["label_time"]))


@dataclass
class Batch:
    txns: list[features.Transaction] = field(default_factory=list)
    txn_ts: list[float] = field(default_factory=list)  # Kafka timestamps (s)
    labels: list[Label] = field(default_factory=list)
    label_ts: list[float] = field(default_factory=list)
    skipped: int = 0


class Applier:
    """Decodes records and applies them to Redis (shared by the service and :func:`replay`)."""

    def __init__(
        self,
        client: redis.Redis,
        layout: OnlineLayout,
        decoder: WireDecoder,
        metrics: ApplierMetrics,
        delays: list[float] | None = None,
    ) -> None:
        self.client = client
        self.delays = delays  # each transaction's Kafka → state delay, when a caller wants them all
        self.layout = layout
        self.decoder = decoder
        self.metrics = metrics
        self._newest: dict[str, float] = {}

    def collect(self, messages: Sequence[Message]) -> Batch:
        batch = Batch()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            try:
                _sid, name, record = self.decoder.decode(msg.value() or b"")
            except WireFormatError as exc:
                batch.skipped += 1
                log.debug("skipped an undecodable record of %s: %s", msg.topic(), exc)
                continue
            ts = msg.timestamp()[1] / 1000.0
            try:
                if name.endswith("Transaction"):
                    batch.txns.append(transaction_of(record))
                    batch.txn_ts.append(ts)
                elif name.endswith("Label"):
                    label = label_of(record)
                    if label is not None:
                        batch.labels.append(label)
                        batch.label_ts.append(ts)
                else:
                    batch.skipped += 1
            except (KeyError, TypeError, ValueError) as exc:
                batch.skipped += 1
                log.debug("skipped a record of %s: %s", msg.topic(), exc)
        return batch

    def apply(self, batch: Batch) -> None:
        """Transactions, then labels (a label in the same batch finds its transaction)."""
        m = self.metrics
        if batch.txns:
            new = append_events(self.client, self.layout, batch.txns)
            m.events.labels("kafka", "new").inc(new)
            m.events.labels("kafka", "known").inc(len(batch.txns) - new)
        if batch.labels:
            done, waiting = apply_labels(self.client, self.layout, batch.labels)
            m.events.labels("labels", "new").inc(done)
            m.events.labels("labels", "waiting").inc(waiting)
        if batch.skipped:
            m.events.labels("kafka", "skipped").inc(batch.skipped)
        now = time.time()
        for source, stamps, newest in (
            (
                "kafka",
                batch.txn_ts,
                max((features.to_epoch_ms(t.event_time) for t in batch.txns), default=None),
            ),
            ("labels", batch.label_ts, max((lb.label_ms for lb in batch.labels), default=None)),
        ):
            if newest is None:
                continue
            m.applied_at.labels(source).set(now)
            self._newest[source] = max(self._newest.get(source, 0.0), newest / 1000.0)
            m.newest.labels(source).set(self._newest[source])
            hist = m.delay.labels(source)
            for ts in stamps:
                hist.observe(max(0.0, now - ts))
            if self.delays is not None and source == "kafka":
                self.delays.extend(max(0.0, now - ts) for ts in stamps)


def _redis(url: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(
        url or redis_settings().redis_url, socket_timeout=10, socket_connect_timeout=3
    )


def _consumer(group: str | None, s: ApplierSettings) -> Consumer:
    k = kafka_settings()
    conf: dict[str, Any] = {
        "bootstrap.servers": k.kafka_bootstrap_servers,
        "group.id": group or f"online-replay-{time.time_ns()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
        "logger": logging.getLogger("ml.online_applier.librdkafka"),
    }
    return Consumer(conf)


def _update_lag(consumer: Consumer, metrics: ApplierMetrics) -> None:
    """Records after each assigned partition's position. A partition nothing was fetched from since
    its assignment has no position yet: its committed offset stands in (the low watermark only when
    the group never committed), or a quiet topic would show its whole history as lag."""
    try:
        assigned = consumer.assignment()
        positions = consumer.position(assigned)
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(assigned, timeout=2)}
    except Exception:
        return
    per_topic: dict[str, int] = {}
    for tp in positions:
        lo, hi = consumer.get_watermark_offsets(tp, timeout=2, cached=False)
        pos = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
        pos = pos if pos >= 0 else lo
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, hi - pos)
    for topic, lag in per_topic.items():
        metrics.lag.labels(topic).set(lag)


def run(
    settings: ApplierSettings | None = None,
    stop: threading.Event | None = None,
    *,
    topics: Sequence[str] | None = None,
    namespace: str | None = None,
    redis_url: str | None = None,
    metrics: ApplierMetrics | None = None,
    delays: list[float] | None = None,
) -> None:
    """The service: consume, apply, commit, until SIGTERM/SIGINT. A caller running it in a thread
    passes ``stop`` (no signal handlers then) and ``metrics`` (no metrics server then)."""
    s = settings or applier_settings()
    k = kafka_settings()
    if stop is None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if metrics is None:
        metrics = ApplierMetrics()
        # loopback natively; BIND_HOST=0.0.0.0 in a container, where Prometheus scrapes over the network
        addr = os.environ.get("BIND_HOST", "127.0.0.1")
        start_http_server(s.metrics_port, addr=addr, registry=metrics.registry)
    client = _redis(redis_url)
    applier = Applier(
        client,
        OnlineLayout(namespace or redis_settings().feature_namespace),
        WireDecoder(SchemaRegistry(k.schema_registry_url, 10.0, outage_retries=1_000_000)),
        metrics,
        delays,
    )
    consumer = _consumer(s.group_id, s)
    subscribed = list(topics or (k.kafka_topic_raw, k.kafka_topic_labels))
    consumer.subscribe(subscribed)
    log.info(
        "online applier: %s → redis namespace %s (group %s, metrics :%d)",
        " + ".join(subscribed), applier.layout.namespace, s.group_id, s.metrics_port,
    )  # fmt: skip
    apply = _retrying(applier.apply, metrics, stop)
    last_lag = 0.0
    try:
        while not stop.is_set():
            messages = consumer.consume(num_messages=s.batch_max, timeout=s.poll_timeout_s)
            if messages:
                batch = applier.collect(messages)
                if apply(batch):
                    consumer.commit(asynchronous=True)
            if time.monotonic() - last_lag > 5:
                _update_lag(consumer, metrics)
                last_lag = time.monotonic()
    finally:
        consumer.close()
        client.close()
        log.info("online applier stopped")


def _retrying(
    fn: Callable[[Batch], None], metrics: ApplierMetrics, stop: threading.Event
) -> Callable[[Batch], bool]:
    """``fn`` retried with backoff (up to 5 s apart) while Redis fails; False if stopped meanwhile."""

    def before_sleep(state: Any) -> None:
        metrics.redis_errors.inc()
        log.warning("online state not applied (%s); retrying", state.outcome.exception())

    def stopped(state: Any) -> bool:
        return stop.is_set()

    guarded = retry(
        retry=retry_if_exception_type((redis.RedisError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stopped,
        before_sleep=before_sleep,
        reraise=True,
    )(fn)

    def call(batch: Batch) -> bool:
        try:
            guarded(batch)
        except (redis.RedisError, OSError):
            if stop.is_set():
                return False
            raise
        return True

    return call


def replay(
    since_ms: int, *, client: redis.Redis | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """Re-apply every record of both topics appended since ``since_ms`` (a throwaway consumer),
    up to the end offsets at the start. Returns counts."""
    k = kafka_settings()
    s = applier_settings()
    metrics = ApplierMetrics()
    own = client is None
    r = client or _redis()
    applier = Applier(
        r,
        OnlineLayout(namespace or redis_settings().feature_namespace),
        WireDecoder(SchemaRegistry(k.schema_registry_url, 10.0)),
        metrics,
    )
    consumer = _consumer(None, s)
    started = time.perf_counter()
    try:
        parts: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for topic in (k.kafka_topic_raw, k.kafka_topic_labels):
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            for p in meta.partitions:
                parts.append(TopicPartition(topic, p, since_ms))
                ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        starts = consumer.offsets_for_times(parts, timeout=10)
        todo = [tp for tp in starts if tp.offset >= 0 and tp.offset < ends[(tp.topic, tp.partition)]]
        consumer.assign(todo)
        remaining = {(tp.topic, tp.partition) for tp in todo}
        records = 0
        idle_since = time.monotonic()
        while remaining and time.monotonic() - idle_since < 10:  # ends reached, or nothing more comes
            messages = consumer.consume(num_messages=s.batch_max, timeout=1.0)
            if messages:
                idle_since = time.monotonic()
            keep = []
            for msg in messages:
                key = (msg.topic(), msg.partition())
                if msg.error() is None and key in remaining:
                    keep.append(msg)
                    if (msg.offset() or 0) >= ends[key] - 1:
                        remaining.discard(key)
            records += len(keep)
            applier.apply(applier.collect(keep))
    finally:
        consumer.close()
        if own:
            r.close()
    return {
        "replayed_records": records,
        "since_ms": since_ms,
        "duration_s": round(time.perf_counter() - started, 3),
    }
