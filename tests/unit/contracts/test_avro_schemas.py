"""The Avro contracts: documented, exact money, UTC millis, no label in the transaction, versioned."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from contracts.avro import (
    PII_CATEGORIES,
    SCHEMA_NAMES,
    history,
    load_schema_str,
    pii_fields,
    schema_path,
    subject_for,
)
from contracts.events import TRANSACTION_COLUMNS


def fields(event_type: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in json.loads(load_schema_str(event_type))["fields"]}


@pytest.mark.parametrize("event_type", sorted(SCHEMA_NAMES))
def test_schema_parses_is_namespaced_and_documented(event_type: str) -> None:
    raw = json.loads(schema_path(event_type).read_text())
    fastavro.parse_schema(raw)
    assert raw["namespace"] == "com.fraudplatform" and raw.get("doc")
    undocumented = [f["name"] for f in raw["fields"] if not f.get("doc")]
    assert not undocumented, f"fields without doc: {undocumented}"


def test_transaction_fields_follow_the_column_contract() -> None:
    assert tuple(fields("transaction")) == TRANSACTION_COLUMNS
    assert not {"is_fraud", "fraud_scenario", "label_time"} & set(fields("transaction"))


def test_amount_is_an_exact_decimal_never_a_float() -> None:
    amount = fields("transaction")["amount"]["type"]
    assert amount == {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
    types = json.dumps([f["type"] for f in fields("transaction").values() if f["name"] != "amount"])
    assert "decimal" not in types


@pytest.mark.parametrize(("event_type", "field"), [("transaction", "event_time"), ("label", "label_time")])
def test_times_are_utc_timestamp_millis(event_type: str, field: str) -> None:
    assert fields(event_type)[field]["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def test_optional_fields_are_nullable_with_a_null_default() -> None:
    required = {"transaction_id", "event_time", "card_id", "terminal_id", "amount", "currency"}
    for name, f in fields("transaction").items():
        if name in required:
            continue
        assert f["type"][0] == "null" and f["default"] is None, name
    assert fields("transaction")["currency"]["default"] == "EUR"


def test_label_contract() -> None:
    assert tuple(fields("label")) == ("transaction_id", "card_id", "is_fraud", "fraud_scenario", "label_time")
    assert fields("label")["is_fraud"]["type"] == "boolean"


@pytest.mark.parametrize("event_type", sorted(SCHEMA_NAMES))
def test_history_is_contiguous_and_its_newest_version_is_the_current_schema(event_type: str) -> None:
    versions = history(event_type)
    assert [v for v, _ in versions] == list(range(1, len(versions) + 1))
    newest = json.loads(versions[-1][1].read_text())
    assert newest == json.loads(schema_path(event_type).read_text()), (
        f"{schema_path(event_type).name} changed: copy it to history/ as v{len(versions) + 1}"
    )


def test_subjects_follow_the_topic_name_strategy() -> None:
    assert subject_for("transactions.raw") == "transactions.raw-value"


def test_fields_that_identify_or_locate_a_person_are_tagged() -> None:
    assert pii_fields("transaction") == {
        "card_id": "pseudonymous_id",
        "customer_id": "pseudonymous_id",
        "device_id": "pseudonymous_id",
        "latitude": "location",
        "longitude": "location",
    }
    assert pii_fields("label") == {"card_id": "pseudonymous_id"}
    assert set(pii_fields("transaction").values()) <= PII_CATEGORIES
