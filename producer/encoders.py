"""Avro encoders of validated records, and the decoder of framed records (DLQ replay).

Encoders turn a validated record into Confluent wire-format bytes (:mod:`contracts.wire`);
:class:`WireDecoder` reads them back with the writer schema fetched from the registry by the id in
the header (what every consumer does).

Three encoders produce byte-identical output (``tests/unit/producer/test_producer_encoders.py``
checks it on generated records; ``PRODUCER_SERIALIZER`` picks one):

* :class:`CompiledEncoder` (``compiled``, the default) — an encoder generated from the schema
  (:mod:`producer.avro_codegen`) behind the framing, with the id the registry returned at start-up;
  the fastest (see the bench); falls back to fastavro for a schema it cannot compile;
* :class:`FastAvroEncoder` (``fastavro``) — fastavro's ``schemaless_writer`` behind the framing;
* :class:`ConfluentEncoder` (``confluent``) — confluent-kafka's ``AvroSerializer`` with
  ``auto.register.schemas=False``: it looks the schema up in the registry once, then encodes
  (with its per-record rule/context machinery: the slowest).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import fastavro

from common.schema_registry import RegistryUnavailableError, SchemaRegistry
from contracts.wire import NOT_AVRO, UNDECODABLE, UNKNOWN_SCHEMA_ID, WireFormatError, frame, parse_frame

log = logging.getLogger(__name__)


def parse_schema(schema_str: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_str))


class Encoder(Protocol):
    schema_id: int

    def __call__(self, record: Mapping[str, Any]) -> bytes: ...


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


class CompiledEncoder:
    """Records of one registered schema → wire-format bytes (generated encoder + framing)."""

    def __init__(self, schema_str: str, schema_id: int) -> None:
        from producer.avro_codegen import compile_encoder

        self.schema_id = schema_id
        self._encode = compile_encoder(schema_str, frame(schema_id, b""))

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        return self._encode(record)


def make_encoder(
    serializer: str,
    schema_str: str,
    schema_id: int,
    *,
    registry: SchemaRegistry | None = None,
    topic: str = "",
) -> Encoder:
    """The encoder ``PRODUCER_SERIALIZER`` names (compiled falls back to fastavro if it must)."""
    if serializer == "confluent":
        if registry is None:
            raise ValueError("the confluent serializer needs the schema registry")
        return ConfluentEncoder(registry, schema_str, schema_id, topic)
    if serializer == "compiled":
        from producer.avro_codegen import UnsupportedSchemaError

        try:
            return CompiledEncoder(schema_str, schema_id)
        except UnsupportedSchemaError as exc:
            log.warning("schema id %s not compiled (%s): fastavro", schema_id, exc)
    return FastAvroEncoder(schema_str, schema_id)


class ConfluentEncoder:
    """confluent-kafka's ``AvroSerializer`` for ``topic``'s value subject (TopicNameStrategy)."""

    def __init__(self, registry: SchemaRegistry, schema_str: str, schema_id: int, topic: str) -> None:
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        self.schema_id = schema_id
        self._serializer = AvroSerializer(
            registry.client,
            schema_str,
            conf={"auto.register.schemas": False, "use.latest.version": False},
        )
        self._ctx = SerializationContext(topic, MessageField.VALUE)

    def __call__(self, record: Mapping[str, Any]) -> bytes:
        out = self._serializer(record, self._ctx)
        assert out is not None
        return out


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
