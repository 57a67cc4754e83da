"""Card and terminal snapshots → Redis: publishing a new version of the online feature store.

``write_online_features()`` (the Airflow task ``write_online_features``; ``python -m ml
write-features``) reads ``card_features_latest`` and ``terminal_features_latest`` from Gold
(:mod:`ml.gold`) and writes every row to Redis as the JSON of :meth:`features.CardFeatures.to_dict`
/ :meth:`features.TerminalFeatures.to_dict` (:mod:`ml.online_encoding`), in pipelined ``MSET``
batches, under a **new version** of the layout in :mod:`contracts.online_store`. Only when every
key of that version is written does one ``SET`` move the pointer to it, so a reader never sees a
half-written set; the previous versions then get a TTL (``FEATURE_WRITER_OLD_VERSION_TTL_S``) and
expire. :func:`write_frames` writes the same layout from DataFrames (``ml.pit.snapshot_frame``):
tests, the demo before Gold exists, ``--data FILE``.

Each run returns (and logs) its metrics: keys written, duration, keys/s and the snapshot lag
(now − ``as_of``); the same figures are stored in the version's ``meta`` hash, which serving
exports as ``fraud_api_online_features_*`` gauges.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import redis

import features
from common.settings import redis_settings
from contracts.online_store import RELEASE_LOCK_SCRIPT, OnlineLayout
from ml.gold import snapshot_batches
from ml.online_encoding import encode_cards, encode_terminals, iso_ms
from ml.settings import FeatureWriterSettings, get_settings

log = logging.getLogger(__name__)


class FeatureWriterError(RuntimeError):
    """A run that cannot publish (empty snapshot, another run holding the lock)."""


# --------------------------------------------------------------------------- encoding


# --------------------------------------------------------------------------- writing


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


class _Progress:
    def __init__(self) -> None:
        self.keys = 0
        self.as_of_min: int | None = None
        self.as_of_max: int | None = None
        self.write_s = 0.0

    def saw(self, as_ofs: Sequence[int]) -> None:
        if as_ofs:
            lo, hi = min(as_ofs), max(as_ofs)
            self.as_of_min = lo if self.as_of_min is None else min(self.as_of_min, lo)
            self.as_of_max = hi if self.as_of_max is None else max(self.as_of_max, hi)


def _write_batch(
    client: redis.Redis, keys: list[str], values: list[bytes], progress: _Progress, mset_size: int = 1000
) -> None:
    """One pipelined round trip of MSETs (run in the writer thread; redis-py's pool is thread-safe)."""
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), mset_size):
        pipe.mset(dict(zip(keys[start : start + mset_size], values[start : start + mset_size], strict=True)))
    pipe.execute()
    progress.write_s += time.perf_counter() - started
    progress.keys += len(keys)


def expire_version(client: redis.Redis, layout: OnlineLayout, version: str, ttl_s: int) -> int:
    """Give every key of ``version`` a TTL (keys that already have one keep it); returns the count."""
    count = 0
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match=f"{layout.prefix(version)}*", count=10_000):
        pipe.expire(key, ttl_s, nx=True)
        count += 1
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    client.zrem(layout.versions, version)
    return count


