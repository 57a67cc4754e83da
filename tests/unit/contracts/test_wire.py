"""Confluent wire-format framing: what every stage frames and parses (the stream's Spark expressions
are held to the same rules in tests/integration/test_streaming.py)."""

from __future__ import annotations

import struct

import pytest

from contracts.wire import (
    NOT_WIRE_FORMAT,
    UNKNOWN_SCHEMA_ID,
    WireFormatError,
    frame,
    parse_frame,
    schema_id_of,
)


def test_parses_id_and_body() -> None:
    f = parse_frame(b"\x00\x00\x00\x01\x02body")
    assert f.schema_id == 258
    assert f.body == b"body"


def test_empty_body_is_a_frame() -> None:
    assert parse_frame(b"\x00\x00\x00\x00\x07").body == b""


@pytest.mark.parametrize(
    ("value", "reason", "message"),
    [
        (None, NOT_WIRE_FORMAT, "empty payload"),
        (b"", NOT_WIRE_FORMAT, "empty payload"),
        (b"\x00\x00\x01", NOT_WIRE_FORMAT, "3 bytes: too short for the 5-byte header"),
        (b"\x01\x00\x00\x00\x01abc", NOT_WIRE_FORMAT, "magic byte is 1, expected 0"),
        (b'{"json": true}', NOT_WIRE_FORMAT, "magic byte is 123, expected 0"),
        (b"\x00\xff\xff\xff\xffabc", UNKNOWN_SCHEMA_ID, "schema id 4294967295 is not a registry id"),
    ],
)
def test_refusals_name_the_reason(value: bytes | None, reason: str, message: str) -> None:
    with pytest.raises(WireFormatError) as exc:
        parse_frame(value)
    assert exc.value.reason == reason
    assert str(exc.value) == message


def test_frame_round_trips() -> None:
    for schema_id in (0, 1, 4242, 2**31 - 1):
        assert parse_frame(frame(schema_id, b"xyz")) == parse_frame(frame(schema_id, b"xyz"))
        assert parse_frame(frame(schema_id, b"xyz")).schema_id == schema_id


def test_framing_round_trips_id_and_body() -> None:
    for schema_id, body in ((1, b""), (77, b"\x02a"), (123456, bytes(range(256)))):
        parsed = parse_frame(frame(schema_id, body))
        assert (parsed.schema_id, parsed.body) == (schema_id, body)
        assert schema_id_of(frame(schema_id, body)) == schema_id
    assert struct.unpack(">bI", frame(9, b"")) == (0, 9)
    assert frame(1234, b"body")[:5] == b"\x00\x00\x00\x04\xd2"
    assert schema_id_of(b'{"json": 1}') is None and schema_id_of(None) is None
