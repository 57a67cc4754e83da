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

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from common.avro_codec import FastAvroEncoder, WireDecoder, parse_schema
from common.schema_registry import SchemaRegistry
from contracts.wire import frame

log = logging.getLogger(__name__)
__all__ = [
    "CompiledEncoder",
    "ConfluentEncoder",
    "Encoder",
    "FastAvroEncoder",
    "WireDecoder",
    "make_encoder",
    "parse_schema",
]


class Encoder(Protocol):
    schema_id: int

    def __call__(self, record: Mapping[str, Any]) -> bytes: ...


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
