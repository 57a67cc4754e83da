"""The three Avro encoders and the decoder: byte-identical, decodable, strict on bad input."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import minimal_event

from common.schema_registry import SchemaRegistry
from contracts.avro import load_schema_str
from contracts.wire import WireFormatError, frame
from producer.avro_codegen import UnsupportedSchemaError, compile_encoder, zigzag_varint
from producer.encoders import CompiledEncoder, ConfluentEncoder, FastAvroEncoder, WireDecoder, make_encoder

TX_SCHEMA = load_schema_str("transaction")
LABEL_SCHEMA = load_schema_str("label")


@pytest.mark.parametrize(
    "n", [0, 1, -1, 63, 64, -64, -65, 4095, 4096, 1_735_689_677_983, -(2**63), 2**63 - 1]
)
def test_zigzag_varint_matches_fastavro(n: int) -> None:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema("long"), n)
    assert zigzag_varint(n) == buf.getvalue()


def _fastavro_bytes(schema: str, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(json.loads(schema)), record)
    return buf.getvalue()


ids = st.text(min_size=1, max_size=40)
opt_text = st.none() | st.text(max_size=60)
utc_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2)
transactions = st.fixed_dictionaries(
    {
        "transaction_id": ids,
        "event_time": utc_times,
        "card_id": ids,
        "customer_id": st.none() | ids,
        "terminal_id": ids,
        "merchant_name": opt_text,
        "amount": amounts,
        "currency": st.sampled_from(["EUR", "GBP", "JPY", "USD"]),
        "mcc": st.none() | st.from_regex(r"\A[0-9]{4}\Z"),
        "channel": st.none() | st.sampled_from(["card_present", "online"]),
        "device_id": st.none() | ids,
        "latitude": st.none() | st.floats(-90, 90),
        "longitude": st.none() | st.floats(-180, 180),
        "country": st.none() | st.sampled_from(["FR", "DE", "GB"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(transactions)
def test_compiled_encoder_is_byte_identical_to_fastavro(record: dict[str, Any]) -> None:
    compiled = CompiledEncoder(TX_SCHEMA, 42)
    expected = frame(42, _fastavro_bytes(TX_SCHEMA, record))
    assert compiled(record) == expected == FastAvroEncoder(TX_SCHEMA, 42)(record)


@settings(max_examples=100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "transaction_id": ids,
            "card_id": ids,
            "is_fraud": st.booleans(),
            "fraud_scenario": opt_text,
            "label_time": utc_times,
        }
    )
)
def test_compiled_label_encoder_is_byte_identical_to_fastavro(record: dict[str, Any]) -> None:
    assert CompiledEncoder(LABEL_SCHEMA, 7)(record) == frame(7, _fastavro_bytes(LABEL_SCHEMA, record))


def test_all_three_encoders_agree_with_confluents_avroserializer() -> None:
    from confluent_kafka.schema_registry import Schema

    registry = SchemaRegistry("mock://wire-test")  # confluent-kafka's in-memory registry
    sid = registry.client.register_schema("t.raw-value", Schema(TX_SCHEMA, "AVRO"))
    record = {
        "transaction_id": "tx-1",
        "event_time": datetime(2025, 1, 1, 0, 1, 17, 983000, tzinfo=UTC),
        "card_id": "card-0000013",
        "customer_id": "cust-000010",
        "terminal_id": "term-000331",
        "merchant_name": "royal moreau fuel 40",
        "amount": Decimal("88.46"),
        "currency": "EUR",
        "mcc": "5541",
        "channel": "card_present",
        "device_id": None,
        "latitude": 48.89505,
        "longitude": 2.37005,
        "country": "FR",
    }
    confluent = ConfluentEncoder(registry, TX_SCHEMA, sid, "t.raw")(record)
    assert confluent[:5] == frame(sid, b"")
    assert CompiledEncoder(TX_SCHEMA, sid)(record) == confluent
    assert FastAvroEncoder(TX_SCHEMA, sid)(record) == confluent
    assert make_encoder("compiled", TX_SCHEMA, sid)(record) == confluent

    decoded = WireDecoder(registry).decode(confluent)
    assert decoded[0] == sid and decoded[1] == "com.fraudplatform.Transaction"
    assert decoded[2] == record


def test_decoder_errors_are_classified() -> None:
    decoder = WireDecoder(SchemaRegistry("mock://wire-test-2"))
    with pytest.raises(WireFormatError) as exc:
        decoder.decode(frame(987654, b"\x02"))
    assert exc.value.reason == "unknown_schema_id"
    with pytest.raises(WireFormatError) as exc:
        decoder.decode(b"{}")
    assert exc.value.reason == "not_wire_format"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"amount": Decimal("1.234")}, ValueError),  # more decimals than the schema's scale
        ({"amount": 12.5}, TypeError),  # a float is never written as money
        ({"event_time": datetime(2025, 1, 1)}, ValueError),  # naive
        ({"card_id": 123}, AttributeError),
        ({"latitude": "north"}, struct.error),
    ],
)
def test_compiled_encoder_refuses_wrong_values(change: dict[str, Any], error: type[Exception]) -> None:
    record = minimal_event(**change)
    with pytest.raises(error):
        CompiledEncoder(TX_SCHEMA, 1)(record)


def test_missing_fields_take_their_defaults_like_fastavro() -> None:
    record = {
        "transaction_id": "t",
        "event_time": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(microseconds=999),
        "card_id": "c",
        "terminal_id": "x",
        "amount": Decimal("5"),
    }
    assert CompiledEncoder(TX_SCHEMA, 1)(record) == frame(1, _fastavro_bytes(TX_SCHEMA, record))
    with pytest.raises(KeyError):
        CompiledEncoder(TX_SCHEMA, 1)({k: v for k, v in record.items() if k != "card_id"})


def test_other_types_compile_and_match_fastavro() -> None:
    schema = {
        "type": "record",
        "name": "Misc",
        "fields": [
            {"name": "i", "type": "int"},
            {"name": "f", "type": "float"},
            {"name": "b", "type": "bytes"},
            {"name": "flag", "type": "boolean"},
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "n", "type": ["long", "null"], "default": 5},
            {"name": "neg", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 3}},
        ],
    }
    record = {
        "i": -300,
        "f": 1.5,
        "b": b"\x00\xff",
        "flag": True,
        "e": "C",
        "d": datetime(2025, 5, 17).date(),
        "us": datetime(2025, 5, 17, 1, 2, 3, 456789, tzinfo=UTC),
        "n": None,
        "neg": Decimal("-128.5"),
    }
    text = json.dumps(schema)
    assert compile_encoder(text)(record) == _fastavro_bytes(text, record)


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "array", "items": "string"},
        ["null", "string", "long"],
        {"type": "record", "name": "Inner", "fields": []},
        {"type": "int", "logicalType": "time-millis"},
    ],
)
def test_unsupported_schemas_fall_back_to_fastavro(field_type: Any) -> None:
    schema = json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": field_type}]})
    with pytest.raises(UnsupportedSchemaError):
        compile_encoder(schema)
    assert isinstance(make_encoder("compiled", schema, 1), FastAvroEncoder)
