"""Online features from Redis behind the circuit breaker: read and append in one round trip.

:meth:`OnlineStore.apply` runs :data:`contracts.online_store.APPLY_SCRIPT` once for every
transaction of a micro-batch, in order: each transaction reads its card's events and its terminal's
counts strictly before its own time, then is appended (idempotent by ``transaction_id``), so the
2nd attempt of a burst sees the 1st (read-your-writes). Each call has a budget of
``SERVING_REDIS_TIMEOUT_MS`` (pool wait + round trip); a timeout or error counts as a breaker
failure. Nothing here raises for Redis trouble: the answer says where features came from.

* ``online``  — Redis answered: the aggregates are exact as of the transaction's time (a card or
  terminal without events has the empty aggregates training gives it);
* ``partial`` — Redis answered but a card's events were unreadable (that group takes the model's
  learnt defaults);
* ``default`` — no answer (breaker open, timeout, error): both groups take the learnt defaults,
  and nothing was appended (the transaction reaches the state through Kafka instead: serving
  publishes it to ``transactions.raw``, the online applier appends it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

import features
from contracts.online_store import APPLY_SCRIPT, MODE_READ_APPEND, OnlineLayout
from ml.online_state import Applied, apply_call, decode, newest_ms
from serving.breaker import CircuitBreaker, State
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

FeatureSource = Literal["online", "partial", "default"]


@dataclass(slots=True)
class Lookup:
    """Aggregates of one transaction (None = unavailable: learnt defaults), their source, and
    whether this request appended the transaction to the state (None: unknown, Redis gave no
    answer)."""

    card: features.CardFeatures | None
    terminal: features.TerminalFeatures | None
    source: FeatureSource
    new: bool | None = None


@dataclass(slots=True)
class FetchResult:
    """Raw answer of one round trip, decoded by :attr:`lookups` off the event loop."""

    txns: Sequence[features.Transaction]
    reply: list[Any] | None  # None: Redis gave nothing usable
    version: str | None  # "<namespace>" of the state read (None when Redis gave nothing)
    fallback_reason: str | None = None

    @property
    def lookups(self) -> list[Lookup]:
        if self.reply is None:
            return [Lookup(None, None, "default") for _ in self.txns]
        return [_lookup(a) for a in decode(self.txns, self.reply)]


def _lookup(a: Applied) -> Lookup:
    return Lookup(a.card, a.terminal, "online" if a.card is not None else "partial", a.new)


class OnlineStore:
    def __init__(
        self,
        client: Redis,
        *,
        namespace: str,
        breaker: CircuitBreaker,
        timeout_ms: float,
        metrics: ServingMetrics,
    ) -> None:
        self.client = client
        self.layout = OnlineLayout(namespace)
        self.breaker = breaker
        self.timeout_s = timeout_ms / 1000.0
        self.metrics = metrics
        self._script = client.register_script(APPLY_SCRIPT)
        self._fetch_ok = metrics.feature_fetch.labels("ok")
        self._fetch_failed = metrics.feature_fetch.labels("failed")
        self.newest_event_ms: int | None = None  # newest event this process appended
        self.appended_at: float | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        namespace: str,
        breaker: CircuitBreaker,
        timeout_ms: float,
        connect_timeout_ms: float,
        max_connections: int,
        metrics: ServingMetrics,
    ) -> OnlineStore:
        """A client that never retries (the breaker decides) and never waits past the budget."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,  # the per-call asyncio.timeout bounds the wait for a connection
            socket_connect_timeout=connect_timeout_ms / 1000.0,
            socket_timeout=max(1.0, 20 * timeout_ms / 1000.0),
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        client = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        return cls(client, namespace=namespace, breaker=breaker, timeout_ms=timeout_ms, metrics=metrics)

    async def close(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()

    def _default(self, txns: Sequence[features.Transaction], reason: str) -> FetchResult:
        self.metrics.fallbacks.labels(reason).inc(len(txns))
        return FetchResult(txns, None, None, reason)

    async def apply(self, txns: Sequence[features.Transaction]) -> FetchResult:
        """Each transaction's aggregates as of its own time, then appended: one round trip."""
        permit = self.breaker.acquire()
        if permit is None:
            return self._default(txns, "breaker_open")
        keys, args = apply_call(self.layout, txns, MODE_READ_APPEND)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(keys=keys, args=args)
        except TimeoutError:
            self._fetch_failed.observe(time.perf_counter() - started)
            self.breaker.failure(permit)
            return self._default(txns, "timeout")
        except (RedisError, OSError) as exc:
            self._fetch_failed.observe(time.perf_counter() - started)
            self.breaker.failure(permit)
            log.debug("redis lookup failed: %s", exc)
            return self._default(txns, "error")
        except BaseException:
            self.breaker.release(permit)  # cancelled (client went away): no verdict on Redis
            raise
        self._fetch_ok.observe(time.perf_counter() - started)
        self.breaker.success(permit)
        newest = newest_ms(args)
        if self.newest_event_ms is None or newest > self.newest_event_ms:
            self.newest_event_ms = newest
        self.appended_at = time.time()
        return FetchResult(txns, reply, self.layout.namespace)

    def newest_event_s(self) -> float:
        """Event time of the newest transaction this process appended (NaN before the first)."""
        return self.newest_event_ms / 1000.0 if self.newest_event_ms is not None else float("nan")

    def describe(self) -> dict[str, Any]:
        state: State = self.breaker.state
        return {
            "namespace": self.layout.namespace,
            "breaker": state.value,
            "newest_event_ms": self.newest_event_ms,
            "last_append_at": self.appended_at,
        }
