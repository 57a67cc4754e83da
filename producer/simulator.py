"""Deterministic card-transaction simulator with labelled fraud scenarios.

Everything derives from ``SimulatorConfig.seed``: the same config gives byte-identical output.

World: cardholders live around European cities (home location, spending profile: log-normal
amounts with their own mean/spread, a daily transaction rate, active hours, an online share),
hold one or two cards and one or two devices, use a small set of usual terminals near home and a
few favourite online merchants, occasionally travel (legitimately) to another city, and
sometimes replace their phone (a legitimate new device). Terminals have a location, a merchant
name, an MCC, a channel (card-present terminal or online merchant), a country and its currency.

Fraud scenarios (``fraud_scenario``), each with its signature:

* ``compromised_terminal`` — skimming: every card-present transaction at a terminal is
  fraudulent for 7–21 days; the only signal is the terminal's fraud history once labels arrive.
* ``compromised_card`` — for 2–10 days a stolen card is used at merchants it never used (any city,
  often online with an unknown device), with amounts 2–6× the cardholder's usual.
* ``card_testing`` — 5–15 small amounts (0.50–3.00) within minutes at one online merchant, then
  one large amount (250–2500) minutes later, from a fraudster device.
* ``impossible_travel`` — a card-present transaction in a far city 5–120 minutes after a genuine
  card-present transaction at home (speed ≫ 900 km/h).
* ``account_takeover`` — 1–3 online transactions within an hour from a device the cardholder
  never used, for a high amount.
* ``outlier_amount`` — one transaction at the cardholder's usual merchant (or own device online)
  for an amount far in the tail of the cardholder's history (z-score ≫ 4).

Each fraud gets a label-arrival delay (chargeback-like: 0.5 day + log-normal, median ≈ 6.5 days,
95th percentile ≈ 2.5 weeks, capped at 60 days): ``label_time = event_time + delay``. Genuine
transactions have ``label_time`` null (they are never labelled; the labels topic only carries
frauds).

Two modes: :func:`simulate` builds the whole dataset as an Arrow table with vectorised numpy
(and :func:`write_parquet` writes it), :func:`iter_events` yields the same transactions and their
label events one by one in time order (for the Kafka producer).

CLI: ``python -m producer simulate --days 182 --seed 42 --out var/data/transactions.parquet``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from contracts.events import LABEL_COLUMNS, TRANSACTION_COLUMNS

log = logging.getLogger(__name__)

MS_PER_MINUTE: Final = 60_000
MS_PER_HOUR: Final = 3_600_000
MS_PER_DAY: Final = 86_400_000

SCENARIOS: Final[tuple[str, ...]] = (
    "compromised_terminal",
    "compromised_card",
    "card_testing",
    "impossible_travel",
    "account_takeover",
    "outlier_amount",
)
#: Share of the fraud count given to each scenario (normalised).
DEFAULT_SCENARIO_WEIGHTS: Final[dict[str, float]] = {
    "compromised_terminal": 0.25,
    "compromised_card": 0.25,
    "card_testing": 0.20,
    "impossible_travel": 0.10,
    "account_takeover": 0.10,
    "outlier_amount": 0.10,
}

_TS = pa.timestamp("ms", tz="UTC")
SCHEMA: Final = pa.schema(
    [
        pa.field("transaction_id", pa.string(), nullable=False),
        pa.field("event_time", _TS, nullable=False),
        pa.field("card_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("merchant_name", pa.string(), nullable=False),
        pa.field("amount", pa.float64(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("mcc", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("device_id", pa.string()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("country", pa.string()),
        pa.field("is_fraud", pa.int8(), nullable=False),
        pa.field("fraud_scenario", pa.string()),
        pa.field("label_time", _TS),
    ]
)

# (name, lat, lon, country, currency, weight as a home city; 0 = only visited)
CITIES: Final[tuple[tuple[str, float, float, str, str, float], ...]] = (
    ("Paris", 48.8566, 2.3522, "FR", "EUR", 10),
    ("Lyon", 45.7640, 4.8357, "FR", "EUR", 4),
    ("Marseille", 43.2965, 5.3698, "FR", "EUR", 3),
    ("Berlin", 52.5200, 13.4050, "DE", "EUR", 8),
    ("Munich", 48.1351, 11.5820, "DE", "EUR", 5),
    ("Hamburg", 53.5511, 9.9937, "DE", "EUR", 4),
    ("Madrid", 40.4168, -3.7038, "ES", "EUR", 6),
    ("Barcelona", 41.3874, 2.1686, "ES", "EUR", 5),
    ("Rome", 41.9028, 12.4964, "IT", "EUR", 5),
    ("Milan", 45.4642, 9.1900, "IT", "EUR", 5),
    ("Amsterdam", 52.3676, 4.9041, "NL", "EUR", 4),
    ("Brussels", 50.8503, 4.3517, "BE", "EUR", 3),
    ("Lisbon", 38.7223, -9.1393, "PT", "EUR", 3),
    ("Dublin", 53.3498, -6.2603, "IE", "EUR", 2),
    ("Vienna", 48.2082, 16.3738, "AT", "EUR", 3),
    ("London", 51.5074, -0.1278, "GB", "GBP", 9),
    ("Manchester", 53.4808, -2.2426, "GB", "GBP", 3),
    ("Zurich", 47.3769, 8.5417, "CH", "CHF", 2),
    ("New York", 40.7128, -74.0060, "US", "USD", 0),
    ("Toronto", 43.6532, -79.3832, "CA", "CAD", 0),
    ("Sao Paulo", -23.5505, -46.6333, "BR", "BRL", 0),
    ("Dubai", 25.2048, 55.2708, "AE", "AED", 0),
    ("Singapore", 1.3521, 103.8198, "SG", "SGD", 0),
    ("Sydney", -33.8688, 151.2093, "AU", "AUD", 0),
)
FAR_CITY_TERMINAL_SHARE: Final = 0.04

# (mcc, merchant word, weight, amount multiplier)
CARD_PRESENT_MCCS: Final[tuple[tuple[str, str, float, float], ...]] = (
    ("5411", "Market", 25, 1.0),
    ("5812", "Bistro", 15, 1.1),
    ("5814", "Snack", 10, 0.4),
    ("5541", "Fuel", 8, 1.4),
    ("5912", "Pharmacy", 6, 0.7),
    ("5311", "Store", 5, 2.0),
    ("5651", "Fashion", 6, 1.8),
    ("5732", "Electronics", 3, 3.5),
    ("5944", "Jewels", 1, 5.0),
    ("4111", "Transit", 6, 0.3),
    ("5999", "Shop", 5, 1.0),
    ("7011", "Hotel", 2, 4.0),
)
ONLINE_MCCS: Final[tuple[tuple[str, str, float, float], ...]] = (
    ("5999", "Marketplace", 30, 1.3),
    ("5816", "Games", 15, 0.4),
    ("4121", "Rides", 10, 0.6),
    ("5732", "Tech", 8, 3.0),
    ("4814", "Mobile", 8, 1.0),
    ("5311", "Shop", 10, 1.5),
    ("4722", "Travel", 5, 5.0),
    ("7995", "Bets", 3, 1.5),
    ("4829", "Transfer", 2, 2.0),
    ("6051", "Crypto", 2, 2.5),
)
_NAME_PREFIXES: Final = (
    "Maison", "Chez", "Casa", "Haus", "Le", "La", "Golden", "Royal", "City", "Corner",
    "Central", "Nord", "Sud", "Blue", "Green", "Urban", "Happy", "Prime", "Star", "Bella",
)  # fmt: skip
_NAME_SURNAMES: Final = (
    "Dupont", "Muller", "Garcia", "Rossi", "Smith", "Janssen", "Silva", "Murphy", "Weber",
    "Martin", "Bernard", "Lopez", "Romano", "Brown", "Bakker", "Costa", "Huber", "Moreau",
)  # fmt: skip


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulation depends on. Same config, same output."""

    seed: int = 42
    days: int = 182
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    n_customers: int = 5_000
    n_terminals: int = 4_000
    n_online_merchants: int = 300
    fraud_rate: float = 0.007
    scenario_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCENARIO_WEIGHTS))
    mean_daily_rate: float = 1.6
    label_delay_median_days: float = 6.0
    label_delay_sigma: float = 0.6

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.n_customers < 10 or self.n_terminals < 2 * len(CITIES) or self.n_online_merchants < 10:
            raise ValueError(
                f"need at least 10 customers, {2 * len(CITIES)} terminals and 10 online merchants"
            )
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")
        unknown = set(self.scenario_weights) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown fraud scenarios: {sorted(unknown)}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * MS_PER_DAY


