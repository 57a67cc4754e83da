"""What serving scored → ``transactions.raw``: one history for training and serving.

A transaction that reaches the platform only through ``POST /predict`` would otherwise never reach
Bronze, so the next training set would not hold what serving saw. Each scored transaction that the
online state did not know yet (the append in :meth:`OnlineStore.apply` was new, or Redis gave no
answer) is published to ``transactions.raw`` with the card as key, in the Avro contract of the
producer. Streaming lands it in Bronze (deduplicated by ``transaction_id``), and the online applier
appends it to the state (a no-op when serving already did; the way back in when Redis was down).

Off the request path: records wait in a bounded buffer until the schema id is known (the registry
is asked in the background until it answers) and librdkafka takes them; a full buffer drops the
oldest and counts it (``fraud_api_published_total{outcome="dropped"}``; the prediction log still
holds the request). Delivery is idempotent (``enable.idempotence``), retried by librdkafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from common.avro_codec import FastAvroEncoder
from common.schema_registry import SchemaRegistry
from contracts.avro import load_schema_str, subject_for
from contracts.events import TransactionIn
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        registry_url: str,
        metrics: ServingMetrics,
        buffer_size: int,
        compatibility: str = "FULL_TRANSITIVE",
    ) -> None:
        self.topic = topic
        self.registry_url = registry_url
        self.compatibility = compatibility
        self.metrics = metrics
        self._pending: deque[TransactionIn] = deque()
        self._buffer_size = buffer_size
        self._encoder: FastAvroEncoder | None = None
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "fraud-serving",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 20,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",  # the Java client's key hash, as the producer
                "log.connection.close": False,
                "logger": logging.getLogger("serving.librdkafka"),
            }
        )
        self._delivered = metrics.published.labels("delivered")
        self._failed = metrics.published.labels("failed")
        self._dropped = metrics.published.labels("dropped")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="publisher")

    def publish(self, txn: TransactionIn) -> None:
        """Queue one transaction (never blocks, never raises)."""
        if self._encoder is not None and not self._pending and self._produce(txn):
            return
        if len(self._pending) >= self._buffer_size:
            self._pending.popleft()
            self._dropped.inc()
        self._pending.append(txn)

    def _produce(self, txn: TransactionIn) -> bool:
        assert self._encoder is not None
        try:
            value = self._encoder(txn.__dict__)
            self._producer.produce(self.topic, value, txn.card_id, on_delivery=self._on_delivery)
        except BufferError:
            return False
        except Exception:  # a record the contract refuses: counted, never retried forever
            log.exception("could not publish transaction %s", txn.transaction_id)
            self._failed.inc()
        return True

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._delivered.inc()
        else:
            self._failed.inc()
            log.warning("publishing a scored transaction failed: %s", err)

    async def _schema(self) -> None:
        """The schema id of transactions.raw's value subject (registered if absent), retried."""
        delay = 1.0
        while self._encoder is None:
            try:
                schema_str = load_schema_str("transaction")
                registry = SchemaRegistry(self.registry_url, 5.0)
                reg = await asyncio.to_thread(
                    registry.ensure_subject, subject_for(self.topic), schema_str, self.compatibility
                )
                self._encoder = FastAvroEncoder(schema_str, reg.schema_id)
                log.info("publishing scored transactions to %s (schema id %d)", self.topic, reg.schema_id)
            except Exception as exc:
                log.warning("schema registry not usable yet (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _run(self) -> None:
        await self._schema()
        while True:
            while self._pending:
                if not self._produce(self._pending[0]):
                    break
                self._pending.popleft()
            await asyncio.to_thread(self._producer.poll, 0.1)

    def buffered(self) -> int:
        return len(self._pending) + len(self._producer)

    async def stop(self, timeout_s: float = 10.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._encoder is not None:
            while self._pending and self._produce(self._pending[0]):
                self._pending.popleft()
        left = await asyncio.to_thread(self._producer.flush, timeout_s)
        lost = left + len(self._pending)
        if lost:
            self._dropped.inc(lost)
            log.warning("%d scored transactions not published at shutdown", lost)

    def describe(self) -> dict[str, Any]:
        return {"topic": self.topic, "ready": self._encoder is not None, "buffered": self.buffered()}


class DisabledPublisher:
    """``SERVING_PUBLISH_SCORED=false`` (unit tests, a serving-only deployment)."""

    def start(self) -> None:
        return None

    def publish(self, txn: TransactionIn) -> None:
        return None

    async def stop(self, timeout_s: float = 10.0) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"enabled": False}
