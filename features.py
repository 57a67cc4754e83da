"""The model's feature vector: the one definition, shared by training and serving.

Pure: no I/O, no clock, no Spark. A vector is made of the incoming **transaction**
(:class:`Transaction`), the card's aggregates (:class:`CardFeatures`) and the terminal's
(:class:`TerminalFeatures`) as of the transaction time, computed from transactions strictly before
it (a terminal's fraud counts only once its label had arrived). dbt Gold and ``ml.pit`` compute the
same aggregates; the formulas that turn them into the vector live only in :func:`compute_features`,
which :func:`build_vector` (one transaction, serving) wraps. Window semantics, missing inputs and
defaults: docs/design/features.md; each feature's meaning: :data:`FEATURE_DOCS`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, Self

import numpy as np
import numpy.typing as npt

FEATURE_SET_VERSION: Final = "fs-1.0.0"

MS_PER_SECOND: Final = 1_000
MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000

#: Card aggregation windows: suffix -> length in ms.
CARD_WINDOWS: Final = {"1h": MS_PER_HOUR, "24h": MS_PER_DAY, "7d": 7 * MS_PER_DAY, "30d": 30 * MS_PER_DAY}
#: Terminal risk windows: suffix -> length in ms.
TERMINAL_WINDOWS: Final = {"7d": 7 * MS_PER_DAY, "30d": 30 * MS_PER_DAY, "90d": 90 * MS_PER_DAY}
#: Window of the card's recent sets, z-score statistics and location centroid.
RECENT_WINDOW_MS: Final = CARD_WINDOWS["30d"]

#: Value of a feature whose input is missing (no geo, no MCC, no device, no previous transaction...).
MISSING: Final = -1.0
#: Floor (currency units) on the standard deviation in the amount z-score.
ZSCORE_MIN_STD: Final = 1.0
#: Floor (hours) on the elapsed time in the speed from the previous transaction.
SPEED_MIN_HOURS: Final = 1.0 / 60.0
#: Night = UTC hour in [0, NIGHT_END_HOUR).
NIGHT_END_HOUR: Final = 6
EARTH_RADIUS_KM: Final = 6371.0
#: Merchant category codes commonly treated as high risk by card schemes and acquirers.
HIGH_RISK_MCCS: Final = frozenset({"4829", "5732", "5816", "5944", "5967", "6051", "6211", "7995"})

ArrayF = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- inputs


def to_epoch_ms(value: datetime | int | float | str) -> int:
    """UTC epoch milliseconds of a datetime (naive = UTC), ISO-8601 string or epoch-ms number."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return delta.days * MS_PER_DAY + delta.seconds * MS_PER_SECOND + delta.microseconds // 1000
    return int(value)


def from_epoch_ms(ms: int) -> datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return from_epoch_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Transaction:
    """The incoming transaction (the Kafka event / the ``POST /predict`` body)."""

    transaction_id: str
    event_time: datetime
    card_id: str
    terminal_id: str
    amount: float
    channel: str | None = None
    mcc: str | None = None
    device_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    country: str | None = None
    currency: str | None = None
    merchant_name: str | None = None
    customer_id: str | None = None


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return _FIELD_NAMES[cls]


