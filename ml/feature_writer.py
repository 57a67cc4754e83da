"""Gold feature snapshots → Redis: the online feature store that serving reads.

``write_online_features()`` (the Airflow task ``write_online_features``; ``python -m ml.feature_writer``)
reads ``card_features_latest`` and ``terminal_features_latest`` from Gold through Trino and writes
every row to Redis as the JSON of :meth:`features.CardFeatures.to_dict` /
:meth:`features.TerminalFeatures.to_dict`, in pipelined ``MSET`` batches, under a **new version**.
Only when every key of that version is written does one ``SET`` move the pointer to it, so a
reader never sees a half-written set; the previous versions then get a TTL
(``FEATURE_WRITER_OLD_VERSION_TTL_S``) and expire. :func:`write_frames` writes the same layout from
DataFrames (``ml.pit.snapshot_frame``): tests, the demo before Gold exists, ``from-file``.

Layout under the namespace ``<ns>`` (``FEATURE_WRITER_NAMESPACE``, default ``features``)::

    <ns>:current                        id of the published version (the pointer)
    <ns>:v<id>:card:<card_id>           JSON of CardFeatures.to_dict()
    <ns>:v<id>:terminal:<terminal_id>   JSON of TerminalFeatures.to_dict()
    <ns>:v<id>:meta                     hash: as_of_min/max (epoch ms), written_at, counts, feature set
    <ns>:versions                       sorted set of versions not yet expired (score: creation time)
    <ns>:version_seq                    counter handing out version ids
    <ns>:lock                           held by the run in progress (one writer at a time)

Readers resolve the pointer and read their keys in one round trip with :data:`READ_SCRIPT`
(a read-only Lua script; on Redis Cluster the keys of one lookup would span slots, so a cluster
deployment would cache the pointer and use per-slot ``MGET`` instead).

Each run returns (and logs) its metrics: keys written, duration, keys/s and the snapshot lag
(now − ``as_of``); the same figures are stored in the version's ``meta`` hash, which serving
exports as ``fraud_api_online_features_*`` gauges.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import orjson
import pandas as pd
import redis
import typer
from pydantic import Field
from pydantic_settings import SettingsConfigDict

import features
from common import trino_client
from common.settings import ROOT, ServiceSettings, redis_settings, trino_settings

log = logging.getLogger(__name__)

CARD_LIST_FIELDS: Final = ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries")
#: CardFeatures.to_dict() keys in order; "card_last_event_time" comes from card_last_event_time_ms.
CARD_JSON_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in features.CardFeatures.__dataclass_fields__.values()
)
TERMINAL_JSON_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in features.TerminalFeatures.__dataclass_fields__.values()
)
#: Gold snapshot columns (besides the id and as_of), as named in ``delta.gold.*_features_latest``.
CARD_COLUMNS: Final[tuple[str, ...]] = features.CARD_AGGREGATE_COLUMNS + CARD_LIST_FIELDS
TERMINAL_COLUMNS: Final[tuple[str, ...]] = features.TERMINAL_AGGREGATE_COLUMNS

#: Pointer + keys in one round trip. KEYS[1] = pointer; ARGV[1] = "<ns>"; ARGV[2..] = key suffixes
#: ("card:<id>", "terminal:<id>"). Returns {version or false, value or false, ...}.
READ_SCRIPT: Final = """
local v = redis.call('GET', KEYS[1])
if not v then return {false} end
local prefix = ARGV[1] .. ':v' .. v .. ':'
local out = {v}
for i = 2, #ARGV do
  out[i] = redis.call('GET', prefix .. ARGV[i])
