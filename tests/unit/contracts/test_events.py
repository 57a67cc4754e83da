"""The contract's validation rules (pure: no Kafka, no registry) and the bad-event injector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from samples import good_event

from contracts.events import (
    LabelIn,
    TransactionIn,
    ValidationFailure,
    from_json_bytes,
    to_json_bytes,
    validate,
)


def failure(event: dict[str, Any], event_type: str = "transaction") -> ValidationFailure:
    result = validate(event_type, event)
    assert isinstance(result, ValidationFailure), f"expected a failure, got {result!r}"
    return result


def test_a_contract_event_passes_with_an_exact_amount() -> None:
    model = validate("transaction", good_event())
    assert isinstance(model, TransactionIn)
    assert model.amount == Decimal("88.46")
    assert model.event_time == datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)


def test_optional_fields_may_be_absent_and_ground_truth_is_ignored() -> None:
    minimal = {
        k: good_event()[k] for k in ("transaction_id", "event_time", "card_id", "terminal_id", "amount")
    }
    model = validate("transaction", {**minimal, "currency": "GBP", "is_fraud": 1, "fraud_scenario": "x"})
    assert isinstance(model, TransactionIn)
    assert model.customer_id is None and model.country is None
    assert "is_fraud" not in model.__dict__


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"card_id": None}, "wrong_type", "card_id"),
        ({"card_id": ""}, "empty", "card_id"),
        ({"card_id": 4000123412341234}, "wrong_type", "card_id"),
        ({"amount": -12.5}, "out_of_range", "amount"),
        ({"amount": 0}, "out_of_range", "amount"),
        ({"amount": 0.1 + 0.2}, "bad_precision", "amount"),
        ({"amount": 12.345}, "bad_precision", "amount"),
        ({"amount": 1e11}, "out_of_range", "amount"),
        ({"amount": float("nan")}, "out_of_range", "amount"),
        ({"amount": "twelve"}, "wrong_type", "amount"),
        ({"currency": "EUX"}, "unknown_currency", "currency"),
        ({"currency": "eur"}, "unknown_currency", "currency"),
        ({"currency": "XXX"}, "unknown_currency", "currency"),
        ({"country": "XK"}, "unknown_country", "country"),
        ({"mcc": "541"}, "bad_format", "mcc"),
        ({"mcc": 5411}, "wrong_type", "mcc"),
        ({"channel": "atm"}, "invalid_value", "channel"),
        ({"latitude": 91.0}, "out_of_range", "latitude"),
        ({"longitude": float("inf")}, "out_of_range", "longitude"),
        ({"latitude": "north"}, "wrong_type", "latitude"),
        ({"event_time": "2025-13-45T25:61:00Z"}, "bad_timestamp", "event_time"),
        ({"event_time": "yesterday"}, "bad_timestamp", "event_time"),
        ({"event_time": datetime(2025, 6, 1, 12)}, "bad_timestamp", "event_time"),
        ({"event_time": datetime(1970, 1, 1, tzinfo=UTC)}, "bad_timestamp", "event_time"),
        ({"event_time": datetime(2150, 1, 1, tzinfo=UTC)}, "bad_timestamp", "event_time"),
    ],
)
def test_each_rule_names_its_reason_and_field(change: dict[str, Any], reason: str, field: str) -> None:
    f = failure(good_event(**change))
    assert (f.reason, f.field) == (reason, field), f.message
    assert f.message.startswith(f"{field}:"), f.message


def test_a_missing_required_field_is_named() -> None:
    event = good_event()
    del event["terminal_id"]
    f = failure(event)
    assert (f.reason, f.field) == ("missing", "terminal_id")
    assert "terminal_id: Field required" in f.message


def test_the_message_lists_every_failing_field_and_the_first_decides() -> None:
    f = failure(good_event(amount=-1, currency="ABC"))
    assert (f.reason, f.field) == ("out_of_range", "amount")
    assert "amount:" in f.message and "currency: 'ABC' is not an active ISO 4217" in f.message


def test_a_non_utc_offset_is_accepted_as_the_same_instant() -> None:
    paris = timezone(timedelta(hours=1))
    model = validate("transaction", good_event(event_time=datetime(2025, 3, 1, 13, 30, tzinfo=paris)))
    assert isinstance(model, TransactionIn)
    assert model.event_time == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)


def test_a_non_mapping_is_refused_without_raising() -> None:
    f = failure([1, 2])  # type: ignore[arg-type]
    assert f.reason == "wrong_type" and f.field == ""


def test_labels() -> None:
    label = {"transaction_id": "tx-1", "card_id": "c", "is_fraud": 1, "label_time": "2025-03-08T00:00:00Z"}
    model = validate("label", label)
    assert isinstance(model, LabelIn) and model.is_fraud is True and model.fraud_scenario is None
    assert failure({**label, "is_fraud": "maybe"}, "label").reason == "wrong_type"
    assert failure({**label, "label_time": "2025-03-08T00:00:00"}, "label").reason == "bad_timestamp"
    assert failure({k: v for k, v in label.items() if k != "card_id"}, "label").field == "card_id"


def test_json_payload_round_trips_and_revalidates_the_same_way() -> None:
    bad = good_event(currency="EUX", latitude=float("nan"))
    data = to_json_bytes(bad)
    back = from_json_bytes(data)
    assert back["event_time"] == "2025-03-01T12:30:15.123000+00:00"
    assert back["amount"] == 88.46
    assert failure(back).reason == failure(bad).reason == "unknown_currency"  # the first failing field
    fixed = {**back, "currency": "EUR", "latitude": 48.85}
    assert isinstance(validate("transaction", fixed), TransactionIn)
    json.loads(to_json_bytes(good_event()))  # valid events give standard JSON
