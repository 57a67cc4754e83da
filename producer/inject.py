"""``--inject-bad-rate``: corrupt a fraction of transactions the way real feeds break, to exercise
validation and the DLQ end to end. Deterministic for a seed. Pure: no I/O."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

Corruption = Callable[[dict[str, Any], random.Random], None]


def _missing_card_id(ev: dict[str, Any], rng: random.Random) -> None:
    ev.pop("card_id", None)


def _negative_amount(ev: dict[str, Any], rng: random.Random) -> None:
    amount = ev.get("amount")
    ev["amount"] = -abs(float(amount)) if isinstance(amount, int | float) and amount else -12.5


def _unknown_currency(ev: dict[str, Any], rng: random.Random) -> None:
    ev["currency"] = rng.choice(("EUX", "ABC", "BTC", "eur"))


def _bad_timestamp(ev: dict[str, Any], rng: random.Random) -> None:
    ev["event_time"] = rng.choice(
        (
            "2025-13-45T25:61:00Z",  # not a date
            datetime(1970, 1, 1, tzinfo=UTC),  # epoch 0: an unset clock
            datetime(2025, 6, 1, 12, 0),  # naive: time zone lost
            "yesterday",
        )
    )


def _wrong_type(ev: dict[str, Any], rng: random.Random) -> None:
    field, value = rng.choice(
        (("amount", "twelve euros"), ("card_id", 4_000_123_412_341_234), ("latitude", "north"))
    )
    ev[field] = value


CORRUPTIONS: Final[dict[str, Corruption]] = {
    "missing_card_id": _missing_card_id,
    "negative_amount": _negative_amount,
    "unknown_currency": _unknown_currency,
    "bad_timestamp": _bad_timestamp,
    "wrong_type": _wrong_type,
}
#: The DLQ reason and field each corruption must produce (the unit tests hold them together).
EXPECTED: Final[dict[str, tuple[str, str | None]]] = {
    "missing_card_id": ("missing", "card_id"),
    "negative_amount": ("out_of_range", "amount"),
    "unknown_currency": ("unknown_currency", "currency"),
    "bad_timestamp": ("bad_timestamp", "event_time"),
    "wrong_type": ("wrong_type", None),  # the field depends on the draw
}


class BadEventInjector:
    """Corrupts each event with probability ``rate``; remembers how many of each kind it made."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"inject-bad-rate must be in [0, 1], got {rate}")
        self.rate = rate
        self._rng = random.Random(seed)
        self._kinds = list(CORRUPTIONS)
        self.injected: dict[str, int] = dict.fromkeys(CORRUPTIONS, 0)

    def maybe_corrupt(self, event: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """The event unchanged (and None), or a corrupted copy and the corruption's name."""
        if self.rate <= 0.0 or self._rng.random() >= self.rate:
            return event, None
        kind = self._rng.choice(self._kinds)
        bad = dict(event)
        CORRUPTIONS[kind](bad, self._rng)
        self.injected[kind] += 1
        return bad, kind
