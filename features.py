"""The model's feature vector: the one definition, shared by training and serving.

Pure: no I/O, no clock, no Spark. Everything here is a function of its arguments.

Three kinds of input make a feature vector:

* the incoming **transaction** (:class:`Transaction`, or the same fields as columns);
* the card's **aggregates** as of the transaction time (:class:`CardFeatures`), computed from the
  card's transactions *strictly before* that time;
* the terminal's **aggregates** as of the transaction time (:class:`TerminalFeatures`), computed
  from the terminal's transactions strictly before that time, counting a fraud only when its label
  had already arrived.

The aggregates are plain counts, sums, sums of squares, last values and small sets, so the same
numbers can be computed by SQL window functions (dbt Gold) or by the point-in-time reference
builder in ``ml.pit``; the formulas that turn them into the vector live only here, in
:func:`compute_features`. :func:`build_vector` (one transaction, serving) and
:func:`compute_features` (columns of arrays, training) are the same code path: the scalar call wraps
its inputs in one-element arrays.

Window semantics (``W`` is a window length, ``t`` the transaction time, all times UTC, ms precision):

* card window ``W``: the card's transactions ``h`` with ``t - W <= h.event_time < t``
  (lower end inclusive, upper end exclusive; a transaction never sees itself nor another
  transaction of the same card at exactly the same millisecond);
* "previous transaction": the card's latest transaction with ``event_time < t``; ties on
  ``event_time`` are broken by the greatest ``transaction_id`` (string order);
* recent sets (terminals, devices, countries): distinct non-null values over the 30-day card window;
* terminal window ``W``: the terminal's transactions ``h`` with ``t - W <= h.event_time < t``;
  a fraud among them counts in ``terminal_count_fraud_W`` only when it was already known at ``t``:
  ``max(h.label_time, h.event_time) < t``. A label that has not arrived never counts.

Missing optional inputs (no geo, MCC, device, country, channel) map to :data:`MISSING` (-1.0) in
the features that need them; aggregates of a card or terminal without history are zeros and give
the "no history" values documented in :data:`FEATURE_DOCS`. When the aggregates themselves are
unavailable (feature store down), :func:`build_vector` takes ``card=None`` / ``terminal=None`` and
fills that feature group from ``defaults`` — the per-feature medians learnt at training time and
shipped with the model — or from :data:`STATIC_DEFAULTS` when no learnt defaults are given.

``merchant_name`` is accepted and ignored: free text whose casing must never move the score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

FEATURE_SET_VERSION: Final = "fs-1.0.0"

MS_PER_SECOND: Final = 1_000
MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000

#: Card aggregation windows: suffix -> length in ms.
CARD_WINDOWS: Final[dict[str, int]] = {
    "1h": MS_PER_HOUR,
    "24h": MS_PER_DAY,
    "7d": 7 * MS_PER_DAY,
    "30d": 30 * MS_PER_DAY,
}
#: Terminal risk windows: suffix -> length in ms.
TERMINAL_WINDOWS: Final[dict[str, int]] = {
    "7d": 7 * MS_PER_DAY,
    "30d": 30 * MS_PER_DAY,
    "90d": 90 * MS_PER_DAY,
}
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
CHANNELS: Final = ("card_present", "online")

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


@dataclass(slots=True)
class CardFeatures:
    """Per-card aggregates as of ``as_of``, over the card's transactions with ``event_time < as_of``.

    ``card_count_txn_W`` / ``card_sum_amount_W``: number and amount sum of the card's transactions in
    ``[as_of - W, as_of)`` for W in 1h, 24h, 7d, 30d. ``card_sum_amount_sq_30d``: sum of squared
    amounts over 30d. ``card_count_geo_30d`` / ``card_sum_latitude_30d`` / ``card_sum_longitude_30d``:
    count and coordinate sums of the 30d transactions that have both coordinates.
    ``card_last_*``: the previous transaction (latest before ``as_of``; ties by greatest
    transaction_id), whatever its age; its coordinates may be null.
    ``card_recent_*``: sorted distinct non-null terminal ids / device ids / countries over 30d.
    """

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (times as ISO-8601 UTC strings, sets as lists)."""
        out = asdict(self)
        out["as_of"] = _iso(to_epoch_ms(self.as_of))
        last = self.card_last_event_time
        out["card_last_event_time"] = None if last is None else _iso(to_epoch_ms(last))
        for name in ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CardFeatures:
        """Inverse of :meth:`to_dict`; unknown keys are ignored, absent ones take the field default."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["as_of"] = from_epoch_ms(to_epoch_ms(kwargs["as_of"]))
        last = kwargs.get("card_last_event_time")
        kwargs["card_last_event_time"] = None if last is None else from_epoch_ms(to_epoch_ms(last))
        for name in ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name] or ())
        return cls(**kwargs)


@dataclass(slots=True)
class TerminalFeatures:
    """Per-terminal aggregates as of ``as_of``.

    ``terminal_count_txn_W``: the terminal's transactions in ``[as_of - W, as_of)``;
    ``terminal_count_fraud_W``: those of them with ``is_fraud = 1`` whose label was known before
    ``as_of`` (``max(label_time, event_time) < as_of``), for W in 7d, 30d, 90d.
    """

    terminal_id: str
    as_of: datetime
    terminal_count_txn_7d: int = 0
    terminal_count_fraud_7d: int = 0
    terminal_count_txn_30d: int = 0
    terminal_count_fraud_30d: int = 0
    terminal_count_txn_90d: int = 0
    terminal_count_fraud_90d: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of"] = _iso(to_epoch_ms(self.as_of))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TerminalFeatures:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["as_of"] = from_epoch_ms(to_epoch_ms(kwargs["as_of"]))
        return cls(**kwargs)


#: Numeric card aggregate columns (the per-transaction training frame and Gold carry exactly these).
CARD_AGGREGATE_COLUMNS: Final[tuple[str, ...]] = (
    "card_count_txn_1h",
    "card_sum_amount_1h",
    "card_count_txn_24h",
    "card_sum_amount_24h",
    "card_count_txn_7d",
    "card_sum_amount_7d",
    "card_count_txn_30d",
    "card_sum_amount_30d",
    "card_sum_amount_sq_30d",
    "card_count_geo_30d",
    "card_sum_latitude_30d",
    "card_sum_longitude_30d",
    "card_last_event_time_ms",
    "card_last_latitude",
    "card_last_longitude",
)
#: Per-transaction membership flags; the snapshot holds the sets instead.
CARD_FLAG_COLUMNS: Final[tuple[str, ...]] = (
    "card_terminal_seen_30d",
    "card_device_seen_30d",
    "card_country_seen_30d",
)
TERMINAL_AGGREGATE_COLUMNS: Final[tuple[str, ...]] = (
    "terminal_count_txn_7d",
    "terminal_count_fraud_7d",
    "terminal_count_txn_30d",
    "terminal_count_fraud_30d",
    "terminal_count_txn_90d",
    "terminal_count_fraud_90d",
)
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
    "amount_zscore_30d": (
        "card",
        "(amount - mean30d) / max(std30d, ZSCORE_MIN_STD), population std; 0 with < 2 transactions",
    ),
    "log_amount_ratio_30d": ("card", "ln(1+amount) - ln(1+mean30d); 0 without transactions"),
    "log_seconds_since_prev": ("card", "ln(1 + seconds since the previous transaction); -1 if none"),
    "distance_from_prev_km": ("card", "haversine km from the previous transaction; -1 if either has no geo"),
    "speed_from_prev_kmh": (
        "card",
        "distance_from_prev_km / max(hours elapsed, 1 minute); -1 if distance unknown",
    ),
    "distance_from_centroid_30d_km": (
        "card",
        "km from the mean coordinates of the card's 30d geo transactions; -1 if none or no geo",
    ),
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

#: Features whose "no history / no input" value is MISSING rather than 0.
_MISSING_WHEN_EMPTY: Final = frozenset(
    {
        "log_seconds_since_prev",
        "distance_from_prev_km",
        "speed_from_prev_kmh",
        "distance_from_centroid_30d_km",
        "is_new_device",
        "is_new_country",
    }
)
#: Defaults used when a feature group cannot be computed and no learnt defaults are supplied:
#: the values of a card / terminal without any history (is_new_terminal = 1, MISSING for the
#: features above, 0 for counts, sums, averages, z-score, ratios and fraud shares).
STATIC_DEFAULTS: Final[dict[str, float]] = {
    name: MISSING if name in _MISSING_WHEN_EMPTY else 1.0 if name == "is_new_terminal" else 0.0
    for name, group in FEATURE_GROUPS.items()
    if group != "transaction"
}


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
    as_of = txn.event_time
    card = card if card is not None else CardFeatures(card_id=txn.card_id, as_of=as_of)
    terminal = terminal if terminal is not None else TerminalFeatures(txn.terminal_id, as_of=as_of)
    values: dict[str, Any] = {
        "event_time_ms": to_epoch_ms(txn.event_time),
        "amount": float(txn.amount),
        "channel": txn.channel,
        "mcc": txn.mcc,
        "device_id": txn.device_id,
        "latitude": _opt(txn.latitude),
        "longitude": _opt(txn.longitude),
        "country": txn.country,
    }
    for name in CARD_AGGREGATE_COLUMNS:
        if name == "card_last_event_time_ms":
            last = card.card_last_event_time
            values[name] = math.nan if last is None else float(to_epoch_ms(last))
        else:
            values[name] = _opt(getattr(card, name))
    values["card_terminal_seen_30d"] = float(txn.terminal_id in card.card_recent_terminal_ids)
    values["card_device_seen_30d"] = float(
        txn.device_id is not None and txn.device_id in card.card_recent_device_ids
    )
    values["card_country_seen_30d"] = float(
        txn.country is not None and txn.country in card.card_recent_countries
    )
    for name in TERMINAL_AGGREGATE_COLUMNS:
        values[name] = float(getattr(terminal, name))
    out: dict[str, npt.NDArray[Any]] = {}
    for name, value in values.items():
        dtype: Any = object if isinstance(value, str) or value is None else None
        out[name] = np.array([value], dtype=dtype)
    return out


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
