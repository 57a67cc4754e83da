"""Confluent wire format as the stream reads it: magic byte 0, 4-byte big-endian schema id, Avro body.

:func:`parse_frame` is the plain-Python statement of the framing rules; :mod:`streaming.decode`
applies the same rules as Spark column expressions (a test holds the two together), so a record
is classified identically wherever it is looked at. Reason codes are shared with the producer's
DLQ records (``producer/wire.py``) so one dashboard counts both.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

MAGIC_BYTE: Final = 0
HEADER_SIZE: Final = 5
MAX_SCHEMA_ID: Final = 2**31 - 1  # registry ids are signed 32-bit integers

# Decode failure reasons (DLQ header ``reason``, stage ``streaming.decode``)
NOT_WIRE_FORMAT: Final = "not_wire_format"  # empty, shorter than the header, or magic byte != 0
UNKNOWN_SCHEMA_ID: Final = "unknown_schema_id"  # the registry does not know the id
NOT_AVRO: Final = "not_avro"  # the id names a JSON/Protobuf schema
INCOMPATIBLE_SCHEMA: Final = "incompatible_schema"  # the writer schema cannot be read as the reader's
UNDECODABLE: Final = "undecodable"  # the body does not decode with its writer schema
DECODE_REASONS: Final = (NOT_WIRE_FORMAT, UNKNOWN_SCHEMA_ID, NOT_AVRO, INCOMPATIBLE_SCHEMA, UNDECODABLE)


class FrameError(ValueError):
    """Bytes that are not a Confluent-framed record."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    schema_id: int
    body: bytes


def parse_frame(value: bytes | None) -> Frame:
    """The schema id and Avro body of a framed record; :class:`FrameError` when it is not one."""
    if not value:
        raise FrameError(NOT_WIRE_FORMAT, "empty payload")
    if len(value) < HEADER_SIZE:
        raise FrameError(NOT_WIRE_FORMAT, f"{len(value)} bytes: too short for the 5-byte header")
    if value[0] != MAGIC_BYTE:
        raise FrameError(NOT_WIRE_FORMAT, f"magic byte is {value[0]}, expected {MAGIC_BYTE}")
    (schema_id,) = struct.unpack_from(">I", value, 1)
    if schema_id > MAX_SCHEMA_ID:
        raise FrameError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not a registry id")
    return Frame(schema_id, bytes(value[HEADER_SIZE:]))


def frame(schema_id: int, body: bytes) -> bytes:
    """``body`` behind the magic byte and ``schema_id`` (tests and the bench produce with it)."""
    return struct.pack(">bI", MAGIC_BYTE, schema_id) + body