# --------------------------------------------------------------------------- world


@dataclass
class World:
    """Static entities of a simulation (arrays indexed by entity number)."""

    city_lat: npt.NDArray[np.float64]
    city_lon: npt.NDArray[np.float64]
    city_country: list[str]
    city_currency: list[str]
    # customers
    home_city: npt.NDArray[np.int64]
    home_lat: npt.NDArray[np.float64]
    home_lon: npt.NDArray[np.float64]
    amount_mu: npt.NDArray[np.float64]
    amount_sigma: npt.NDArray[np.float64]
    daily_rate: npt.NDArray[np.float64]
    peak_hour: npt.NDArray[np.float64]
    hour_spread: npt.NDArray[np.float64]
    online_share: npt.NDArray[np.float64]
    first_card: npt.NDArray[np.int64]
    n_cards: npt.NDArray[np.int64]
    device_primary: npt.NDArray[np.int64]
    device_secondary: npt.NDArray[np.int64]  # -1 = none
    device_new: npt.NDArray[np.int64]  # replacement phone, -1 = none
    device_switch_day: npt.NDArray[np.int64]
    usual_terminals: npt.NDArray[np.int64]  # (n_customers, K) padded
    n_usual: npt.NDArray[np.int64]
    fav_online: npt.NDArray[np.int64]  # (n_customers, K) padded, merchant index into terminals
    n_fav: npt.NDArray[np.int64]
    # cards
    card_customer: npt.NDArray[np.int64]
    # terminals (card-present first, then online merchants)
    term_city: npt.NDArray[np.int64]
    term_lat: npt.NDArray[np.float64]
    term_lon: npt.NDArray[np.float64]
    term_online: npt.NDArray[np.bool_]
    term_mcc: list[str]
    term_mcc_mult: npt.NDArray[np.float64]
    term_country: list[str]
    term_currency: list[str]
    term_name: list[str]
    n_card_present: int
    n_devices: int

    @property
    def n_customers(self) -> int:
        return len(self.home_city)

    @property
    def n_cards_total(self) -> int:
        return len(self.card_customer)


