"""Confluent wire-format framing as the stream classifies it, and agreement with the producer's."""

from __future__ import annotations

import struct

import pytest

from producer import wire as producer_wire
from streaming.wire import (
    NOT_WIRE_FORMAT,
    UNKNOWN_SCHEMA_ID,
    FrameError,
    frame,
    parse_frame,
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
    with pytest.raises(FrameError) as exc:
        parse_frame(value)
    assert exc.value.reason == reason
    assert str(exc.value) == message


def test_frame_round_trips() -> None:
    for schema_id in (0, 1, 4242, 2**31 - 1):
        assert parse_frame(frame(schema_id, b"xyz")) == parse_frame(frame(schema_id, b"xyz"))
        assert parse_frame(frame(schema_id, b"xyz")).schema_id == schema_id


def test_agrees_with_the_producers_framing() -> None:
    """What the producer frames, the stream parses to the same id and body (and vice versa)."""
    for schema_id, body in ((1, b""), (77, b"\x02a"), (123456, bytes(range(256)))):
        framed = producer_wire.frame(schema_id, body)
        assert framed == frame(schema_id, body)
        parsed = parse_frame(framed)
        assert (parsed.schema_id, parsed.body) == producer_wire.unframe(framed)
    assert struct.unpack(">bI", frame(9, b"")) == (0, 9)
