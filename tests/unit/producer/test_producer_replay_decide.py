"""What replay-dlq does with each kind of DLQ record (decision logic, with an in-memory registry)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema
from samples import minimal_event

from common.schema_registry import SchemaRegistry
from contracts.avro import load_schema_str
from contracts.dlq import CONTENT_AVRO, CONTENT_JSON
from contracts.events import LabelIn, TransactionIn, to_json_bytes
from contracts.wire import frame
from producer.encoders import CompiledEncoder, WireDecoder
from producer.replay_dlq import NotReplayable, Resend, StillInvalid, Undecodable, decide

LABELS = "transactions.labels"
TX = minimal_event()
LABEL = {
    "transaction_id": "tx-1",
    "card_id": "card-1",
    "is_fraud": True,
    "label_time": datetime(2025, 3, 9, tzinfo=UTC),
}


@pytest.fixture(scope="module")
def env() -> tuple[WireDecoder, CompiledEncoder, CompiledEncoder]:
    registry = SchemaRegistry("mock://replay-decide")  # confluent-kafka's in-memory registry
    tx_id = registry.client.register_schema("r-value", Schema(load_schema_str("transaction"), "AVRO"))
    label_id = registry.client.register_schema("l-value", Schema(load_schema_str("label"), "AVRO"))
    return (
        WireDecoder(registry),
        CompiledEncoder(load_schema_str("transaction"), tx_id),
        CompiledEncoder(load_schema_str("label"), label_id),
    )


def json_headers(**extra: str) -> dict[str, str]:
    return {"stage": "producer.validate", "content_type": CONTENT_JSON, "event_type": "transaction", **extra}


def test_json_that_now_passes_is_resent(env: Any) -> None:
    decision = decide(to_json_bytes(TX), json_headers(), env[0], LABELS)
    assert isinstance(decision, Resend) and isinstance(decision.model, TransactionIn)
    assert decision.model.amount == Decimal("10.00")


def test_json_that_still_fails_stays_with_its_new_reason(env: Any) -> None:
    decision = decide(to_json_bytes({**TX, "amount": -1}), json_headers(), env[0], LABELS)
    assert isinstance(decision, StillInvalid)
    assert (decision.failure.reason, decision.failure.field) == ("out_of_range", "amount")


def test_avro_records_are_decoded_with_their_writer_schema_and_typed_by_record_name(env: Any) -> None:
    decoder, tx_enc, label_enc = env
    headers = {"stage": "streaming.quality", "content_type": CONTENT_AVRO}  # no event_type header
    tx = decide(tx_enc(TX), headers, decoder, LABELS)
    label = decide(label_enc(LABEL), headers, decoder, LABELS)
    assert isinstance(tx, Resend) and tx.event_type == "transaction"
    assert isinstance(label, Resend) and label.event_type == "label" and isinstance(label.model, LabelIn)


def test_event_type_falls_back_to_the_source_topic(env: Any) -> None:
    headers = {"stage": "producer.validate", "source_topic": LABELS}
    decision = decide(to_json_bytes({**LABEL, "label_time": "2025-03-09T00:00:00Z"}), headers, env[0], LABELS)
    assert isinstance(decision, Resend) and decision.event_type == "label"


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (frame(999_999, b"\x02"), {"stage": "streaming.decode"}, "unknown_schema_id"),
        (b"\x00\x00", {"stage": "streaming.decode"}, "not_wire_format"),
        (
            b"\xffgarbage",
            {"stage": "streaming.decode", "content_type": "application/octet-stream"},
            "not_wire_format",
        ),
        (b"{not json", {"stage": "producer.validate", "content_type": CONTENT_JSON}, "not_json"),
        (None, {"stage": "producer.validate"}, "empty"),
    ],
)
def test_undecodable_records_stay_and_are_classified(
    env: Any, value: bytes | None, headers: dict[str, str], reason: str
) -> None:
    decision = decide(value, headers, env[0], LABELS)
    assert isinstance(decision, Undecodable) and decision.reason == reason


def test_truncated_avro_is_undecodable(env: Any) -> None:
    decoder, tx_enc, _ = env
    decision = decide(tx_enc(TX)[:-3], {"stage": "streaming.decode"}, decoder, LABELS)
    assert isinstance(decision, Undecodable) and decision.reason == "undecodable"


def test_duplicates_found_by_the_stream_are_never_resent(env: Any) -> None:
    decoder, tx_enc, _ = env
    decision = decide(tx_enc(TX), {"stage": "streaming.dedup", "reason": "duplicate"}, decoder, LABELS)
    assert isinstance(decision, NotReplayable) and decision.reason == "duplicate"


def test_a_misdirected_json_record_on_the_raw_topic_can_be_fixed_into_avro(env: Any) -> None:
    headers = {
        "stage": "streaming.decode",
        "content_type": "application/octet-stream",
        "source_topic": "t.raw",
    }
    decision = decide(to_json_bytes(TX), headers, env[0], LABELS)
    assert isinstance(decision, Resend) and decision.event_type == "transaction"