def _merchant_name(rng: np.random.Generator, word: str, i: int) -> str:
    prefix = _NAME_PREFIXES[int(rng.integers(len(_NAME_PREFIXES)))]
    surname = _NAME_SURNAMES[int(rng.integers(len(_NAME_SURNAMES)))]
    name = f"{prefix} {surname} {word} {i % 97}"
    style = rng.random()
    return name.upper() if style < 0.15 else name.lower() if style < 0.2 else name


def build_world(cfg: SimulatorConfig, rng: np.random.Generator) -> World:
    n_city = len(CITIES)
    city_lat = np.array([c[1] for c in CITIES])
    city_lon = np.array([c[2] for c in CITIES])
    home_w = np.array([c[5] for c in CITIES], dtype=np.float64)
    home_w /= home_w.sum()
    far = home_w == 0

    # terminals: card-present spread over cities (home weight, plus a few in far cities)
    term_w = home_w * (1 - FAR_CITY_TERMINAL_SHARE) + far * (FAR_CITY_TERMINAL_SHARE / far.sum())
    n_cp = cfg.n_terminals
    cp_city = np.sort(rng.choice(n_city, size=n_cp, p=term_w))
    # a few terminals in every city, whatever the weights
    per_city = min(5, n_cp // n_city)
    cp_city[: per_city * n_city] = np.repeat(np.arange(n_city), per_city)
    cp_city = np.sort(cp_city)
    cp_lat = city_lat[cp_city] + rng.normal(0, 0.06, n_cp)
    cp_lon = city_lon[cp_city] + rng.normal(0, 0.09, n_cp)
    cp_w = np.array([m[2] for m in CARD_PRESENT_MCCS], dtype=np.float64)
    cp_cat = rng.choice(len(CARD_PRESENT_MCCS), size=n_cp, p=cp_w / cp_w.sum())
    n_on = cfg.n_online_merchants
    on_w = np.array([m[2] for m in ONLINE_MCCS], dtype=np.float64)
    on_cat = rng.choice(len(ONLINE_MCCS), size=n_on, p=on_w / on_w.sum())
    # online merchants are registered in a home-region city (85 %) or abroad
    on_city = np.where(
        rng.random(n_on) < 0.85,
        rng.choice(n_city, size=n_on, p=home_w),
        rng.choice(np.flatnonzero(far), n_on),
    )
    term_city = np.concatenate([cp_city, on_city])
    term_online = np.concatenate([np.zeros(n_cp, bool), np.ones(n_on, bool)])
    term_lat = np.concatenate([cp_lat, np.full(n_on, np.nan)])
    term_lon = np.concatenate([cp_lon, np.full(n_on, np.nan)])
    term_mcc = [CARD_PRESENT_MCCS[k][0] for k in cp_cat] + [ONLINE_MCCS[k][0] for k in on_cat]
    term_mult = np.array([CARD_PRESENT_MCCS[k][3] for k in cp_cat] + [ONLINE_MCCS[k][3] for k in on_cat])
    names = [_merchant_name(rng, CARD_PRESENT_MCCS[k][1], i) for i, k in enumerate(cp_cat)]
    names += [_merchant_name(rng, ONLINE_MCCS[k][1] + " Online", i) for i, k in enumerate(on_cat)]
    term_country = [CITIES[c][3] for c in term_city]
    term_currency = [CITIES[c][4] for c in term_city]

    # customers
    n = cfg.n_customers
    home_city = rng.choice(n_city, size=n, p=home_w)
    home_lat = city_lat[home_city] + rng.normal(0, 0.05, n)
    home_lon = city_lon[home_city] + rng.normal(0, 0.08, n)
    amount_mu = np.log(rng.uniform(12, 60, n))
    amount_sigma = rng.uniform(0.35, 0.8, n)
    daily_rate = np.clip(rng.gamma(2.0, cfg.mean_daily_rate / 2.0, n), 0.1, 10.0)
    peak_hour = np.clip(rng.normal(14.0, 2.5, n), 8.0, 20.0)
    hour_spread = rng.uniform(2.0, 4.5, n)
    online_share = rng.beta(2.0, 6.0, n)
    n_cards = 1 + (rng.random(n) < 0.25).astype(np.int64)
    first_card = np.concatenate([[0], np.cumsum(n_cards)[:-1]]).astype(np.int64)
    card_customer = np.repeat(np.arange(n), n_cards)
    device_primary = np.arange(n, dtype=np.int64)
    has_second = rng.random(n) < 0.4
    device_secondary = np.where(has_second, n + np.arange(n), -1)
    switch = rng.random(n) < 0.15
    device_new = np.where(switch, 2 * n + np.arange(n), -1)
    device_switch_day = np.where(switch, rng.integers(0, max(cfg.days, 1), n), cfg.days + 1)

    # usual card-present terminals: a handful in the home city
    k_max = 16
    n_usual = rng.integers(4, k_max + 1, n)
    usual = np.zeros((n, k_max), dtype=np.int64)
    city_start = np.searchsorted(cp_city, np.arange(n_city), side="left")
    city_end = np.searchsorted(cp_city, np.arange(n_city), side="right")
    for city in range(n_city):
        members = np.flatnonzero(home_city == city)
        if members.size == 0:
            continue
        lo, hi = city_start[city], city_end[city]
        usual[members] = rng.integers(lo, hi, size=(members.size, k_max))
    f_max = 8
    n_fav = rng.integers(3, f_max + 1, n)
    fav = n_cp + rng.integers(0, n_on, size=(n, f_max))

    return World(
        city_lat=city_lat,
        city_lon=city_lon,
        city_country=[c[3] for c in CITIES],
        city_currency=[c[4] for c in CITIES],
        home_city=home_city,
        home_lat=home_lat,
        home_lon=home_lon,
        amount_mu=amount_mu,
        amount_sigma=amount_sigma,
        daily_rate=daily_rate,
        peak_hour=peak_hour,
        hour_spread=hour_spread,
        online_share=online_share,
        first_card=first_card,
        n_cards=n_cards,
        device_primary=device_primary,
        device_secondary=device_secondary,
        device_new=device_new,
        device_switch_day=device_switch_day,
        usual_terminals=usual,
        n_usual=n_usual,
        fav_online=fav,
        n_fav=n_fav,
        card_customer=card_customer,
        term_city=term_city,
        term_lat=term_lat,
        term_lon=term_lon,
        term_online=term_online,
        term_mcc=term_mcc,
        term_mcc_mult=term_mult,
        term_country=term_country,
        term_currency=term_currency,
        term_name=names,
        n_card_present=n_cp,
        n_devices=3 * n,
    )


# --------------------------------------------------------------------------- transactions


@dataclass
class _Rows:
    """Columnar transactions before string materialisation."""

    ms: npt.NDArray[np.int64]
    card: npt.NDArray[np.int64]
    terminal: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    device: npt.NDArray[np.int64]  # -1 = none
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    scenario: npt.NDArray[np.int8]  # -1 = genuine, else index into SCENARIOS

    def __len__(self) -> int:
        return len(self.ms)

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        return _Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Rows.__dataclass_fields__))


