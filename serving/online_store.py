"""Online features from Redis behind the circuit breaker: one round trip per lookup.

:meth:`OnlineStore.fetch` resolves the published snapshot version and reads the card and terminal
aggregates of every requested transaction with one ``EVALSHA`` of
:data:`contracts.online_store.READ_SCRIPT` (the layout the feature writer publishes). Each lookup has a
budget of ``SERVING_REDIS_TIMEOUT_MS`` (pool wait + round trip); a timeout or error counts as a
breaker failure. Nothing here raises for Redis trouble: the answer says where features came from.

* ``online``   — Redis answered and every card and terminal was in the snapshot;
* ``partial``  — Redis answered, but some card/terminal is absent from the snapshot (no history as
  of the snapshot: the empty aggregates training gives such an entity) or its value is unreadable
  (that group then takes the model's learnt defaults);
* ``default``  — no usable answer (breaker open, timeout, error, nothing published yet): every
  card and terminal group takes the model's learnt defaults.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

import features
from contracts.online_store import READ_SCRIPT, OnlineLayout, card_suffix, terminal_suffix
from serving.breaker import CircuitBreaker, State
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

FeatureSource = Literal["online", "partial", "default"]
#: A missing group: build_vector then fills it from the model's learnt defaults.
UNAVAILABLE: Final = None


@dataclass(slots=True)
class Lookup:
    """Aggregates of one transaction: None = unavailable (use learnt defaults)."""

    card: features.CardFeatures | None
    terminal: features.TerminalFeatures | None
    source: FeatureSource


@dataclass(slots=True)
class FetchResult:
    """Raw answer of one round trip: ``values`` (card, terminal JSON per key pair; None = Redis gave
    nothing usable) are decoded by :meth:`OnlineStore.decode`, off the event loop."""

    keys: list[tuple[str, str]]
    values: list[bytes | None] | None
    version: str | None  # snapshot version read (None when Redis gave nothing)
    fallback_reason: str | None = None

    @property
    def lookups(self) -> list[Lookup]:
        return decode(self)


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
        self._script = client.register_script(READ_SCRIPT)
        self._namespace_arg = namespace.encode()
        self._pointer = self.layout.pointer.encode()
        self.version: str | None = None
        self.meta: dict[str, str] = {}
        self._meta_task: asyncio.Task[None] | None = None
        self._fetch_ok = metrics.feature_fetch.labels("ok")
        self._fetch_failed = metrics.feature_fetch.labels("failed")

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
        if self._meta_task is not None:
            self._meta_task.cancel()
        await self.client.aclose()
        await self.client.connection_pool.disconnect()

    # ------------------------------------------------------------------ lookups

    def _default(self, keys: list[tuple[str, str]], reason: str) -> FetchResult:
        self.metrics.fallbacks.labels(reason).inc(len(keys))
        return FetchResult(keys, None, None, reason)

    async def fetch(self, keys: list[tuple[str, str]]) -> FetchResult:
        """Aggregates of ``(card_id, terminal_id)`` pairs as of the published snapshot."""
        permit = self.breaker.acquire()
        if permit is None:
            return self._default(keys, "breaker_open")
        args: list[Any] = [self._namespace_arg]
        for card_id, terminal_id in keys:
            args.append(card_suffix(card_id))
            args.append(terminal_suffix(terminal_id))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._script(keys=[self._pointer], args=args)
        except TimeoutError:
            self._fetch_failed.observe(time.perf_counter() - started)
            self.breaker.failure(permit)
            return self._default(keys, "timeout")
        except (RedisError, OSError) as exc:
            self._fetch_failed.observe(time.perf_counter() - started)
            self.breaker.failure(permit)
            log.debug("redis lookup failed: %s", exc)
            return self._default(keys, "error")
        except BaseException:
            self.breaker.release(permit)  # cancelled (client went away): no verdict on Redis
            raise
        self._fetch_ok.observe(time.perf_counter() - started)
        self.breaker.success(permit)
        version_raw = reply[0] if reply else None
        if version_raw is None:
            return self._default(keys, "no_snapshot")
        version = version_raw.decode()
        if version != self.version:
            self._new_version(version)
        return FetchResult(keys, reply[1:], version)

    # ------------------------------------------------------------------ snapshot metadata

    def _new_version(self, version: str) -> None:
        self.version = version
        self.metrics.features_version.set(float(version) if version.isdigit() else -1)
        if self._meta_task is None or self._meta_task.done():
            self._meta_task = asyncio.get_running_loop().create_task(self._load_meta(version))

    async def _load_meta(self, version: str) -> None:
        try:
            async with asyncio.timeout(1.0):
                raw = await self.client.hgetall(self.layout.meta(version))
        except (TimeoutError, RedisError, OSError) as exc:
            log.info("could not read the meta of online snapshot v%s: %s", version, exc)
            return
        self.meta = {_text(k): _text(v) for k, v in raw.items()}
        log.info("online features: snapshot v%s (%s)", version, self.meta)

    def snapshot_age_s(self) -> float:
        """Now minus the oldest as_of of the snapshot last read (NaN when unknown)."""
        as_of = self.meta.get("as_of_min_ms")
        return time.time() - int(as_of) / 1000.0 if as_of else float("nan")

    def describe(self) -> dict[str, Any]:
        state: State = self.breaker.state
        return {
            "namespace": self.layout.namespace,
            "breaker": state.value,
            "snapshot_version": self.version,
            "snapshot_as_of_ms": int(self.meta["as_of_min_ms"]) if "as_of_min_ms" in self.meta else None,
            "snapshot_written_at": float(self.meta["written_at"]) if "written_at" in self.meta else None,
        }


_EPOCH: Final = features.from_epoch_ms(0)


def decode(result: FetchResult) -> list[Lookup]:
    """Snapshots of each key pair (JSON → CardFeatures / TerminalFeatures); see the module doc."""
    if result.values is None:
        return [Lookup(None, None, "default") for _ in result.keys]
    lookups: list[Lookup] = []
    unreadable = 0
    values = result.values
    for i, (card_id, terminal_id) in enumerate(result.keys):
        card_raw, term_raw = values[2 * i], values[2 * i + 1]
        source: FeatureSource = "online"
        card: features.CardFeatures | None
        terminal: features.TerminalFeatures | None
        if card_raw is None:
            card, source = features.CardFeatures(card_id=card_id, as_of=_EPOCH), "partial"
        else:
            try:
                card = features.CardFeatures.from_dict(orjson.loads(card_raw))
            except (ValueError, TypeError, KeyError):
                card, source = UNAVAILABLE, "partial"
                unreadable += 1
        if term_raw is None:
            terminal, source = features.TerminalFeatures(terminal_id, as_of=_EPOCH), "partial"
        else:
            try:
                terminal = features.TerminalFeatures.from_dict(orjson.loads(term_raw))
            except (ValueError, TypeError, KeyError):
                terminal, source = UNAVAILABLE, "partial"
                unreadable += 1
        lookups.append(Lookup(card, terminal, source))
    if unreadable:
        log.warning("%d unreadable online feature values in snapshot v%s", unreadable, result.version)
    return lookups


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
