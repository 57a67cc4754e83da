"""Sample events shared by the unit tests of the contract and of its users (importable by name:
pytest puts tests/unit on sys.path for its conftest)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any


def good_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "transaction_id": "tx-1",
        "event_time": datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC),
        "card_id": "card-0001",
        "customer_id": "cust-01",
        "terminal_id": "term-001",
        "merchant_name": "Chez Dupont Bistro 3",
        "amount": 88.46,
        "currency": "EUR",
        "mcc": "5812",
        "channel": "card_present",
        "device_id": None,
        "latitude": 48.85,
        "longitude": 2.35,
        "country": "FR",
    }
    event.update(overrides)
    return event


def minimal_event(**overrides: Any) -> dict[str, Any]:
    """A transaction with only its required fields, the amount an exact decimal (an Avro record)."""
    event: dict[str, Any] = {
        "transaction_id": "tx-1",
        "event_time": datetime(2025, 3, 1, tzinfo=UTC),
        "card_id": "card-1",
        "terminal_id": "term-1",
        "amount": Decimal("10.00"),
        "currency": "EUR",
    }
    event.update(overrides)
    return event