def write_snapshot(
    client: redis.Redis,
    card_batches: Iterable[pd.DataFrame],
    terminal_batches: Iterable[pd.DataFrame],
    *,
    settings: FeatureWriterSettings | None = None,
    namespace: str | None = None,
    as_of: datetime | None = None,
    source: str = "frames",
) -> dict[str, Any]:
    """Write one version from batches of snapshot rows, publish it, expire the older ones.

    Batches are DataFrames with the Gold columns (``as_of`` / ``as_of_ms``, or ``as_of`` given
    here). Raises :class:`FeatureWriterError` for an empty snapshot (publishing it would make every
    card look new) or when another run holds the lock.
    """
    s = settings or get_settings()
    layout = OnlineLayout(namespace or redis_settings().feature_namespace)
    token = uuid.uuid4().hex
    if not client.set(layout.lock, token, nx=True, ex=s.lock_ttl_s):
        raise FeatureWriterError(
            f"another feature_writer run holds {layout.lock} (it expires within {s.lock_ttl_s}s)"
        )
    started = time.perf_counter()
    version = str(client.incr(layout.seq))
    client.zadd(layout.versions, {version: time.time()})
    progress = _Progress()
    counts = {"card": 0, "terminal": 0}
    read_s = 0.0
    published = False
    # Redis writes of batch n overlap the read and encoding of batch n+1 (socket I/O drops the GIL)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-writer")
    pending: Future[None] | None = None
    try:
        for kind, batches in (("card", card_batches), ("terminal", terminal_batches)):
            it = iter(batches)
            while True:
                t0 = time.perf_counter()
                batch = next(it, None)
                read_s += time.perf_counter() - t0
                if batch is None:
                    break
                if batch.empty:
                    continue
                if kind == "card":
                    ids, values, as_ofs = encode_cards(batch, as_of)
                    keys = [layout.card(version, i) for i in ids]
                else:
                    ids, values, as_ofs = encode_terminals(batch, as_of)
                    keys = [layout.terminal(version, i) for i in ids]
                progress.saw(as_ofs)
                if pending is not None:
                    pending.result()
                pending = writer.submit(_write_batch, client, keys, values, progress)
                counts[kind] += len(keys)
        if pending is not None:
            pending.result()
            pending = None
        if counts["card"] == 0 and counts["terminal"] == 0:
            raise FeatureWriterError("refusing to publish an empty snapshot (no card and no terminal rows)")
        written_at = time.time()
        assert progress.as_of_min is not None and progress.as_of_max is not None
        duration = time.perf_counter() - started
        meta = {
            "version": version,
            "as_of_min_ms": progress.as_of_min,
            "as_of_max_ms": progress.as_of_max,
            "written_at": written_at,
            "cards": counts["card"],
            "terminals": counts["terminal"],
            "feature_set_version": features.FEATURE_SET_VERSION,
            "source": source,
            "duration_s": round(duration, 3),
        }
        client.hset(layout.meta(version), mapping={k: str(v) for k, v in meta.items()})
        previous = client.get(layout.pointer)
        client.set(layout.pointer, version)  # the atomic switch
        published = True
    finally:
        if pending is not None:
            pending.exception()  # let a write in flight finish before cleaning up
        writer.shutdown(wait=True)
        if not published:
            expire_version(client, layout, version, s.old_version_ttl_s)
        # expire every other version: the one just replaced and any left by a failed run
        expired = []
        current = client.get(layout.pointer)
        for old in client.zrange(layout.versions, 0, -1):
            old_v = _text(old)
            if current is not None and old_v == _text(current):
                continue
            expire_version(client, layout, old_v, s.old_version_ttl_s)
            expired.append(old_v)
        client.eval(RELEASE_LOCK_SCRIPT, 1, layout.lock, token)
    duration = time.perf_counter() - started
    now_ms = int(time.time() * 1000)
    report = {
        "namespace": layout.namespace,
        "version": version,
        "previous_version": None if previous is None else _text(previous),
        "expired_versions": expired,
        "source": source,
        "cards": counts["card"],
        "terminals": counts["terminal"],
        "keys_written": progress.keys,
        "duration_s": round(duration, 3),
        "read_s": round(read_s, 3),
        "redis_write_s": round(progress.write_s, 3),
        "keys_per_s": round(progress.keys / duration, 1) if duration > 0 else None,
        "redis_write_keys_per_s": round(progress.keys / progress.write_s, 1) if progress.write_s else None,
        "as_of_min": iso_ms(progress.as_of_min),
        "as_of_max": iso_ms(progress.as_of_max),
        "snapshot_lag_s": round((now_ms - progress.as_of_min) / 1000, 3),
        "feature_set_version": features.FEATURE_SET_VERSION,
    }
    log.info(
        "published online features %s v%s: %d cards + %d terminals in %.2fs (%.0f keys/s; "
        "redis %.0f keys/s); snapshot as of %s (lag %.0fs); expired versions %s",
        layout.namespace,
        version,
        counts["card"],
        counts["terminal"],
        duration,
        report["keys_per_s"] or 0,
        report["redis_write_keys_per_s"] or 0,
        report["as_of_min"],
        report["snapshot_lag_s"],
        expired,
    )
    return report


@contextmanager
def _redis(client: redis.Redis | None) -> Iterator[redis.Redis]:
    """``client``, or a client of ``REDIS_URL`` opened and closed here."""
    if client is not None:
        yield client
        return
    own = redis.Redis.from_url(redis_settings().redis_url, socket_timeout=30, socket_connect_timeout=5)
    try:
        yield own
    finally:
        own.close()


def write_frames(
    cards: pd.DataFrame,
    terminals: pd.DataFrame,
    *,
    as_of: datetime | None = None,
    client: redis.Redis | None = None,
    settings: FeatureWriterSettings | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """Publish snapshots held in DataFrames (e.g. ``ml.pit.snapshot_frame(history, as_of)``)."""
    s = settings or get_settings()
    with _redis(client) as r:
        cards_in, terminals_in = _chunks(cards, s.batch_size), _chunks(terminals, s.batch_size)
        return write_snapshot(r, cards_in, terminals_in, settings=s, namespace=namespace, as_of=as_of)


def write_online_features(
    *,
    card_table: str | None = None,
    terminal_table: str | None = None,
    settings: FeatureWriterSettings | None = None,
    namespace: str | None = None,
    client: redis.Redis | None = None,
) -> dict[str, Any]:
    """Gold snapshots (Trino) → a new Redis version → pointer switch. Defaults from settings."""
    s = settings or get_settings()
    cards, terminals = card_table or s.card_table, terminal_table or s.terminal_table
    with _redis(client) as r:
        return write_snapshot(
            r,
            snapshot_batches(cards, "card", s.batch_size),
            snapshot_batches(terminals, "terminal", s.batch_size),
            settings=s,
            namespace=namespace,
            source=f"trino:{cards},{terminals}",
        )


def current_meta(client: redis.Redis, namespace: str) -> dict[str, str] | None:
    """The meta hash of the published version (None when nothing is published)."""
    layout = OnlineLayout(namespace)
    version = client.get(layout.pointer)
    if version is None:
        return None
    raw: Mapping[Any, Any] = client.hgetall(layout.meta(_text(version)))
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