def _time_of_day_ms(
    world: World, cust: npt.NDArray[np.int64], rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    hours = np.mod(world.peak_hour[cust] + world.hour_spread[cust] * rng.standard_normal(cust.size), 24.0)
    return (hours * MS_PER_HOUR).astype(np.int64)


def _genuine(cfg: SimulatorConfig, world: World, rng: np.random.Generator) -> _Rows:
    n, days = world.n_customers, cfg.days
    day_idx = np.arange(days)
    weekday = (((cfg.start_ms // MS_PER_DAY) + day_idx + 3) % 7).astype(np.int64)
    day_factor = np.where(weekday >= 5, 1.15, 0.95)
    counts = rng.poisson(world.daily_rate[:, None] * day_factor[None, :])
    # trips: the customer spends a few days in another city
    trip_city = np.full((n, days), -1, dtype=np.int64)
    n_trips = rng.poisson(days / 75.0, n)
    trip_cust = np.repeat(np.arange(n), n_trips)
    t_start = rng.integers(0, days, trip_cust.size)
    t_len = rng.integers(2, 8, trip_cust.size)
    n_city = len(CITIES)
    home_w = np.array([c[5] for c in CITIES], dtype=np.float64)
    far_idx = np.flatnonzero(home_w == 0)
    dest = np.where(
        rng.random(trip_cust.size) < 0.8,
        rng.choice(n_city, trip_cust.size, p=home_w / home_w.sum()),
        rng.choice(far_idx, trip_cust.size),
    )
    for c_, s_, l_, d_ in zip(trip_cust, t_start, t_len, dest, strict=True):
        if d_ != world.home_city[c_]:
            trip_city[c_, s_ : s_ + l_] = d_

    flat = counts.ravel()
    total = int(flat.sum())
    pair = np.repeat(np.arange(flat.size), flat)
    cust = pair // days
    day = pair % days
    ms = cfg.start_ms + day.astype(np.int64) * MS_PER_DAY + _time_of_day_ms(world, cust, rng)
    ms += rng.integers(0, 1000, total)
    # card
    second = (world.n_cards[cust] > 1) & (rng.random(total) < 0.3)
    card = world.first_card[cust] + second
    # channel and terminal
    online = rng.random(total) < world.online_share[cust]
    away = trip_city[cust, day]
    travelling = away >= 0
    cp_city = world.term_city[: world.n_card_present]
    city_start = np.searchsorted(cp_city, np.arange(n_city), side="left")
    city_count = np.searchsorted(cp_city, np.arange(n_city), side="right") - city_start
    cur_city = np.where(travelling, away, world.home_city[cust])
    random_local = city_start[cur_city] + (rng.random(total) * city_count[cur_city]).astype(np.int64)
    usual_pick = world.usual_terminals[cust, (rng.random(total) * world.n_usual[cust]).astype(np.int64)]
    use_usual = ~travelling & (rng.random(total) < 0.92)
    cp_term = np.where(use_usual, usual_pick, random_local)
    fav_pick = world.fav_online[cust, (rng.random(total) * world.n_fav[cust]).astype(np.int64)]
    any_online = world.n_card_present + rng.integers(0, len(world.term_online) - world.n_card_present, total)
    on_term = np.where(rng.random(total) < 0.85, fav_pick, any_online)
    terminal = np.where(online, on_term, cp_term)
    # amount
    z = rng.standard_normal(total)
    amount = np.exp(world.amount_mu[cust] + world.amount_sigma[cust] * z) * world.term_mcc_mult[terminal]
    amount = np.maximum(np.round(amount, 2), 0.5)
    # device (online only): primary, sometimes secondary, replaced phone after the switch day
    use_second = (world.device_secondary[cust] >= 0) & (rng.random(total) < 0.25)
    dev = np.where(use_second, world.device_secondary[cust], world.device_primary[cust])
    dev = np.where(
        day >= world.device_switch_day[cust], np.where(use_second, dev, world.device_new[cust]), dev
    )
    device = np.where(online, dev, -1)
    # location: terminal for card present, the cardholder (home or trip city) online
    here_lat = np.where(travelling, world.city_lat[cur_city], world.home_lat[cust])
    here_lon = np.where(travelling, world.city_lon[cur_city], world.home_lon[cust])
    here_lat = here_lat + rng.normal(0, 0.01, total)
    here_lon = here_lon + rng.normal(0, 0.01, total)
    lat = np.where(online, here_lat, world.term_lat[terminal])
    lon = np.where(online, here_lon, world.term_lon[terminal])
    return _Rows(ms, card, terminal, amount, device, lat, lon, np.full(total, -1, dtype=np.int8))


# --------------------------------------------------------------------------- fraud scenarios


class _Fraud:
    """Fraud injection; each method returns injected rows or marks genuine rows."""

    def __init__(self, cfg: SimulatorConfig, world: World, rng: np.random.Generator) -> None:
        self.cfg, self.world, self.rng = cfg, world, rng
        self.next_device = world.n_devices  # fraudster devices: never used by a cardholder
        self.online_idx = np.arange(world.n_card_present, len(world.term_online))
        mccs = np.array(world.term_mcc)
        risky = np.isin(mccs, ["5732", "4829", "6051", "7995", "4722"])
        self.online_risky = self.online_idx[risky[self.online_idx]]
        self.online_small = self.online_idx[np.isin(mccs[self.online_idx], ["5816", "5999", "4814"])]
        if self.online_risky.size == 0:
            self.online_risky = self.online_idx
        if self.online_small.size == 0:
            self.online_small = self.online_idx
        home_w = np.array([c[5] for c in CITIES])
        self.far_cities = np.flatnonzero(home_w == 0)
        cp_city = world.term_city[: world.n_card_present]
        self.city_start = np.searchsorted(cp_city, np.arange(len(CITIES)), side="left")
        self.city_count = np.searchsorted(cp_city, np.arange(len(CITIES)), side="right") - self.city_start

    def _new_devices(self, k: int) -> npt.NDArray[np.int64]:
        out = np.arange(self.next_device, self.next_device + k, dtype=np.int64)
        self.next_device += k
        return out

    def _rand_ms(self, k: int) -> npt.NDArray[np.int64]:
        return self.rng.integers(self.cfg.start_ms, self.cfg.end_ms, k)

    def _terminal_in(self, cities: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return self.city_start[cities] + (self.rng.random(cities.size) * self.city_count[cities]).astype(
            np.int64
        )

    def _city_point(
        self, cities: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        w = self.world
        return (
            w.city_lat[cities] + self.rng.normal(0, 0.03, cities.size),
            w.city_lon[cities] + self.rng.normal(0, 0.03, cities.size),
        )

    def _rows(
        self,
        ms: npt.NDArray[np.int64],
        card: npt.NDArray[np.int64],
        terminal: npt.NDArray[np.int64],
        amount: npt.NDArray[np.float64],
        device: npt.NDArray[np.int64],
        lat: npt.NDArray[np.float64],
        lon: npt.NDArray[np.float64],
        scenario: str,
    ) -> _Rows:
        ms = np.clip(ms, self.cfg.start_ms, self.cfg.end_ms - 1)
        amount = np.maximum(np.round(amount, 2), 0.5)
        code = np.full(ms.size, SCENARIOS.index(scenario), dtype=np.int8)
        return _Rows(ms.astype(np.int64), card, terminal, amount, device, lat, lon, code)

    def compromised_terminal(self, genuine: _Rows, target: int) -> int:
        """Mark every card-present transaction at a terminal as fraud for 7–21 days."""
        w, rng = self.world, self.rng
        cp = genuine.terminal < w.n_card_present
        idx = np.flatnonzero(cp)
        order = idx[np.lexsort((genuine.ms[idx], genuine.terminal[idx]))]
        terms_sorted = genuine.terminal[order]
        bounds = np.searchsorted(terms_sorted, np.arange(w.n_card_present + 1))
        home_terms = np.flatnonzero(~np.isin(w.term_city[: w.n_card_present], self.far_cities))
        marked, attempts = 0, 0
        used: set[int] = set()
        while marked < target and attempts < 20 * max(target, 1):
            attempts += 1
            t = int(rng.choice(home_terms))
            if t in used:
                continue
            used.add(t)
            length = int(rng.integers(7, 22)) * MS_PER_DAY
            start = int(rng.integers(self.cfg.start_ms, max(self.cfg.end_ms - length, self.cfg.start_ms + 1)))
            rows = order[bounds[t] : bounds[t + 1]]
            times = genuine.ms[rows]
            hit = rows[(times >= start) & (times < start + length)]
            genuine.scenario[hit] = SCENARIOS.index("compromised_terminal")
            marked += hit.size
        return marked

    def compromised_card(self, target: int) -> _Rows:
        w, rng = self.world, self.rng
        n_cards = max(1, math.ceil(target / 5.0))
        cards = rng.integers(0, w.n_cards_total, n_cards)
        per = rng.integers(2, 9, n_cards)
        card = np.repeat(cards, per)
        k = card.size
        start = self._rand_ms(n_cards)
        length = rng.integers(2, 11, n_cards) * MS_PER_DAY
        ms = np.repeat(start, per) + (rng.random(k) * np.repeat(length, per)).astype(np.int64)
        cust = w.card_customer[card]
        online = rng.random(k) < 0.5
        anywhere = rng.choice(len(CITIES), k)
        terminal = np.where(online, rng.choice(self.online_idx, k), self._terminal_in(anywhere))
        mult = w.term_mcc_mult[terminal] * rng.uniform(2.0, 6.0, k)
        amount = np.exp(w.amount_mu[cust] + w.amount_sigma[cust] * rng.standard_normal(k)) * mult
        fraud_dev = np.repeat(self._new_devices(n_cards), per)
        device = np.where(online, fraud_dev, -1)
        plat, plon = self._city_point(anywhere)
        lat = np.where(online, plat, w.term_lat[terminal])
        lon = np.where(online, plon, w.term_lon[terminal])
        return self._rows(ms, card, terminal, amount, device, lat, lon, "compromised_card")

    def card_testing(self, target: int) -> _Rows:
        w, rng = self.world, self.rng
        n_bursts = max(1, round(target / 11.0))
        cards = rng.integers(0, w.n_cards_total, n_bursts)
        n_small = rng.integers(5, 16, n_bursts)
        per = n_small + 1
        burst = np.repeat(np.arange(n_bursts), per)
        pos = np.arange(burst.size) - np.repeat(np.cumsum(per) - per, per)
        is_large = pos == np.repeat(n_small, per)
        gaps = np.where(is_large, rng.uniform(60, 900, burst.size), rng.uniform(5, 60, burst.size)) * 1000
        gaps[pos == 0] = 0
        offs = np.cumsum(gaps)
        offs -= np.repeat(offs[np.cumsum(per) - per], per)
        t0 = self._rand_ms(n_bursts)
        ms = np.repeat(t0, per) + offs.astype(np.int64)
        small_merchant = np.repeat(rng.choice(self.online_small, n_bursts), per)
        large_merchant = np.repeat(rng.choice(self.online_risky, n_bursts), per)
        terminal = np.where(is_large, large_merchant, small_merchant)
        amount = np.where(is_large, rng.uniform(250, 2500, burst.size), rng.uniform(0.5, 3.0, burst.size))
        device = np.repeat(self._new_devices(n_bursts), per)
        city = np.repeat(rng.choice(len(CITIES), n_bursts), per)
        lat, lon = self._city_point(city)
        return self._rows(ms, np.repeat(cards, per), terminal, amount, device, lat, lon, "card_testing")

    def impossible_travel(self, genuine: _Rows, target: int) -> _Rows:
        w, rng = self.world, self.rng
        home_cp = np.flatnonzero(
            (genuine.terminal < w.n_card_present)
            & ~np.isin(w.term_city[genuine.terminal], self.far_cities)
            & (genuine.scenario < 0)
        )
        k = min(max(1, target), home_cp.size)
        anchor = rng.choice(home_cp, k, replace=False)
        city = rng.choice(self.far_cities, k)
        terminal = self._terminal_in(city)
        ms = genuine.ms[anchor] + rng.integers(5 * MS_PER_MINUTE, 120 * MS_PER_MINUTE, k)
        card = genuine.card[anchor]
        cust = w.card_customer[card]
        amount = np.exp(w.amount_mu[cust] + w.amount_sigma[cust] * rng.standard_normal(k)) * rng.uniform(
            1.5, 4, k
        )
        return self._rows(
            ms,
            card,
            terminal,
            amount,
            np.full(k, -1),
            w.term_lat[terminal],
            w.term_lon[terminal],
            "impossible_travel",
        )

    def account_takeover(self, target: int) -> _Rows:
        w, rng = self.world, self.rng
        n_events = max(1, math.ceil(target / 2.0))
        cust = rng.integers(0, w.n_customers, n_events)
        per = rng.integers(1, 4, n_events)
        card = np.repeat(w.first_card[cust], per)
        k = card.size
        ms = np.repeat(self._rand_ms(n_events), per) + rng.integers(0, MS_PER_HOUR, k)
        terminal = rng.choice(self.online_risky, k)
        typical = np.exp(w.amount_mu[w.card_customer[card]])
        amount = np.maximum(rng.uniform(300, 2500, k), typical * rng.uniform(5, 15, k))
        device = np.repeat(self._new_devices(n_events), per)
        city = np.repeat(rng.choice(len(CITIES), n_events), per)
        lat, lon = self._city_point(city)
        return self._rows(ms, card, terminal, amount, device, lat, lon, "account_takeover")

    def outlier_amount(self, target: int) -> _Rows:
        w, rng = self.world, self.rng
        k = max(1, target)
        card = rng.integers(0, w.n_cards_total, k)
        cust = w.card_customer[card]
        day_ms = self.cfg.start_ms + rng.integers(0, self.cfg.days, k) * MS_PER_DAY
        ms = day_ms + _time_of_day_ms(w, cust, rng)
        online = rng.random(k) < 0.3
        usual = w.usual_terminals[cust, (rng.random(k) * w.n_usual[cust]).astype(np.int64)]
        fav = w.fav_online[cust, (rng.random(k) * w.n_fav[cust]).astype(np.int64)]
        terminal = np.where(online, fav, usual)
        tail = np.exp(w.amount_mu[cust] + w.amount_sigma[cust] * rng.uniform(4.0, 6.0, k))
        amount = 2.0 * tail * np.maximum(w.term_mcc_mult[terminal], 1.0)
        device = np.where(online, w.device_primary[cust], -1)
        lat = np.where(online, w.home_lat[cust], w.term_lat[terminal])
        lon = np.where(online, w.home_lon[cust], w.term_lon[terminal])
        return self._rows(ms, card, terminal, amount, device, lat, lon, "outlier_amount")


# --------------------------------------------------------------------------- assembly


def _ids(prefix: str, n: int, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(np.arange(n, dtype=np.int64)).cast(pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")


def _take_str(table: pa.Array, idx: npt.NDArray[np.int64]) -> pa.Array:
    return pc.take(table, pa.array(idx))


def simulate(cfg: SimulatorConfig | None = None) -> pa.Table:
    """Generate the dataset: transactions + ground truth, sorted by event_time (see :data:`SCHEMA`)."""
    cfg = cfg or SimulatorConfig()
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    world = build_world(cfg, rng)
    genuine = _genuine(cfg, world, rng)
    fraud = _Fraud(cfg, world, rng)
    weights = {s: cfg.scenario_weights.get(s, 0.0) for s in SCENARIOS}
    total_w = sum(weights.values()) or 1.0
    n_fraud = round(cfg.fraud_rate * len(genuine) / (1 - cfg.fraud_rate)) if cfg.fraud_rate > 0 else 0
    target = {s: round(n_fraud * w / total_w) for s, w in weights.items()}
    parts = [genuine]
    if n_fraud:
        if target["compromised_terminal"]:
            fraud.compromised_terminal(genuine, target["compromised_terminal"])
        if target["compromised_card"]:
            parts.append(fraud.compromised_card(target["compromised_card"]))
        if target["card_testing"]:
            parts.append(fraud.card_testing(target["card_testing"]))
        if target["impossible_travel"]:
            parts.append(fraud.impossible_travel(genuine, target["impossible_travel"]))
        if target["account_takeover"]:
            parts.append(fraud.account_takeover(target["account_takeover"]))
        if target["outlier_amount"]:
            parts.append(fraud.outlier_amount(target["outlier_amount"]))
    rows = _Rows.concat(parts)
    order = np.lexsort((rows.terminal, rows.card, rows.ms))
    rows = _Rows(*(getattr(rows, f)[order] for f in _Rows.__dataclass_fields__))
    n = len(rows)
    is_fraud = rows.scenario >= 0
    delay_days = 0.5 + rng.lognormal(math.log(cfg.label_delay_median_days), cfg.label_delay_sigma, n)
    delay_ms = (np.minimum(delay_days, 60.0) * MS_PER_DAY).astype(np.int64)
    label_ms = np.where(is_fraud, rows.ms + delay_ms, 0)

    card_ids = _ids("card-", world.n_cards_total, 7)
    cust_ids = _ids("cust-", world.n_customers, 6)
    term_ids = pa.array(
        [f"term-{i:06d}" if i < world.n_card_present else f"web-{i - world.n_card_present:05d}"
         for i in range(len(world.term_online))]
    )  # fmt: skip
    device_ids = _ids("dev-", int(rows.device.max(initial=0)) + 1, 7)
    scenario_names = pa.array(list(SCENARIOS))
    terminal = rows.terminal
    dev_present = rows.device >= 0
    geo = ~np.isnan(rows.lat)
    columns: dict[str, Any] = {
        "transaction_id": pc.binary_join_element_wise(
            pa.scalar(f"tx-{cfg.seed}-"),
            pc.utf8_lpad(pa.array(np.arange(n, dtype=np.int64)).cast(pa.string()), 9, "0"),
            "",
        ),
        "event_time": pa.array(rows.ms, type=pa.int64()).cast(_TS),
        "card_id": _take_str(card_ids, rows.card),
        "customer_id": _take_str(cust_ids, world.card_customer[rows.card]),
        "terminal_id": _take_str(term_ids, terminal),
        "merchant_name": _take_str(pa.array(world.term_name), terminal),
        "amount": pa.array(rows.amount),
        "currency": _take_str(pa.array(world.term_currency), terminal),
        "mcc": _take_str(pa.array(world.term_mcc), terminal),
        "channel": _take_str(
            pa.array(["card_present", "online"]), world.term_online[terminal].astype(np.int64)
        ),
        "device_id": pc.take(device_ids, pa.array(np.where(dev_present, rows.device, 0), mask=~dev_present)),
        "latitude": pa.array(np.round(rows.lat, 5), mask=~geo),
        "longitude": pa.array(np.round(rows.lon, 5), mask=~geo),
        "country": _take_str(pa.array(world.term_country), terminal),
        "is_fraud": pa.array(is_fraud.astype(np.int8)),
        "fraud_scenario": pc.take(
            scenario_names, pa.array(np.where(is_fraud, rows.scenario, 0).astype(np.int64), mask=~is_fraud)
        ),
        "label_time": pa.array(label_ms, type=pa.int64(), mask=~is_fraud).cast(_TS),
    }
    table = pa.table(columns, schema=SCHEMA)
    elapsed = time.perf_counter() - started
    log.info(
        "simulated %d transactions (%d fraud, %.3f %%) over %d days in %.2fs (%.0f rows/s)",
        n,
        int(is_fraud.sum()),
        100.0 * is_fraud.mean() if n else 0.0,
        cfg.days,
        elapsed,
        n / elapsed if elapsed else 0.0,
    )
    return table


def labels_of(table: pa.Table) -> pa.Table:
    """Label events (frauds only), ordered by label_time: the ``transactions.labels`` payloads."""
    frauds = table.filter(pc.equal(table["is_fraud"], 1)).select(list(LABEL_COLUMNS))
    return frauds.sort_by([("label_time", "ascending"), ("transaction_id", "ascending")])


def transactions_of(table: pa.Table) -> pa.Table:
    """The transaction events without ground truth (what the producer publishes)."""
    return table.select(list(TRANSACTION_COLUMNS))


def write_parquet(cfg: SimulatorConfig, path: Path, labels_path: Path | None = None) -> dict[str, Any]:
    """Simulate and write Parquet (transactions with ground truth; optionally labels apart)."""
    started = time.perf_counter()
    table = simulate(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    if labels_path is not None:
        labels_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(labels_of(table), labels_path, compression="zstd")
    elapsed = time.perf_counter() - started
    n = table.num_rows
    frauds = int(pc.sum(table["is_fraud"]).as_py() or 0)
    return {
        "rows": n,
        "frauds": frauds,
        "fraud_rate": frauds / n if n else 0.0,
        "seconds": round(elapsed, 3),
        "rows_per_s": round(n / elapsed, 1) if elapsed else None,
        "out": str(path),
    }


# --------------------------------------------------------------------------- stream mode


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """One ``transactions.raw`` payload (column contract of the Avro schema)."""

    transaction_id: str
    event_time: datetime
    card_id: str
    customer_id: str
    terminal_id: str
    merchant_name: str
    amount: float
    currency: str
    mcc: str
    channel: str
    device_id: str | None
    latitude: float | None
    longitude: float | None
    country: str | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TRANSACTION_COLUMNS}


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """One ``transactions.labels`` payload: a fraud label that arrives after the transaction."""

    transaction_id: str
    card_id: str
    is_fraud: int
    fraud_scenario: str | None
    label_time: datetime

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in LABEL_COLUMNS}


Event = TransactionEvent | LabelEvent


def iter_events(
    cfg: SimulatorConfig | None = None, *, labels: bool = True, chunk_rows: int = 50_000
) -> Iterator[Event]:
    """Transactions and (optionally) label events in time order (label events at their label_time).

    At equal times a transaction comes before a label event. The same data as :func:`simulate`.
    """
    table = simulate(cfg)
    n = table.num_rows
    tx_ms = table["event_time"].cast(pa.int64()).to_numpy()
    keys = [tx_ms]
    kinds = [np.zeros(n, dtype=np.int8)]
    refs = [np.arange(n)]
    lab = labels_of(table) if labels else table.slice(0, 0).select(list(LABEL_COLUMNS))
    if lab.num_rows:
        keys.append(lab["label_time"].cast(pa.int64()).to_numpy())
        kinds.append(np.ones(lab.num_rows, dtype=np.int8))
        refs.append(np.arange(lab.num_rows))
    key, kind, ref = np.concatenate(keys), np.concatenate(kinds), np.concatenate(refs)
    order = np.lexsort((ref, kind, key))
    tx_cols = transactions_of(table)
    cache: dict[int, list[dict[str, Any]]] = {}
    lab_rows = lab.to_pylist()
    for pos in order:
        if kind[pos] == 1:
            row = lab_rows[ref[pos]]
            yield LabelEvent(**row)
            continue
        i = int(ref[pos])
        chunk = i // chunk_rows
        if chunk not in cache:
            cache.clear()
            cache[chunk] = tx_cols.slice(chunk * chunk_rows, chunk_rows).to_pylist()
        yield TransactionEvent(**cache[chunk][i - chunk * chunk_rows])
