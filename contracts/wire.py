"""Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.

:func:`parse_frame` is the plain-Python statement of the framing rules: the producer frames what it
sends and reads DLQ records back with it, and ``streaming.decode`` applies the same rules as Spark
column expressions (a unit test holds the two together), so a record is classified identically
wherever it is looked at. The reason codes are the DLQ ``reason`` of a record that cannot be
decoded, at whatever stage, so one dashboard counts them all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

MAGIC_BYTE: Final = 0
HEADER_SIZE: Final = 5
MAX_SCHEMA_ID: Final = 2**31 - 1  # registry ids are signed 32-bit integers
_HEADER: Final = struct.Struct(">bI")

# Decode failure reasons (DLQ header ``reason``)
NOT_WIRE_FORMAT: Final = "not_wire_format"  # empty, shorter than the header, or magic byte != 0
UNKNOWN_SCHEMA_ID: Final = "unknown_schema_id"  # the registry does not know the id
NOT_AVRO: Final = "not_avro"  # the id names a JSON/Protobuf schema
INCOMPATIBLE_SCHEMA: Final = "incompatible_schema"  # the writer schema cannot be read as the reader's
UNDECODABLE: Final = "undecodable"  # the body does not decode with its writer schema
DECODE_REASONS: Final = (NOT_WIRE_FORMAT, UNKNOWN_SCHEMA_ID, NOT_AVRO, INCOMPATIBLE_SCHEMA, UNDECODABLE)


class WireFormatError(ValueError):
    """Bytes that are not a Confluent-framed Avro record, or that do not decode; ``reason`` is one of
    :data:`DECODE_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    schema_id: int
    body: bytes


def parse_frame(value: bytes | None) -> Frame:
    """The schema id and Avro body of a framed record; :class:`WireFormatError` when it is not one."""
    if not value:
        raise WireFormatError(NOT_WIRE_FORMAT, "empty payload")
    if len(value) < HEADER_SIZE:
        raise WireFormatError(NOT_WIRE_FORMAT, f"{len(value)} bytes: too short for the 5-byte header")
    if value[0] != MAGIC_BYTE:
        raise WireFormatError(NOT_WIRE_FORMAT, f"magic byte is {value[0]}, expected {MAGIC_BYTE}")
    (schema_id,) = struct.unpack_from(">I", value, 1)
    if schema_id > MAX_SCHEMA_ID:
        raise WireFormatError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not a registry id")
    return Frame(schema_id, bytes(value[HEADER_SIZE:]))


def frame(schema_id: int, body: bytes) -> bytes:
    """``body`` behind the magic byte and ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def schema_id_of(value: bytes | None) -> int | None:
    """The schema id of a framed record, or None when the bytes are not framed."""
    try:
        return parse_frame(value).schema_id
    except WireFormatError:
        return None
