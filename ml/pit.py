"""Point-in-time reference builder: transactions + labels -> one feature row per transaction.

For a transaction at time ``t`` every aggregate uses only transactions with ``event_time < t`` and
only fraud labels with ``max(label_time, event_time) < t`` (docs/design/features.md). The dbt Gold
model ``fct_transaction_features`` must match this oracle: the output carries exactly the aggregate
columns of :data:`AGGREGATE_COLUMNS`; :func:`feature_matrix` turns them into vectors with
:func:`features.compute_features`.

Vectorised: for each window the builder sorts the history by (entity, time) and answers every
query with two binary searches on a composite int64 key, so 1–2 M rows take seconds. Windowed
amount sums are exact (integer cents; squares in cents², whose int64 wrap-around cancels in
differences). The terminal fraud counts use the identity that a fraud ``f`` counts for a query at
``t`` iff ``max(label_time, event_time) < t <= event_time + W``, an interval, hence also two
binary searches.

:func:`card_snapshot` / :func:`terminal_snapshot` compute the same aggregates as of any time from
one entity's rows (the definitions the online state applies); tests hold both paths equal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

import features

log = logging.getLogger(__name__)

IntArr = npt.NDArray[np.int64]
FloatArr = npt.NDArray[np.float64]

#: Columns of the training frame produced by :func:`build_feature_frame`, besides the inputs.
AGGREGATE_COLUMNS: Final[tuple[str, ...]] = (
    features.CARD_AGGREGATE_COLUMNS + features.CARD_FLAG_COLUMNS + features.TERMINAL_AGGREGATE_COLUMNS
)
_MAX_WINDOW: Final = max(max(features.CARD_WINDOWS.values()), max(features.TERMINAL_WINDOWS.values()))


@dataclass(frozen=True)
class _Keys:
    """Composite sort keys ``entity * span + (ms - origin)`` for one entity type."""

    origin: int
    span: int

    def of(self, entity: IntArr, ms: npt.NDArray[Any]) -> IntArr:
        return entity.astype(np.int64) * self.span + (np.asarray(ms, dtype=np.int64) - self.origin)


def _keys_for(ms_min: int, ms_max: int, n_entities: int) -> _Keys:
    origin = ms_min - _MAX_WINDOW - 1
    span = (ms_max - origin) + 2 * _MAX_WINDOW + 2
    if n_entities * span >= np.iinfo(np.int64).max // 2:
        raise ValueError("time range x number of cards/terminals too large for int64 keys")
    return _Keys(origin, span)


def _epoch_ms(times: pd.Series) -> IntArr:
    """Epoch ms of a UTC timestamp column; NaT becomes the smallest int64."""
    return times.to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _cents(amount: FloatArr) -> IntArr:
    return np.rint(np.asarray(amount, dtype=np.float64) * 100.0).astype(np.int64)


class _Sorted:
    """History of one entity type sorted by (entity, time, transaction_id), with prefix sums."""

    def __init__(self, entity: IntArr, ms: IntArr, tiebreak: IntArr, keys: _Keys) -> None:
        self.order = np.lexsort((tiebreak, ms, entity))
        self.keys = keys
        self.key = keys.of(entity[self.order], ms[self.order])
        self.entity = entity[self.order]

    def prefix(self, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
        v = np.asarray(values)[self.order]
        out = np.zeros(len(v) + 1, dtype=v.dtype)
        np.cumsum(v, out=out[1:])
        return out


class _Queries:
    """Query points (entity, time), searched in key order (sorted needles are cache friendly)."""

    def __init__(self, history: _Sorted, entity: IntArr, ms: IntArr) -> None:
        self.h = history
        key = history.keys.of(entity, ms)
        self.order = np.argsort(key, kind="stable")
        self.key = key[self.order]
        self.entity = entity[self.order]

    def bounds(self, window_ms: int) -> tuple[IntArr, IntArr]:
        """Index range [lo, hi) of history rows of the entity with t - W <= ms < t, query order."""
        hi = np.searchsorted(self.h.key, self.key, side="left")
        lo = hi if window_ms == 0 else np.searchsorted(self.h.key, self.key - window_ms, side="left")
        out_lo = np.empty(len(hi), dtype=np.int64)
        out_hi = np.empty(len(hi), dtype=np.int64)
        out_lo[self.order] = lo
        out_hi[self.order] = hi
        return out_lo, out_hi


def _window_sum(prefix: npt.NDArray[Any], lo: IntArr, hi: IntArr) -> npt.NDArray[Any]:
    with np.errstate(over="ignore"):
        return prefix[hi] - prefix[lo]


def _pair_codes(a: pd.Series, b: pd.Series) -> IntArr:
    """Dense code of the (a, b) pair; -1 where b is null."""
    codes_a = pd.factorize(a)[0].astype(np.int64)
    codes_b = pd.factorize(b)[0].astype(np.int64)
    pair = np.where(codes_b >= 0, codes_a * (codes_b.max(initial=0) + 1) + codes_b, -1)
    dense = pd.factorize(pair)[0].astype(np.int64)
    return np.where(codes_b >= 0, dense, -1)


def _seen_within(
    pair_hist: IntArr, ms_hist: IntArr, pair_q: IntArr, ms_q: IntArr, window_ms: int, ms_min: int, ms_max: int
) -> FloatArr:
    """1.0 where the query's pair occurred in [t - W, t) in the history; pair -1 -> 0.0."""
    out = np.zeros(len(pair_q), dtype=np.float64)
    hist_ok = pair_hist >= 0
    q_ok = pair_q >= 0
    if not hist_ok.any() or not q_ok.any():
        return out
    keys = _keys_for(ms_min, ms_max, int(max(pair_hist.max(), pair_q.max())) + 1)
    zero = np.zeros(int(hist_ok.sum()), dtype=np.int64)
    s = _Sorted(pair_hist[hist_ok], ms_hist[hist_ok], zero, keys)
    lo, hi = _Queries(s, pair_q[q_ok], ms_q[q_ok]).bounds(window_ms)
    out[q_ok] = (hi > lo).astype(np.float64)
    return out