class _Snapshot:
    """The JSON round trip of a snapshot (the online store's values): times as ISO-8601 UTC strings,
    sets as lists; unknown keys are ignored, absent ones take the field default."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)  # type: ignore[call-overload]
        for name, value in out.items():
            if isinstance(value, datetime):
                out[name] = _iso(to_epoch_ms(value))
            elif isinstance(value, tuple):
                out[name] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        known = _field_names(cls)
        kwargs = {k: v for k, v in data.items() if k in known}
        for name in ("as_of", "card_last_event_time"):
            if kwargs.get(name) is not None:
                kwargs[name] = from_epoch_ms(to_epoch_ms(kwargs[name]))
        for name in ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name] or ())
        return cls(**kwargs)


@dataclass(slots=True)
class CardFeatures(_Snapshot):
    """Per-card aggregates as of ``as_of`` over the card's transactions with ``event_time < as_of``:
    counts and sums per window, 30-day sums of squares and coordinates, the previous transaction,
    and the 30-day sets of terminals, devices and countries (docs/design/features.md)."""

    card_id: str
    as_of: datetime
    card_count_txn_1h: int = 0
    card_sum_amount_1h: float = 0.0
    card_count_txn_24h: int = 0
    card_sum_amount_24h: float = 0.0
    card_count_txn_7d: int = 0
    card_sum_amount_7d: float = 0.0
    card_count_txn_30d: int = 0
    card_sum_amount_30d: float = 0.0
    card_sum_amount_sq_30d: float = 0.0
    card_count_geo_30d: int = 0
    card_sum_latitude_30d: float = 0.0
    card_sum_longitude_30d: float = 0.0
    card_last_event_time: datetime | None = None
    card_last_latitude: float | None = None
    card_last_longitude: float | None = None
    card_recent_terminal_ids: tuple[str, ...] = field(default_factory=tuple)
    card_recent_device_ids: tuple[str, ...] = field(default_factory=tuple)
    card_recent_countries: tuple[str, ...] = field(default_factory=tuple)


@dataclass(slots=True)
class TerminalFeatures(_Snapshot):
    """Per-terminal aggregates as of ``as_of``: transactions per window, and those a fraud label had
    already marked (``max(label_time, event_time) < as_of``)."""

    terminal_id: str
    as_of: datetime
    terminal_count_txn_7d: int = 0
    terminal_count_fraud_7d: int = 0
    terminal_count_txn_30d: int = 0
    terminal_count_fraud_30d: int = 0
    terminal_count_txn_90d: int = 0
    terminal_count_fraud_90d: int = 0


class CardEvent(NamedTuple):
    """One transaction of a card as the online state keeps it: the inputs of the card aggregates
    (amount in integer cents, as :mod:`ml.pit` sums it, so windowed sums are exact). A plain
    sequence in this field order (the state's JSON array) is read the same way."""

    transaction_id: str
    event_ms: int
    cents: int
    terminal_id: str
    latitude: float | None = None
    longitude: float | None = None
    device_id: str | None = None
    country: str | None = None


def amount_cents(amount: float) -> int:
    """Integer cents of an amount, rounded half to even (numpy's rint, what ml.pit uses)."""
    return round(float(amount) * 100.0)


_CARD_WINDOW_ITEMS: Final = tuple(CARD_WINDOWS.items())


def card_features_from_events(
    card_id: str, as_of: datetime | int, events: Iterable[Sequence[Any]], *, in_time_order: bool = False
) -> CardFeatures:
    """CardFeatures of a card as of ``as_of`` from its events (:class:`CardEvent` or sequences in
    its field order, any order; those at or after ``as_of`` are ignored): the definition
    :mod:`ml.pit` computes vectorised, for one card. Serving runs it per request, hence the
    builtins (sorted, bisect, sum) rather than a loop per window; ``in_time_order`` says the events
    come sorted by time already (the state's reads), which saves the sort."""
    t = to_epoch_ms(as_of)
    ev = [e for e in events if e[1] < t]
    if not in_time_order:
        ev.sort(key=_event_ms)
    ms = [e[1] for e in ev]
    cents = [e[2] for e in ev]
    snap = CardFeatures(card_id=card_id, as_of=from_epoch_ms(t))
    for w, length in _CARD_WINDOW_ITEMS:
        first = bisect_left(ms, t - length)
        setattr(snap, f"card_count_txn_{w}", len(ms) - first)
        setattr(snap, f"card_sum_amount_{w}", sum(cents[first:]) / 100.0)
    first = bisect_left(ms, t - RECENT_WINDOW_MS)
    recent = ev[first:]
    snap.card_sum_amount_sq_30d = sum(c * c for c in cents[first:]) / 10_000.0
    geo = [e for e in recent if e[4] is not None and e[5] is not None]
    snap.card_count_geo_30d = len(geo)
    snap.card_sum_latitude_30d = math.fsum(e[4] for e in geo)
    snap.card_sum_longitude_30d = math.fsum(e[5] for e in geo)
    if ev:
        last = max((e for e in ev if e[1] == ms[-1]), key=_event_id)  # ties: the greatest id
        snap.card_last_event_time = from_epoch_ms(last[1])
        snap.card_last_latitude = last[4]
        snap.card_last_longitude = last[5]
    snap.card_recent_terminal_ids = tuple(sorted({e[3] for e in recent}))
    snap.card_recent_device_ids = tuple(sorted({e[6] for e in recent if e[6] is not None}))
    snap.card_recent_countries = tuple(sorted({e[7] for e in recent if e[7] is not None}))
    return snap


def _event_ms(e: Sequence[Any]) -> int:
    return int(e[1])


def _event_id(e: Sequence[Any]) -> str:
    return str(e[0])


#: Numeric card aggregate columns (the training frame and Gold carry exactly these): the
#: CardFeatures fields between the id and the sets, the previous event's time as epoch ms.
CARD_AGGREGATE_COLUMNS: Final[tuple[str, ...]] = tuple(
    f"{f.name}_ms" if f.name == "card_last_event_time" else f.name
    for f in fields(CardFeatures)[2:]
    if not f.name.startswith("card_recent_")
)
#: Per-transaction membership flags; the snapshot holds the sets instead.
CARD_FLAG_COLUMNS: Final = tuple(f"card_{entity}_seen_30d" for entity in ("terminal", "device", "country"))
TERMINAL_AGGREGATE_COLUMNS: Final[tuple[str, ...]] = tuple(f.name for f in fields(TerminalFeatures)[2:])
#: Transaction columns the formulas read (event_time as epoch ms).
TRANSACTION_COLUMNS: Final[tuple[str, ...]] = (
    "event_time_ms",
    "amount",
    "channel",
    "mcc",
    "device_id",
    "latitude",
    "longitude",
    "country",
)
INPUT_COLUMNS: Final[tuple[str, ...]] = (
    TRANSACTION_COLUMNS + CARD_AGGREGATE_COLUMNS + CARD_FLAG_COLUMNS + TERMINAL_AGGREGATE_COLUMNS
)


# --------------------------------------------------------------------------- features

#: name -> (group, meaning and value when its input is missing)
FEATURE_DOCS: Final[dict[str, tuple[str, str]]] = {
    "amount": ("transaction", "amount in major units, as given"),
    "log_amount": ("transaction", "ln(1 + amount)"),
    "hour_of_day": ("transaction", "UTC hour 0..23"),
    "is_weekend": ("transaction", "1 on Saturday/Sunday (UTC)"),
    "is_night": ("transaction", "1 when UTC hour < 6"),
    "is_online": ("transaction", "1 online, 0 card present, -1 channel unknown"),
    "mcc_code": ("transaction", "MCC as a number (tree models split ranges), -1 unknown"),
    "is_high_risk_mcc": ("transaction", "1 when MCC in HIGH_RISK_MCCS, 0 otherwise, -1 unknown"),
    "card_count_txn_1h": ("card", "card transactions in [t-1h, t)"),
    "card_count_txn_24h": ("card", "card transactions in [t-24h, t)"),
    "card_count_txn_7d": ("card", "card transactions in [t-7d, t)"),
    "card_count_txn_30d": ("card", "card transactions in [t-30d, t)"),
    "card_avg_amount_1h": ("card", "mean amount over [t-1h, t); 0 without transactions"),
    "card_avg_amount_24h": ("card", "mean amount over [t-24h, t); 0 without transactions"),
    "card_avg_amount_7d": ("card", "mean amount over [t-7d, t); 0 without transactions"),
    "card_avg_amount_30d": ("card", "mean amount over [t-30d, t); 0 without transactions"),
    "card_sum_amount_1h": ("card", "amount sum over [t-1h, t)"),
    "card_sum_amount_24h": ("card", "amount sum over [t-24h, t)"),
    "amount_zscore_30d": ("card", "(amount - mean30d) / max(std30d, ZSCORE_MIN_STD); 0 with < 2 txns"),
    "log_amount_ratio_30d": ("card", "ln(1+amount) - ln(1+mean30d); 0 without transactions"),
    "log_seconds_since_prev": ("card", "ln(1 + seconds since the previous transaction); -1 if none"),
    "distance_from_prev_km": ("card", "haversine km from the previous transaction; -1 if either has no geo"),
    "speed_from_prev_kmh": ("card", "distance_from_prev_km / max(hours elapsed, 1 min); -1 if unknown"),
    "distance_from_centroid_30d_km": ("card", "km from the card's 30d mean coordinates; -1 if none/no geo"),
    "is_new_terminal": ("card", "1 when the card did not use this terminal in [t-30d, t)"),
    "is_new_device": ("card", "1 when the device was not used by the card in [t-30d, t); -1 no device"),
    "is_new_country": (
        "card",
        "1 when the card had no transaction in this country in [t-30d, t); -1 unknown",
    ),
    "terminal_count_txn_7d": ("terminal", "terminal transactions in [t-7d, t)"),
    "terminal_count_txn_30d": ("terminal", "terminal transactions in [t-30d, t)"),
    "terminal_fraud_share_7d": ("terminal", "known frauds / transactions over [t-7d, t); 0 if none"),
    "terminal_fraud_share_30d": ("terminal", "known frauds / transactions over [t-30d, t); 0 if none"),
    "terminal_fraud_share_90d": ("terminal", "known frauds / transactions over [t-90d, t); 0 if none"),
}
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(FEATURE_DOCS)
FEATURE_GROUPS: Final[dict[str, str]] = {name: group for name, (group, _) in FEATURE_DOCS.items()}


def _f(values: Any) -> ArrayF:
    return np.asarray(values, dtype=np.float64)


def _present(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Non-null, non-empty entries of an object/str array."""
    arr = np.asarray(values, dtype=object)
    return np.array([v is not None and v == v and v != "" for v in arr], dtype=bool)


def encode_channel(channel: npt.NDArray[Any]) -> ArrayF:
    arr = np.asarray(channel, dtype=object)
    return np.where(arr == "online", 1.0, np.where(arr == "card_present", 0.0, MISSING))


def encode_mcc(mcc: npt.NDArray[Any]) -> tuple[ArrayF, ArrayF]:
    """(mcc_code, is_high_risk_mcc); both -1 where the MCC is missing or not a number."""
    arr = np.asarray(mcc, dtype=object)
    keys = ["" if (v is None or v != v) else str(v).strip() for v in arr]
    if len(keys) <= 16:  # one transaction (serving): no need to deduplicate
        uniques, inverse = keys, np.arange(len(keys))
    else:
        uniques_arr, inverse = np.unique(np.array(keys, dtype=str), return_inverse=True)
        uniques = [str(u) for u in uniques_arr]
    code = np.array([float(u) if u.isdigit() else MISSING for u in uniques], dtype=np.float64)
    risk = np.array(
        [(1.0 if u in HIGH_RISK_MCCS else 0.0) if u.isdigit() else MISSING for u in uniques],
        dtype=np.float64,
    )
    return code[inverse], risk[inverse]


def haversine_km(lat1: ArrayF, lon1: ArrayF, lat2: ArrayF, lon2: ArrayF) -> ArrayF:
    """Great-circle distance in km (NaN where any coordinate is NaN)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return _f(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _safe_div(num: ArrayF, den: ArrayF, default: float) -> ArrayF:
    out = np.full(np.shape(num), default, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def compute_features(columns: Mapping[str, Any]) -> ArrayF:
    """Feature matrix (n x len(FEATURE_NAMES)) from columns named as in :data:`INPUT_COLUMNS`.

    Numeric columns take NaN for null; string columns (channel, mcc, device_id, country) are object
    arrays with None for null. This is the single definition of every feature formula.
    """
    event_ms = np.asarray(columns["event_time_ms"], dtype=np.int64)
    amount = _f(columns["amount"])
    lat, lon = _f(columns["latitude"]), _f(columns["longitude"])
    has_device = _present(columns["device_id"])
    has_country = _present(columns["country"])
    c = {name: _f(columns[name]) for name in CARD_AGGREGATE_COLUMNS + TERMINAL_AGGREGATE_COLUMNS}
    flag = {name: _f(columns[name]) for name in CARD_FLAG_COLUMNS}

    out: dict[str, ArrayF] = {}
    # transaction
    out["amount"] = amount
    out["log_amount"] = np.log1p(np.maximum(amount, 0.0))
    hour = (event_ms // MS_PER_HOUR) % 24
    out["hour_of_day"] = _f(hour)
    weekday = (event_ms // MS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    out["is_weekend"] = _f(weekday >= 5)
    out["is_night"] = _f(hour < NIGHT_END_HOUR)
    out["is_online"] = encode_channel(columns["channel"])
    out["mcc_code"], out["is_high_risk_mcc"] = encode_mcc(columns["mcc"])
    # card windows
    for w in CARD_WINDOWS:
        out[f"card_count_txn_{w}"] = c[f"card_count_txn_{w}"]
    for w in CARD_WINDOWS:
        out[f"card_avg_amount_{w}"] = _safe_div(c[f"card_sum_amount_{w}"], c[f"card_count_txn_{w}"], 0.0)
    out["card_sum_amount_1h"] = c["card_sum_amount_1h"]
    out["card_sum_amount_24h"] = c["card_sum_amount_24h"]
    n30 = c["card_count_txn_30d"]
    mean30 = out["card_avg_amount_30d"]
    var30 = np.maximum(_safe_div(c["card_sum_amount_sq_30d"], n30, 0.0) - mean30**2, 0.0)
    std30 = np.maximum(np.sqrt(var30), ZSCORE_MIN_STD)
    out["amount_zscore_30d"] = np.where(n30 >= 2, (amount - mean30) / std30, 0.0)
    out["log_amount_ratio_30d"] = np.where(n30 >= 1, out["log_amount"] - np.log1p(mean30), 0.0)
    # previous transaction
    last_ms = c["card_last_event_time_ms"]
    has_prev = ~np.isnan(last_ms)
    elapsed_ms = np.where(has_prev, event_ms - np.nan_to_num(last_ms), 0.0)
    out["log_seconds_since_prev"] = np.where(has_prev, np.log1p(np.maximum(elapsed_ms, 0.0) / 1000), MISSING)
    dist_prev = haversine_km(c["card_last_latitude"], c["card_last_longitude"], lat, lon)
    known_dist = has_prev & ~np.isnan(dist_prev)
    out["distance_from_prev_km"] = np.where(known_dist, dist_prev, MISSING)
    hours = np.maximum(elapsed_ms / MS_PER_HOUR, SPEED_MIN_HOURS)
    out["speed_from_prev_kmh"] = np.where(known_dist, np.nan_to_num(dist_prev) / hours, MISSING)
    n_geo = c["card_count_geo_30d"]
    clat = _safe_div(c["card_sum_latitude_30d"], n_geo, np.nan)
    clon = _safe_div(c["card_sum_longitude_30d"], n_geo, np.nan)
    dist_centroid = haversine_km(clat, clon, lat, lon)
    out["distance_from_centroid_30d_km"] = np.where(np.isnan(dist_centroid), MISSING, dist_centroid)
    # novelty
    out["is_new_terminal"] = np.where(flag["card_terminal_seen_30d"] > 0, 0.0, 1.0)
    out["is_new_device"] = np.where(has_device, np.where(flag["card_device_seen_30d"] > 0, 0.0, 1.0), MISSING)
    out["is_new_country"] = np.where(
        has_country, np.where(flag["card_country_seen_30d"] > 0, 0.0, 1.0), MISSING
    )
    # terminal risk
    out["terminal_count_txn_7d"] = c["terminal_count_txn_7d"]
    out["terminal_count_txn_30d"] = c["terminal_count_txn_30d"]
    for w in TERMINAL_WINDOWS:
        out[f"terminal_fraud_share_{w}"] = _safe_div(
            c[f"terminal_count_fraud_{w}"], c[f"terminal_count_txn_{w}"], 0.0
        )
    matrix = np.empty((len(amount), len(FEATURE_NAMES)), dtype=np.float64)
    for i, name in enumerate(FEATURE_NAMES):
        matrix[:, i] = out[name]  # broadcasts constants
    return matrix


def _opt(value: float | None) -> float:
    return math.nan if value is None else float(value)


def scalar_inputs(
    txn: Transaction, card: CardFeatures | None, terminal: TerminalFeatures | None
) -> dict[str, npt.NDArray[Any]]:
    """One-row input columns for :func:`compute_features` from a transaction and its snapshots.

    A missing snapshot becomes an empty one (its features are then replaced by defaults in
    :func:`build_vector`).
    """
    card = card if card is not None else CardFeatures(txn.card_id, txn.event_time)
    terminal = terminal if terminal is not None else TerminalFeatures(txn.terminal_id, txn.event_time)
    last = card.card_last_event_time
    values: dict[str, Any] = {
        "event_time_ms": to_epoch_ms(txn.event_time),
        "amount": float(txn.amount),
        **{name: getattr(txn, name) for name in ("channel", "mcc", "device_id", "country")},
        "latitude": _opt(txn.latitude),
        "longitude": _opt(txn.longitude),
        **{name: _opt(getattr(card, name, None)) for name in CARD_AGGREGATE_COLUMNS},
        "card_last_event_time_ms": math.nan if last is None else float(to_epoch_ms(last)),
        "card_terminal_seen_30d": float(txn.terminal_id in card.card_recent_terminal_ids),
        "card_device_seen_30d": float(
            txn.device_id is not None and txn.device_id in card.card_recent_device_ids
        ),
        "card_country_seen_30d": float(txn.country is not None and txn.country in card.card_recent_countries),
        **{name: float(getattr(terminal, name)) for name in TERMINAL_AGGREGATE_COLUMNS},
    }
    return {
        name: np.array([value], dtype=object if isinstance(value, str) or value is None else None)
        for name, value in values.items()
    }


def build_vector(
    txn: Transaction,
    card: CardFeatures | None,
    terminal: TerminalFeatures | None,
    defaults: Mapping[str, float] | None = None,
) -> list[float]:
    """The feature vector of one transaction, in :data:`FEATURE_NAMES` order.

    ``card`` / ``terminal`` are the snapshots as of ``txn.event_time`` (an empty snapshot for a card
    or terminal with no history). ``None`` means "unavailable": every feature of that group is then
    taken from ``defaults`` (learnt at training time), falling back to :data:`STATIC_DEFAULTS`.
    """
    row = compute_features(scalar_inputs(txn, card, terminal))[0]
    vector = [float(v) for v in row]
    missing_groups = {g for g, snap in (("card", card), ("terminal", terminal)) if snap is None}
    if missing_groups:
        fallback = {**STATIC_DEFAULTS, **(defaults or {})}
        for i, name in enumerate(FEATURE_NAMES):
            if FEATURE_GROUPS[name] in missing_groups:
                vector[i] = float(fallback[name])
    return vector


def vector_dict(vector: Sequence[float]) -> dict[str, float]:
    """Name -> value view of a vector."""
    return dict(zip(FEATURE_NAMES, vector, strict=True))


def _no_history() -> dict[str, float]:
    """The vector of a transaction without optional inputs, on a card and terminal without history."""
    empty = Transaction("", from_epoch_ms(0), "", "", 0.0)
    return vector_dict(compute_features(scalar_inputs(empty, None, None))[0].tolist())


#: Defaults of a feature group that cannot be computed, when no learnt defaults are supplied: its
#: values without history (is_new_terminal = 1, MISSING where an input is missing, else 0).
STATIC_DEFAULTS: Final = {k: v for k, v in _no_history().items() if FEATURE_GROUPS[k] != "transaction"}