end
return out
"""

_RELEASE_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class FeatureWriterSettings(ServiceSettings):
    """``FEATURE_WRITER_*`` variables (environment, then .env, then .env.example)."""

    model_config = SettingsConfigDict(env_prefix="FEATURE_WRITER_")

    #: Key prefix of the online store (serving reads the same one).
    namespace: str = "features"
    #: Rows read from Trino and written to Redis per pipelined round trip.
    batch_size: int = Field(default=5000, ge=1)
    #: Seconds an unpublished or superseded version stays readable before it expires.
    old_version_ttl_s: int = Field(default=3600, ge=1)
    #: A run holding the lock longer than this is presumed dead.
    lock_ttl_s: int = Field(default=3600, ge=1)
    #: Gold snapshots as <schema>.<table> in the TRINO_CATALOG catalog.
    card_table: str = "gold.card_features_latest"
    terminal_table: str = "gold.terminal_features_latest"


@cache
def get_settings() -> FeatureWriterSettings:
    return FeatureWriterSettings()


class FeatureWriterError(RuntimeError):
    """A run that cannot publish (empty snapshot, another run holding the lock)."""


class OnlineLayout:
    """Key names of one namespace of the online store (shared by the writer and serving)."""

    def __init__(self, namespace: str) -> None:
        if not namespace or any(c.isspace() for c in namespace):
            raise ValueError(f"invalid feature namespace {namespace!r}")
        self.namespace = namespace
        self.pointer = f"{namespace}:current"
        self.versions = f"{namespace}:versions"
        self.seq = f"{namespace}:version_seq"
        self.lock = f"{namespace}:lock"

    def prefix(self, version: str) -> str:
        return f"{self.namespace}:v{version}:"

    def meta(self, version: str) -> str:
        return f"{self.prefix(version)}meta"

    def card(self, version: str, card_id: str) -> str:
        return f"{self.prefix(version)}card:{card_id}"

    def terminal(self, version: str, terminal_id: str) -> str:
        return f"{self.prefix(version)}terminal:{terminal_id}"


# --------------------------------------------------------------------------- encoding


def _iso(ms: int) -> str:
    return features.from_epoch_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_of_ms(frame: pd.DataFrame, as_of: datetime | None) -> list[int]:
    if "as_of_ms" in frame.columns:
        return [int(v) for v in frame["as_of_ms"].tolist()]
    if "as_of" in frame.columns:
        return [features.to_epoch_ms(pd.Timestamp(v).to_pydatetime()) for v in frame["as_of"].tolist()]
    if as_of is None:
        raise ValueError("the snapshot frame has no as_of / as_of_ms column: pass as_of")
    return [features.to_epoch_ms(as_of)] * len(frame)


def encode_cards(
    frame: pd.DataFrame, as_of: datetime | None = None
) -> tuple[list[str], list[bytes], list[int]]:
    """(card ids, JSON values, as_of ms) of a card snapshot frame (Gold or ``snapshot_frame``).

    The JSON is exactly :meth:`features.CardFeatures.to_dict` of the row
    (:func:`ml.pit.card_features_from_row` gives the same object), so serving reads it back with
    :meth:`features.CardFeatures.from_dict`.
    """
    n = len(frame)
    ids = [str(v) for v in frame["card_id"].tolist()]
    as_ofs = _as_of_ms(frame, as_of)
    iso_cache: dict[int, str] = {}
    cols: dict[str, list[Any]] = {}
    for name in features.CARD_AGGREGATE_COLUMNS:
        raw = frame[name].tolist()
        if name == "card_last_event_time_ms":
            cols["card_last_event_time"] = [None if _is_null(v) else _iso(int(v)) for v in raw]
        elif name.startswith("card_count"):
            cols[name] = [int(v) for v in raw]
        else:
            cols[name] = [None if _is_null(v) else float(v) for v in raw]
    for name in CARD_LIST_FIELDS:
        cols[name] = [
            [] if v is None or isinstance(v, float) else [str(x) for x in v] for v in frame[name].tolist()
        ]
    values: list[bytes] = []
    for i in range(n):
        ms = as_ofs[i]
        iso = iso_cache.get(ms)
        if iso is None:
            iso = iso_cache[ms] = _iso(ms)
        doc = {"card_id": ids[i], "as_of": iso}
        for name in CARD_JSON_FIELDS[2:]:
            doc[name] = cols[name][i]
        values.append(orjson.dumps(doc))
    return ids, values, as_ofs


def encode_terminals(
    frame: pd.DataFrame, as_of: datetime | None = None
) -> tuple[list[str], list[bytes], list[int]]:
    """(terminal ids, JSON values, as_of ms): :meth:`features.TerminalFeatures.to_dict` per row."""
    ids = [str(v) for v in frame["terminal_id"].tolist()]
    as_ofs = _as_of_ms(frame, as_of)
    cols = {name: [int(v) for v in frame[name].tolist()] for name in TERMINAL_COLUMNS}
    iso_cache: dict[int, str] = {}
    values: list[bytes] = []
    for i in range(len(ids)):
        ms = as_ofs[i]
        iso = iso_cache.get(ms)
        if iso is None:
            iso = iso_cache[ms] = _iso(ms)
        doc: dict[str, Any] = {"terminal_id": ids[i], "as_of": iso}
        for name in TERMINAL_JSON_FIELDS[2:]:
            doc[name] = cols[name][i]
        values.append(orjson.dumps(doc))
    return ids, values, as_ofs


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
    layout = OnlineLayout(namespace or s.namespace)
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
        client.eval(_RELEASE_LOCK, 1, layout.lock, token)
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
        "as_of_min": _iso(progress.as_of_min),
        "as_of_max": _iso(progress.as_of_max),
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


def _redis_client(url: str | None = None) -> redis.Redis:
    return redis.Redis.from_url(
        url or redis_settings().redis_url, socket_timeout=30, socket_connect_timeout=5
    )


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
    own = client is None
    r = client or _redis_client()
    try:
        return write_snapshot(
            r,
            _chunks(cards, s.batch_size),
            _chunks(terminals, s.batch_size),
            settings=s,
            namespace=namespace,
            as_of=as_of,
            source="frames",
        )
    finally:
        if own:
            r.close()


# --------------------------------------------------------------------------- Gold through Trino


def snapshot_query(table: str, kind: str, catalog: str) -> str:
    """SELECT of one Gold snapshot, ``as_of`` as epoch ms (exact, no timezone conversion)."""
    key = "card_id" if kind == "card" else "terminal_id"
    cols = CARD_COLUMNS if kind == "card" else TERMINAL_COLUMNS
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.replace("_", "").isalnum() for p in parts):
        raise ValueError(f"invalid table name {table!r}: expected [catalog.]schema.table")
    qualified = table if len(parts) == 3 else f"{catalog}.{table}"
    select = ", ".join(cols)
    # identifiers only (checked above / constants): no value is interpolated
    return (
        f"SELECT {key}, date_diff('millisecond', from_unixtime(0), as_of) AS as_of_ms, {select} "  # noqa: S608
        f"FROM {qualified}"
    )


def _trino_batches(query: str, columns: Sequence[str], batch_size: int) -> Iterator[pd.DataFrame]:
    conn = trino_client.connect()
    try:
        cur = conn.cursor()
        cur.execute(query)
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                break
            yield pd.DataFrame.from_records(rows, columns=list(columns))
    finally:
        conn.close()


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
    catalog = trino_settings().trino_catalog
    card_q = snapshot_query(card_table or s.card_table, "card", catalog)
    term_q = snapshot_query(terminal_table or s.terminal_table, "terminal", catalog)
    own = client is None
    r = client or _redis_client()
    try:
        return write_snapshot(
            r,
            _trino_batches(card_q, ("card_id", "as_of_ms", *CARD_COLUMNS), s.batch_size),
            _trino_batches(term_q, ("terminal_id", "as_of_ms", *TERMINAL_COLUMNS), s.batch_size),
            settings=s,
            namespace=namespace,
            source=f"trino:{card_table or s.card_table},{terminal_table or s.terminal_table}",
        )
    finally:
        if own:
            r.close()


def current_meta(client: redis.Redis, namespace: str) -> dict[str, str] | None:
    """The meta hash of the published version (None when nothing is published)."""
    layout = OnlineLayout(namespace)
    version = client.get(layout.pointer)
    if version is None:
        return None
    raw: Mapping[Any, Any] = client.hgetall(layout.meta(_text(version)))
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


# --------------------------------------------------------------------------- CLI

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=False)


def _save(report: dict[str, Any], path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        log.info("report: %s", path)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    card_table: str = typer.Option(None, help="[catalog.]schema.table (default FEATURE_WRITER_CARD_TABLE)"),
    terminal_table: str = typer.Option(None, help="default FEATURE_WRITER_TERMINAL_TABLE"),
    report: Path = typer.Option(ROOT / "var/reports/feature_writer.json", help="JSON report path"),
) -> None:
    """Gold → Redis (what the Airflow task runs). A subcommand runs instead when given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand is not None:
        return
    try:
        result = write_online_features(card_table=card_table, terminal_table=terminal_table)
    except FeatureWriterError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from exc
    _save(result, report)


@app.command("from-file")
def from_file(
    data: Path = typer.Option(..., help="labelled transactions (Parquet/CSV) as for ml.train"),
    as_of: str = typer.Option(None, help="ISO time of the snapshot (default: 1 ms after the last event)"),
    report: Path = typer.Option(ROOT / "var/reports/feature_writer.json", help="JSON report path"),
) -> None:
    """Snapshot a transactions file with the reference builder (ml.pit) and publish it."""
    from ml.data import load_labelled
    from ml.pit import snapshot_frame

    history = load_labelled(data)
    when = (
        datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        if as_of
        else features.from_epoch_ms(int(history["event_time_ms"].max()) + 1)
    )
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    cards, terminals = snapshot_frame(history, when)
    try:
        result = write_frames(cards, terminals, as_of=when)
    except FeatureWriterError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from exc
    _save(result, report)


if __name__ == "__main__":
    app()