def card_aggregates(history: pd.DataFrame, queries: pd.DataFrame) -> dict[str, FloatArr]:
    """Card aggregate columns for each query row (``card_id``, ``event_time_ms`` and, for the flags,
    ``terminal_id``, ``device_id``, ``country``) over ``history`` (a validated frame)."""
    n_q = len(queries)
    all_cards = pd.concat([history["card_id"], queries["card_id"]], ignore_index=True)
    codes = pd.factorize(all_cards)[0].astype(np.int64)
    h_card, q_card = codes[: len(history)], codes[len(history) :]
    h_ms = history["event_time_ms"].to_numpy(np.int64)
    q_ms = queries["event_time_ms"].to_numpy(np.int64)
    ms_min = int(min(h_ms.min(initial=0), q_ms.min(initial=0)))
    ms_max = int(max(h_ms.max(initial=0), q_ms.max(initial=0)))
    keys = _keys_for(ms_min, ms_max, int(codes.max(initial=0)) + 1)
    tiebreak = pd.factorize(history["transaction_id"], sort=True)[0].astype(np.int64)
    s = _Sorted(h_card, h_ms, tiebreak, keys)
    q = _Queries(s, q_card, q_ms)
    cents = _cents(history["amount"].to_numpy())
    p_cents = s.prefix(cents)
    out: dict[str, FloatArr] = {}
    for w, length in features.CARD_WINDOWS.items():
        lo, hi = q.bounds(length)
        out[f"card_count_txn_{w}"] = (hi - lo).astype(np.float64)
        out[f"card_sum_amount_{w}"] = _window_sum(p_cents, lo, hi) / 100.0
        if w == "30d":
            sq = _window_sum(s.prefix(cents * cents), lo, hi)
            out["card_sum_amount_sq_30d"] = sq.astype(np.float64) / 10_000.0
            lat = history["latitude"].to_numpy(np.float64)
            lon = history["longitude"].to_numpy(np.float64)
            geo = ~(np.isnan(lat) | np.isnan(lon))
            n_geo = _window_sum(s.prefix(geo.astype(np.int64)), lo, hi)
            out["card_count_geo_30d"] = n_geo.astype(np.float64)
            # sums of offsets from a per-card reference keep the prefix sums small (float precision)
            n_codes = int(codes.max(initial=0)) + 1
            for name, coord in (("card_sum_latitude_30d", lat), ("card_sum_longitude_30d", lon)):
                ref = np.zeros(n_codes)
                ref[h_card[geo][::-1]] = coord[geo][::-1]  # some coordinate of the card (its first)
                offsets = np.where(geo, coord - ref[h_card], 0.0)
                out[name] = _window_sum(s.prefix(offsets), lo, hi) + n_geo * ref[q_card]
    # previous transaction: the last sorted row strictly before t, if it belongs to the same card
    _, hi0 = q.bounds(0)
    prev = hi0 - 1
    has_prev = (prev >= 0) & (s.entity[np.maximum(prev, 0)] == q_card)
    src = s.order[np.maximum(prev, 0)]
    out["card_last_event_time_ms"] = np.where(has_prev, h_ms[src].astype(np.float64), np.nan)
    out["card_last_latitude"] = np.where(has_prev, history["latitude"].to_numpy(np.float64)[src], np.nan)
    out["card_last_longitude"] = np.where(has_prev, history["longitude"].to_numpy(np.float64)[src], np.nan)
    # membership flags over the recent window
    both = pd.concat([history, queries], ignore_index=True)
    for flag, column in (
        ("card_terminal_seen_30d", "terminal_id"),
        ("card_device_seen_30d", "device_id"),
        ("card_country_seen_30d", "country"),
    ):
        pair = _pair_codes(both["card_id"], both[column])
        out[flag] = _seen_within(
            pair[: len(history)], h_ms, pair[len(history) :], q_ms, features.RECENT_WINDOW_MS, ms_min, ms_max
        )
    assert all(len(v) == n_q for v in out.values())
    return out


