"""Replay-file reading and row → events mapping (local files only, no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from contracts.events import LabelIn, TransactionIn, validate
from producer.sources import (
    ReplayFileError,
    file_events,
    parse_flag,
    row_events,
    to_utc,
)

DELAY = timedelta(days=7)


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transaction_id": "tx-1",
        "event_time": datetime(2025, 2, 1, 10, 0, tzinfo=UTC),
        "card_id": "card-1",
        "terminal_id": "term-1",
        "amount": 12.5,
        "is_fraud": 0,
    }
    base.update(overrides)
    return base


def test_a_genuine_row_gives_one_transaction_with_defaults() -> None:
    events = row_events(row(), default_currency="EUR", label_delay=DELAY)
    assert [t for t, _ in events] == ["transaction"]
    tx = events[0][1]
    assert tx["currency"] == "EUR" and "is_fraud" not in tx
    assert isinstance(validate("transaction", tx), TransactionIn)


def test_a_fraud_row_also_gives_a_label_at_event_time_plus_delay() -> None:
    events = row_events(
        row(is_fraud=1, fraud_scenario="card_testing"), default_currency="EUR", label_delay=DELAY
    )
    assert [t for t, _ in events] == ["transaction", "label"]
    label = validate("label", events[1][1])
    assert isinstance(label, LabelIn)
    assert label.label_time == datetime(2025, 2, 8, 10, 0, tzinfo=UTC)
    assert (label.transaction_id, label.card_id, label.fraud_scenario) == ("tx-1", "card-1", "card_testing")


def test_a_label_time_column_wins_over_the_delay() -> None:
    lt = datetime(2025, 2, 3, tzinfo=UTC)
    events = row_events(row(is_fraud=True, label_time=lt), default_currency="EUR", label_delay=DELAY)
    assert events[1][1]["label_time"] == lt


def test_missing_values_become_absent_fields() -> None:
    tx = row_events(row(customer_id=None, latitude=float("nan")), default_currency="GBP", label_delay=DELAY)[
        0
    ][1]
    assert "customer_id" not in tx and "latitude" not in tx and tx["currency"] == "GBP"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2025, 1, 1, 10), datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01 10:00:00", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01T10:00:00Z", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("2025-01-01T11:00:00+01:00", datetime(2025, 1, 1, 10, tzinfo=UTC)),
        ("not a time", "not a time"),
    ],
)
def test_naive_times_are_taken_as_utc(value: Any, expected: Any) -> None:
    assert to_utc(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, True), (0, False), (None, False), ("true", True), ("0", False), (True, True), ("maybe", "maybe")],
)
def test_parse_flag(value: Any, expected: Any) -> None:
    assert parse_flag(value) == expected


def test_an_unrecognisable_flag_becomes_an_invalid_label() -> None:
    events = row_events(row(is_fraud="maybe"), default_currency="EUR", label_delay=DELAY)
    assert validate("label", events[1][1]).reason == "wrong_type"  # type: ignore[union-attr]


def test_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "transaction_id": ["a", "b", "c"],
            "event_time": pa.array([datetime(2025, 1, 1, h) for h in range(3)], pa.timestamp("ms")),
            "card_id": ["c1", "c2", "c1"],
            "terminal_id": ["t"] * 3,
            "amount": [1.0, 2.5, 3.25],
            "mcc": ["0742", None, "5411"],
            "is_fraud": pa.array([0, 1, 0], pa.int8()),
        }
    )
    pq.write_table(table, path)
    events = list(file_events(path))
    assert [(t, e["transaction_id"]) for t, e in events] == [
        ("transaction", "a"),
        ("transaction", "b"),
        ("label", "b"),
        ("transaction", "c"),
    ]
    assert events[0][1]["event_time"] == datetime(2025, 1, 1, 0, tzinfo=UTC)
    assert events[0][1]["mcc"] == "0742"
    assert all(isinstance(validate(t, e), TransactionIn | LabelIn) for t, e in events)


def test_csv_cells_keep_leading_zeros_and_exact_amounts(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "transaction_id,event_time,card_id,terminal_id,amount,mcc,currency,is_fraud\n"
        "a,2025-01-01 10:00:00,c1,t1,0.10,0742,,0\n"
        "b,2025-01-01T11:00:00Z,c2,t2,19.99,5411,GBP,1\n"
    )
    events = list(file_events(path))
    tx = validate("transaction", events[0][1])
    assert isinstance(tx, TransactionIn)
    assert tx.mcc == "0742" and str(tx.amount) == "0.10" and tx.currency == "EUR"
    assert tx.event_time == datetime(2025, 1, 1, 10, tzinfo=UTC)
    assert [t for t, _ in events] == ["transaction", "transaction", "label"]


def test_a_file_without_the_required_columns_is_refused_before_any_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("transaction_id,event_time,amount\na,2025-01-01,1\n")
    with pytest.raises(ReplayFileError, match=r"lacks required column.*card_id, terminal_id, is_fraud"):
        file_events(path)
    with pytest.raises(ReplayFileError, match="does not exist"):
        file_events(tmp_path / "nope.parquet")
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(ReplayFileError, match="unknown file type"):
        file_events(tmp_path / "t.json")
