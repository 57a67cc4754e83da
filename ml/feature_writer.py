"""Gold → the Redis online state: seeding (and re-seeding) each card's and terminal's history.

``write_online_features()`` (the Airflow task ``write_online_features``; ``python -m ml
write-features``) reads the transactions of the last :data:`contracts.online_store.RETENTION_MS`
from Gold (``fct_transaction_features``: every transaction with its label, if one arrived) and
applies them with the scripts of :mod:`ml.online_state`: transactions appended to their card and
terminal, fraud labels counted from ``max(label_time, event_time)`` on. Every write is idempotent by
``transaction_id`` and nothing is removed, so seeding **merges**: whatever ``/predict`` and the
online applier appended after Gold was built stays. :func:`seed_frame` does the same from a
DataFrame (a labelled file, tests, the demo before Gold exists).

``make rebuild-online`` (:func:`rebuild`) is the way back after Redis lost its data: seed from Gold,
then re-apply the Kafka topics from the newest Gold event on (``ml.online_applier.replay``).

Each run returns (and logs) its metrics: transactions and labels applied, new vs already known,
duration, rows/s, and the newest event time seeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import redis

import features
from common.settings import redis_settings
from contracts.online_store import RETENTION_MS, OnlineLayout
from ml.data import DEFAULT_LABEL_DELAY
from ml.online_state import Label, append_events, apply_labels
from ml.settings import FeatureWriterSettings, get_settings

log = logging.getLogger(__name__)

#: Gold columns a seed reads (event and label times as epoch ms).
SEED_COLUMNS = (
    "transaction_id", "event_time_ms", "card_id", "terminal_id", "amount", "channel", "mcc",
    "device_id", "latitude", "longitude", "country", "is_fraud", "label_time_ms",
)  # fmt: skip


RETENTION_DAYS = RETENTION_MS // 86_400_000


class FeatureWriterError(RuntimeError):
    """A run that cannot seed (nothing in Gold)."""


def _opt(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def _transactions(frame: pd.DataFrame) -> list[features.Transaction]:
    cols = {c: frame[c].to_numpy(dtype=object) for c in SEED_COLUMNS[:11]}
    return [
        features.Transaction(
            transaction_id=str(cols["transaction_id"][i]),
            event_time=features.from_epoch_ms(int(cols["event_time_ms"][i])),
            card_id=str(cols["card_id"][i]),
            terminal_id=str(cols["terminal_id"][i]),
            amount=float(cols["amount"][i]),
            channel=_opt(cols["channel"][i]),
            mcc=_opt(cols["mcc"][i]),
            device_id=_opt(cols["device_id"][i]),
            latitude=_opt(cols["latitude"][i]),
            longitude=_opt(cols["longitude"][i]),
            country=_opt(cols["country"][i]),
        )
        for i in range(len(frame))
    ]


def labels_of(frame: pd.DataFrame) -> list[Label]:
    frauds = frame[frame["is_fraud"].astype(int) == 1]
    delay_ms = int(DEFAULT_LABEL_DELAY / timedelta(milliseconds=1))
    out = []
    for tid, card, ev_ms, lb_ms in zip(
        frauds["transaction_id"],
        frauds["card_id"],
        frauds["event_time_ms"],
        frauds["label_time_ms"],
        strict=True,
    ):
        known = int(ev_ms) + delay_ms if lb_ms is None or pd.isna(lb_ms) else int(lb_ms)
        out.append(Label(str(tid), str(card), known))
    return out


class _Totals:
    def __init__(self) -> None:
        self.rows = self.new = self.labels = self.waiting = 0
        self.newest_ms: int | None = None

    def add(self, frame: pd.DataFrame, client: redis.Redis, layout: OnlineLayout) -> None:
        if frame.empty:
            return
        frame = frame.sort_values(["event_time_ms", "transaction_id"], kind="stable")
        txns = _transactions(frame)
        new = append_events(client, layout, txns)
        done, waiting = apply_labels(client, layout, labels_of(frame))
        self.rows += len(txns)
        self.new += new
        self.labels += done
        self.waiting += waiting
        newest = int(frame["event_time_ms"].max())
        self.newest_ms = newest if self.newest_ms is None else max(self.newest_ms, newest)


def seed_batches(
    client: redis.Redis,
    batches: Iterable[pd.DataFrame],
    *,
    namespace: str | None = None,
    source: str = "frames",
) -> dict[str, Any]:
    """Apply batches of :data:`SEED_COLUMNS` rows (any order across batches) and report."""
    layout = OnlineLayout(namespace or redis_settings().feature_namespace)
    started = time.perf_counter()
    totals = _Totals()
    for batch in batches:
        totals.add(batch, client, layout)
    if totals.rows == 0:
        raise FeatureWriterError(f"nothing to seed the online state from ({source} has no transactions)")
    duration = time.perf_counter() - started
    report = {
        "namespace": layout.namespace,
        "source": source,
        "transactions": totals.rows,
        "transactions_new": totals.new,
        "transactions_known": totals.rows - totals.new,
        "fraud_labels_applied": totals.labels,
        "fraud_labels_waiting": totals.waiting,
        "newest_event": None
        if totals.newest_ms is None
        else features.from_epoch_ms(totals.newest_ms).isoformat(),
        "newest_event_ms": totals.newest_ms,
        "duration_s": round(duration, 3),
        "rows_per_s": round(totals.rows / duration, 1) if duration > 0 else None,
        "feature_set_version": features.FEATURE_SET_VERSION,
    }
    log.info(
        "seeded online state %s from %s: %d transactions (%d new) and %d fraud labels in %.2fs (%.0f rows/s)",
        layout.namespace, source, totals.rows, totals.new, totals.labels, duration, report["rows_per_s"] or 0,
    )  # fmt: skip
    return report


def drop_legacy_snapshots(client: redis.Redis, namespace: str) -> int:
    """Remove the versioned snapshots an earlier release published (``<ns>:current``, ``<ns>:v<id>:*``
    and their bookkeeping): serving no longer reads them. Returns the number of keys removed."""
    keys = [f"{namespace}:{k}" for k in ("current", "versions", "version_seq", "lock")]
    keys += [k for k in client.scan_iter(match=f"{namespace}:v[0-9]*", count=10_000)]
    removed = 0
    for start_i in range(0, len(keys), 10_000):
        removed += int(client.unlink(*keys[start_i : start_i + 10_000]))
    if removed:
        log.info(
            "removed %d keys of the versioned snapshots of an earlier release from %s", removed, namespace
        )
    return removed


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


def frame_rows(history: pd.DataFrame) -> pd.DataFrame:
    """:data:`SEED_COLUMNS` of a validated transactions frame (``ml.data.validate_transactions``)."""
    out = history.copy()
    if "event_time_ms" not in out:
        out["event_time_ms"] = out["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    label = pd.to_datetime(out["label_time"], utc=True)
    out["label_time_ms"] = [None if pd.isna(v) else features.to_epoch_ms(v.to_pydatetime()) for v in label]
    return out[list(SEED_COLUMNS)]


def seed_frame(
    history: pd.DataFrame,
    *,
    client: redis.Redis | None = None,
    namespace: str | None = None,
    settings: FeatureWriterSettings | None = None,
) -> dict[str, Any]:
    """Seed from a validated transactions frame (every row; the state trims to its retention)."""
    s = settings or get_settings()
    rows = frame_rows(history)
    with _redis(client) as r:
        chunks = (rows.iloc[i : i + s.batch_size] for i in range(0, len(rows), s.batch_size))
        return seed_batches(r, chunks, namespace=namespace)


def seed_query(table: str, catalog: str) -> str:
    """SELECT of the Gold transactions of the retention window (identifiers only, checked)."""
    from ml.gold import qualified as qualify

    qualified = qualify(table, catalog)
    cols = ", ".join(c for c in SEED_COLUMNS if c not in ("event_time_ms", "label_time_ms"))
    return (
        f"SELECT {cols}, date_diff('millisecond', from_unixtime(0), event_time) AS event_time_ms, "  # noqa: S608
        f"date_diff('millisecond', from_unixtime(0), label_time) AS label_time_ms FROM {qualified} "
        f"WHERE event_time >= (SELECT max(event_time) FROM {qualified}) - INTERVAL '{RETENTION_DAYS}' DAY "
        f"ORDER BY event_time"
    )


def write_online_features(
    *,
    table: str | None = None,
    settings: FeatureWriterSettings | None = None,
    namespace: str | None = None,
    client: redis.Redis | None = None,
) -> dict[str, Any]:
    """Gold (Trino) → the online state, merged. Defaults from settings."""
    from common import trino_client
    from ml.gold import batches

    s = settings or get_settings()
    source = table or s.source_table
    query = seed_query(source, trino_client.catalog())
    names = [c for c in SEED_COLUMNS if c not in ("event_time_ms", "label_time_ms")] + [
        "event_time_ms",
        "label_time_ms",
    ]
    with _redis(client) as r:
        drop_legacy_snapshots(r, namespace or redis_settings().feature_namespace)
        return seed_batches(
            r, batches(query, names, s.batch_size), namespace=namespace, source=f"trino:{source}"
        )


def rebuild(*, namespace: str | None = None, replay_s: int | None = None) -> dict[str, Any]:
    """After Redis lost the state: seed from Gold, then replay Kafka from just before Gold's
    newest event (``ONLINE_APPLIER_REBUILD_REPLAY_S`` earlier at most)."""
    from ml.online_applier import replay
    from ml.settings import applier_settings

    seeded = write_online_features(namespace=namespace)
    window_ms = 1000 * (replay_s if replay_s is not None else applier_settings().rebuild_replay_s)
    since = min(int(seeded["newest_event_ms"]), int(time.time() * 1000)) - window_ms
    replayed = replay(since, namespace=namespace)
    return {"seed": seeded, "kafka_replay": replayed}