def terminal_aggregates(history: pd.DataFrame, queries: pd.DataFrame) -> dict[str, FloatArr]:
    """Terminal aggregate columns for each query row (``terminal_id``, ``event_time_ms``)."""
    all_terms = pd.concat([history["terminal_id"], queries["terminal_id"]], ignore_index=True)
    codes = pd.factorize(all_terms)[0].astype(np.int64)
    h_term, q_term = codes[: len(history)], codes[len(history) :]
    h_ms = history["event_time_ms"].to_numpy(np.int64)
    q_ms = queries["event_time_ms"].to_numpy(np.int64)
    ms_min = int(min(h_ms.min(initial=0), q_ms.min(initial=0)))
    ms_max = int(max(h_ms.max(initial=0), q_ms.max(initial=0)))
    keys = _keys_for(ms_min, ms_max, int(codes.max(initial=0)) + 1)
    s = _Sorted(h_term, h_ms, np.zeros(len(h_ms), dtype=np.int64), keys)
    q = _Queries(s, q_term, q_ms)
    fraud = history["is_fraud"].to_numpy() == 1
    f_term = h_term[fraud]
    f_event = h_ms[fraud]
    label_ms = _epoch_ms(history["label_time"])[fraud]
    # effective arrival, capped just past the last query so it stays inside the key range
    f_known = np.minimum(np.maximum(label_ms, f_event), ms_max + 1)
    q_key = q.key
    q_first = keys.of(q.entity, np.full(len(q_ms), keys.origin, dtype=np.int64))
    out: dict[str, FloatArr] = {}
    for w, length in features.TERMINAL_WINDOWS.items():
        lo, hi = q.bounds(length)
        out[f"terminal_count_txn_{w}"] = (hi - lo).astype(np.float64)
        # fraud f counts at t iff known_f < t <= event_f + W  (an interval of t)
        live = f_known < f_event + length
        opens = np.sort(keys.of(f_term[live], f_known[live]))
        closes = np.sort(keys.of(f_term[live], f_event[live] + length))
        opened = np.searchsorted(opens, q_key, side="left") - np.searchsorted(opens, q_first, side="left")
        closed = np.searchsorted(closes, q_key, side="left") - np.searchsorted(closes, q_first, side="left")
        counts = np.empty(len(q_key), dtype=np.float64)
        counts[q.order] = opened - closed
        out[f"terminal_count_fraud_{w}"] = counts
    return out


