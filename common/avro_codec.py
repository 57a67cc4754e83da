"""Avro in the Confluent wire format, for every Python client of the platform's topics.

:class:`FastAvroEncoder` turns a record into framed bytes (fastavro behind the 5-byte header of
:mod:`contracts.wire`); :class:`WireDecoder` reads framed bytes back with the writer schema fetched
by id from the registry (what every consumer does). The producer adds faster encoders on top
(``producer.encoders``); serving publishes what it scored and the online applier reads the
topics with these two.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import fastavro

from common.schema_registry import RegistryUnavailableError, SchemaRegistry
from contracts.wire import NOT_AVRO, UNDECODABLE, UNKNOWN_SCHEMA_ID, WireFormatError, frame, parse_frame


def parse_schema(schema_str: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_str))


class FastAvroEncoder:
    """Records of one registered schema → wire-format bytes (fastavro + framing)."""

    def __init__(self, schema_str: str, schema_id: int) -> None:
        self.schema_id = schema_id
        self._parsed = parse_schema(schema_str)
        self._prefix = frame(schema_id, b"")

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(self._prefix)
        fastavro.schemaless_writer(buf, self._parsed, record)
        return buf.getvalue()


class WireDecoder:
    """Decodes framed records with their writer schema, fetched by id from the registry (cached)."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._schemas: dict[int, tuple[Any, str]] = {}

    def writer_schema(self, schema_id: int) -> tuple[Any, str]:
        """(parsed schema, full record name) of a registered id."""
        if schema_id not in self._schemas:
            try:
                schema = self._registry.writer_schema(schema_id)
            except RegistryUnavailableError:
                raise
            except Exception as exc:
                raise WireFormatError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id}: {exc}") from exc
            if schema is None:
                raise WireFormatError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")
            if not schema.is_avro:
                raise WireFormatError(NOT_AVRO, f"schema id {schema_id} is {schema.schema_type}")
            raw = json.loads(schema.schema_str)
            name = raw.get("name", "") if isinstance(raw, dict) else ""
            namespace = raw.get("namespace") if isinstance(raw, dict) else None
            full = f"{namespace}.{name}" if namespace and "." not in name else name
            self._schemas[schema_id] = (fastavro.parse_schema(raw), full)
        return self._schemas[schema_id]

    def decode(self, data: bytes) -> tuple[int, str, dict[str, Any]]:
        """(schema id, record name, record) of framed bytes; :class:`WireFormatError` if impossible."""
        framed = parse_frame(data)
        schema_id, body = framed.schema_id, framed.body
        parsed, name = self.writer_schema(schema_id)
        buf = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(buf, parsed, None)
        except Exception as exc:
            raise WireFormatError(UNDECODABLE, f"schema id {schema_id}: {exc!r}") from exc
        if buf.tell() != len(body):
            raise WireFormatError(
                UNDECODABLE, f"schema id {schema_id}: {len(body) - buf.tell()} trailing bytes"
            )
        if not isinstance(record, dict):
            raise WireFormatError(UNDECODABLE, f"schema id {schema_id}: not a record")
        return schema_id, name, record
