"""The declarative quality rules, evaluated in plain Python (the Spark interpretation is held to the
same answers by tests/integration/test_streaming.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from samples import good_event

from contracts.events import AMOUNT_MAX, AMOUNT_MIN
from streaming.quality import (
    Between,
    NotNull,
    Rule,
    first_failure,
    label_rules,
    transaction_rules,
)
from streaming.settings import StreamingSettings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> StreamingSettings:
    return StreamingSettings(max_future_skew_s=300)


def txn(**overrides: Any) -> dict[str, Any]:
    """A record as the stream decodes it: a decimal amount, an event a minute old."""
    return good_event(**{"event_time": NOW - timedelta(minutes=1), "amount": Decimal("42.10"), **overrides})


def fails(settings: StreamingSettings, **overrides: Any) -> tuple[str, str] | None:
    f = first_failure(transaction_rules(settings), txn(**overrides), NOW)
    return None if f is None else (f.reason, f.field)


def test_a_valid_transaction_passes_every_rule(settings: StreamingSettings) -> None:
    assert fails(settings) is None


def test_optional_fields_may_be_null(settings: StreamingSettings) -> None:
    nulls = dict.fromkeys(
        ("customer_id", "merchant_name", "mcc", "channel", "latitude", "longitude", "country")
    )
    assert fails(settings, **nulls) is None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"transaction_id": None}, ("missing", "transaction_id")),
        ({"card_id": None}, ("missing", "card_id")),
        ({"amount": None}, ("missing", "amount")),
        ({"event_time": None}, ("missing", "event_time")),
        ({"terminal_id": "   "}, ("empty", "terminal_id")),
        ({"amount": Decimal("0.00")}, ("out_of_range", "amount")),
        ({"amount": AMOUNT_MAX + AMOUNT_MIN}, ("out_of_range", "amount")),
        ({"card_id": "c" * 257}, ("too_long", "card_id")),
        ({"device_id": " \t"}, ("empty", "device_id")),
        ({"merchant_name": "m" * 513}, ("too_long", "merchant_name")),
        ({"currency": "XXX"}, ("unknown_currency", "currency")),
        ({"currency": "eur"}, ("unknown_currency", "currency")),
        ({"event_time": NOW + timedelta(seconds=301)}, ("in_future", "event_time")),
        ({"event_time": NOW - timedelta(days=1826)}, ("too_old", "event_time")),
        ({"channel": "phone"}, ("invalid_value", "channel")),
        ({"mcc": "541"}, ("bad_format", "mcc")),
        ({"mcc": "54111"}, ("bad_format", "mcc")),
        ({"country": "XK"}, ("unknown_country", "country")),
        ({"latitude": 91.0}, ("out_of_range", "latitude")),
        ({"longitude": float("nan")}, ("out_of_range", "longitude")),
    ],
)
def test_each_rule_names_its_reason_and_field(
    settings: StreamingSettings, overrides: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert fails(settings, **overrides) == expected


def test_boundaries_are_inclusive(settings: StreamingSettings) -> None:
    assert fails(settings, amount=Decimal("0.01")) is None
    assert fails(settings, amount=AMOUNT_MAX) is None
    assert fails(settings, card_id="c" * 256) is None
    assert fails(settings, event_time=NOW + timedelta(seconds=300)) is None
    assert fails(settings, event_time=NOW - timedelta(days=1825)) is None


def test_months_of_simulated_history_pass_the_default_age_limit() -> None:
    """The simulator's default history starts 2025-01-01; replays of it must not be dead-lettered."""
    defaults = StreamingSettings()
    assert (
        first_failure(transaction_rules(defaults), txn(event_time=datetime(2025, 1, 1, tzinfo=UTC)), NOW)
        is None
    )


def test_the_first_failing_rule_wins(settings: StreamingSettings) -> None:
    # missing beats the value rules, which come in declaration order
    assert fails(settings, card_id=None, currency="XXX", amount=Decimal(0)) == ("missing", "card_id")
    assert fails(settings, currency="XXX", amount=Decimal(0)) == ("out_of_range", "amount")


def test_failure_message_names_field_and_value(settings: StreamingSettings) -> None:
    f = first_failure(transaction_rules(settings), txn(currency="XXX"), NOW)
    assert f is not None
    assert "currency" in f.message and "'XXX'" in f.message


def test_freshness_limits_come_from_settings() -> None:
    strict = StreamingSettings(max_event_age_days=30, max_future_skew_s=10)
    assert fails(strict, event_time=NOW - timedelta(days=31)) == ("too_old", "event_time")
    assert fails(strict, event_time=NOW + timedelta(seconds=11)) == ("in_future", "event_time")


def test_label_rules(settings: StreamingSettings) -> None:
    label = {
        "transaction_id": "t-1",
        "card_id": "c-1",
        "is_fraud": True,
        "fraud_scenario": None,
        "label_time": NOW,
    }
    rules = label_rules(settings)
    assert first_failure(rules, label, NOW) is None
    f = first_failure(rules, {**label, "is_fraud": None}, NOW)
    assert f is not None and (f.reason, f.field) == ("missing", "is_fraud")
    f = first_failure(rules, {**label, "label_time": NOW + timedelta(hours=1)}, NOW)
    assert f is not None and (f.reason, f.field) == ("in_future", "label_time")


def test_rules_are_data() -> None:
    """A rule set is plain values: comparable, hashable, printable — not code paths."""
    rule = Rule("out_of_range", "amount", Between(Decimal(1), Decimal(2)))
    assert rule == Rule("out_of_range", "amount", Between(Decimal(1), Decimal(2)))
    assert {rule, Rule("missing", "amount", NotNull())}
    assert rule.name == "out_of_range:amount"
    reasons = {(r.reason, r.field) for r in transaction_rules(StreamingSettings())}
    assert ("unknown_currency", "currency") in reasons and ("in_future", "event_time") in reasons