def build_feature_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """Training frame: every input column plus the aggregates as of each transaction's own time.

    ``transactions`` is a validated frame (see :func:`ml.data.validate_transactions`) carrying the
    labels (``is_fraud`` and effective ``label_time``). The result is sorted by
    (``event_time``, ``transaction_id``) and has one row per input row.
    """
    started = time.perf_counter()
    df = transactions.sort_values(["event_time_ms", "transaction_id"], kind="stable").reset_index(drop=True)
    card = card_aggregates(df, df)
    term = terminal_aggregates(df, df)
    agg = pd.DataFrame({**card, **term}, index=df.index)
    out = pd.concat([df, agg[list(AGGREGATE_COLUMNS)]], axis=1)
    log.info("built point-in-time aggregates for %d rows in %.1fs", len(out), time.perf_counter() - started)
    return out


def feature_inputs(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """Input columns of :func:`features.compute_features` taken from a training / Gold frame."""
    cols: dict[str, npt.NDArray[Any]] = {}
    for name in features.INPUT_COLUMNS:
        if name in {"channel", "mcc", "device_id", "country"}:
            cols[name] = frame[name].to_numpy(dtype=object)
        else:
            cols[name] = frame[name].to_numpy(dtype=np.float64 if name != "event_time_ms" else np.int64)
    return cols


def feature_matrix(frame: pd.DataFrame) -> FloatArr:
    """Feature vectors (rows in frame order, columns in ``features.FEATURE_NAMES`` order)."""
    return features.compute_features(feature_inputs(frame))


# --------------------------------------------------------------------------- snapshots (scalar)


def _history_before(history: pd.DataFrame, column: str, value: str, as_of_ms: int) -> pd.DataFrame:
    rows = history[(history[column] == value) & (history["event_time_ms"] < as_of_ms)]
    return rows


def card_events(history: pd.DataFrame, card_id: str) -> list[features.CardEvent]:
    """The card's transactions of ``history`` as the online state keeps them."""
    rows = history[history["card_id"] == card_id]

    def opt(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    columns = ("transaction_id", "event_time_ms", "amount", "terminal_id", "latitude", "longitude",
               "device_id", "country")  # fmt: skip
    out = []
    for tid, ms, amount, term, lat, lon, dev, ctry in zip(*(rows[c] for c in columns), strict=True):
        cents = features.amount_cents(amount)
        out.append(
            features.CardEvent(str(tid), int(ms), cents, str(term), opt(lat), opt(lon), opt(dev), opt(ctry))
        )
    return out


def card_snapshot(history: pd.DataFrame, card_id: str, as_of: datetime) -> features.CardFeatures:
    """CardFeatures of ``card_id`` as of ``as_of`` from its events, by the one-card definition
    serving uses (:func:`features.card_features_from_events`); tests hold it equal to the
    vectorised :func:`card_aggregates`."""
    return features.card_features_from_events(card_id, as_of, card_events(history, card_id))


def terminal_snapshot(history: pd.DataFrame, terminal_id: str, as_of: datetime) -> features.TerminalFeatures:
    """TerminalFeatures of ``terminal_id`` as of ``as_of`` by direct filtering (reference)."""
    t = features.to_epoch_ms(as_of)
    rows = _history_before(history, "terminal_id", terminal_id, t)
    snap = features.TerminalFeatures(terminal_id=terminal_id, as_of=features.from_epoch_ms(t))
    label_ms = _epoch_ms(rows["label_time"])
    known = (rows["is_fraud"].to_numpy() == 1) & (np.maximum(label_ms, rows["event_time_ms"].to_numpy()) < t)
    for w, length in features.TERMINAL_WINDOWS.items():
        in_win = rows["event_time_ms"] >= t - length
        setattr(snap, f"terminal_count_txn_{w}", int(in_win.sum()))
        setattr(snap, f"terminal_count_fraud_{w}", int((in_win & known).sum()))
    return snap


def snapshot_frame(history: pd.DataFrame, as_of: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Vectorised snapshots of every card and terminal of ``history`` as of ``as_of``.

    Returns (cards, terminals) frames with one row per entity and the fields of
    :class:`features.CardFeatures` / :class:`features.TerminalFeatures` (sets as sorted tuples).
    """
    t = features.to_epoch_ms(as_of)
    cards = pd.DataFrame({"card_id": history["card_id"].unique()})
    cards["event_time_ms"] = t
    for column in ("terminal_id", "device_id", "country"):
        cards[column] = None
    agg = card_aggregates(history, cards)
    for name in features.CARD_AGGREGATE_COLUMNS:
        cards[name] = agg[name]
    recent = history[
        (history["event_time_ms"] < t) & (history["event_time_ms"] >= t - features.RECENT_WINDOW_MS)
    ]
    for field, column in (
        ("card_recent_terminal_ids", "terminal_id"),
        ("card_recent_device_ids", "device_id"),
        ("card_recent_countries", "country"),
    ):
        sets = recent.dropna(subset=[column]).groupby("card_id")[column].agg(lambda s: tuple(sorted(set(s))))
        cards[field] = cards["card_id"].map(sets).apply(lambda v: v if isinstance(v, tuple) else ())
    cards = cards.drop(columns=["event_time_ms", "terminal_id", "device_id", "country"])
    terms = pd.DataFrame({"terminal_id": history["terminal_id"].unique()})
    terms["event_time_ms"] = t
    agg_t = terminal_aggregates(history, terms)
    for name in features.TERMINAL_AGGREGATE_COLUMNS:
        terms[name] = agg_t[name]
    return cards, terms.drop(columns=["event_time_ms"])


def transaction_from_row(row: pd.Series) -> features.Transaction:
    """One row of a transactions frame as the ``features.Transaction`` the online path receives
    (NaN and absent optional columns become None)."""

    def opt(name: str) -> Any:
        v = row.get(name)
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    return features.Transaction(
        transaction_id=row["transaction_id"],
        event_time=pd.Timestamp(row["event_time"]).to_pydatetime(),
        card_id=row["card_id"],
        terminal_id=row["terminal_id"],
        amount=float(row["amount"]),
        channel=opt("channel"),
        mcc=opt("mcc"),
        device_id=opt("device_id"),
        latitude=opt("latitude"),
        longitude=opt("longitude"),
        country=opt("country"),
        merchant_name=opt("merchant_name"),
    )


def card_features_from_row(row: dict[str, Any], as_of: datetime) -> features.CardFeatures:
    """CardFeatures from one row of the cards frame of :func:`snapshot_frame` (or a Gold snapshot)."""
    kwargs: dict[str, Any] = {"card_id": row["card_id"], "as_of": as_of}
    for name in features.CARD_AGGREGATE_COLUMNS:
        value = row[name]
        if name == "card_last_event_time_ms":
            kwargs["card_last_event_time"] = None if pd.isna(value) else features.from_epoch_ms(int(value))
        elif name.startswith("card_count"):
            kwargs[name] = int(value)
        else:
            kwargs[name] = None if pd.isna(value) else float(value)
    for name in ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries"):
        kwargs[name] = tuple(row[name])
    return features.CardFeatures(**kwargs)


def terminal_features_from_row(row: dict[str, Any], as_of: datetime) -> features.TerminalFeatures:
    kwargs: dict[str, Any] = {name: int(row[name]) for name in features.TERMINAL_AGGREGATE_COLUMNS}
    return features.TerminalFeatures(terminal_id=row["terminal_id"], as_of=as_of, **kwargs)
