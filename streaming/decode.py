"""Decoding Kafka records by the writer schema id of each record, in the JVM (spark-avro).

For each micro-batch the driver collects the distinct schema ids per topic, resolves each id once
(:class:`streaming.schema_registry.WriterSchemas`: fetched from the registry, checked for
reader/writer compatibility with Avro's own ``SchemaCompatibility``, cached) and builds one
``CASE schema_id WHEN … THEN from_avro(body, <writer schema>, avroSchema=<reader schema>)``
expression: every compatible writer version is read straight into the reader schema by Avro schema
resolution (new optional fields get their defaults, removed ones are skipped), without a Python UDF.

Rows that cannot be decoded get a ``_decode_error`` struct ``(reason, error)`` instead of failing
the query: not framed (:data:`~contracts.wire.NOT_WIRE_FORMAT`), an id the registry does not know,
a non-Avro or incompatible writer schema, or a body that does not decode (``from_avro`` runs in
PERMISSIVE mode, which yields a record of nulls; a record whose non-nullable fields are all null
cannot come from a successful decode).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from pyspark.sql import functions as F  # noqa: N812

from contracts import wire
from streaming.schema_registry import UNRESOLVED, Resolution
from streaming.sources import SourceSpec

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

AVRO_OPTIONS = {"mode": "PERMISSIVE"}


# ------------------------------------------------------------------------------ framing columns


def framed_column(value: Column) -> Column:

    return (
        value.isNotNull()
        & (F.length(value) >= wire.HEADER_SIZE)
        & (F.hex(F.substring(value, 1, 1)) == F.lit(f"{wire.MAGIC_BYTE:02X}"))
    )


def schema_id_column(value: Column) -> Column:
    """The schema id of a framed record; null when unframed or out of the registry's id range."""

    raw_id = F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long")
    return F.when(framed_column(value) & (raw_id <= wire.MAX_SCHEMA_ID), raw_id.cast("int"))


def body_column(value: Column) -> Column:

    return F.substring(value, wire.HEADER_SIZE + 1, 2**31 - 1)


def frame_error_column(value: Column) -> Column:
    """``(reason, error)`` of a record that is not framed or has no usable id, else null.

    The same rules and messages as :func:`contracts.wire.parse_frame`.
    """

    def err(reason: str, msg: Column) -> Column:
        return F.struct(F.lit(reason).alias("reason"), msg.alias("error"))

    length = F.length(value)
    raw_id = F.conv(F.hex(F.substring(value, 2, 4)), 16, 10)
    return (
        F.when(value.isNull() | (length == 0), err(wire.NOT_WIRE_FORMAT, F.lit("empty payload")))
        .when(
            length < wire.HEADER_SIZE,
            err(
                wire.NOT_WIRE_FORMAT,
                F.concat(length.cast("string"), F.lit(" bytes: too short for the 5-byte header")),
            ),
        )
        .when(
            ~framed_column(value),
            err(
                wire.NOT_WIRE_FORMAT,
                F.concat(
                    F.lit("magic byte is "),
                    F.conv(F.hex(F.substring(value, 1, 1)), 16, 10),
                    F.lit(f", expected {wire.MAGIC_BYTE}"),
                ),
            ),
        )
        .when(
            schema_id_column(value).isNull(),
            err(
                wire.UNKNOWN_SCHEMA_ID, F.concat(F.lit("schema id "), raw_id, F.lit(" is not a registry id"))
            ),
        )
    )


# ------------------------------------------------------------------------------------- decoding


def reader_struct(spark: SparkSession, reader_schema: str) -> StructType:
    """The Spark type ``from_avro`` produces for ``reader_schema``."""
    from pyspark.sql.avro.functions import from_avro
    from pyspark.sql.types import StructType

    df = spark.range(0).select(from_avro(F.lit(b""), reader_schema, AVRO_OPTIONS).alias("r"))
    dtype = df.schema["r"].dataType
    if not isinstance(dtype, StructType):
        raise TypeError(f"the reader schema decodes to {dtype.simpleString()}, not a record")
    return dtype


def decode(df: DataFrame, spec: SourceSpec, resolution: Resolution, reader_type: StructType) -> DataFrame:
    """``df`` (with ``_value``) plus ``_schema_id``, the reader fields and ``_decode_error``."""
    from pyspark.sql.avro.functions import from_avro

    value = F.col("_value")
    schema_id = F.col("_schema_id")
    body = body_column(value)
    options = {**AVRO_OPTIONS, "avroSchema": spec.reader_schema}

    record: Column | None = None
    for sid, writer in sorted(resolution.readable.items()):
        branch = from_avro(body, writer, options)
        record = F.when(schema_id == sid, branch) if record is None else record.when(schema_id == sid, branch)
    if record is None:
        record = F.lit(None).cast(reader_type)

    def err(reason: str | Column, msg: str | Column) -> Column:
        r = F.lit(reason) if isinstance(reason, str) else reason
        m = F.lit(msg) if isinstance(msg, str) else msg
        return F.struct(r.alias("reason"), m.alias("error"))

    # errors are checked in this order: framing, the id's resolution, then the body
    error = F.when(frame_error_column(value).isNotNull(), frame_error_column(value))
    for sid, (reason, message) in sorted(resolution.failed.items()):
        error = error.when(schema_id == sid, err(reason, message))
    readable_ids = sorted(resolution.readable)
    error = error.when(
        ~schema_id.isin(readable_ids) if readable_ids else F.lit(True),
        err(UNRESOLVED, F.concat(F.lit("schema id "), schema_id.cast("string"), F.lit(" not resolved yet"))),
    )
    all_required_null = F.lit(True)
    for name in spec.required_fields:
        all_required_null = all_required_null & F.col(f"_record.{name}").isNull()
    error = error.when(
        F.col("_record").isNull() | all_required_null,
        err(
            wire.UNDECODABLE,
            F.concat(F.lit("schema id "), schema_id.cast("string"), F.lit(": the body does not decode")),
        ),
    )

    with_id = df.withColumn("_schema_id", schema_id_column(value))
    with_record = with_id.withColumn("_record", record)
    decoded = with_record.withColumn("_decode_error", error)
    field_names = [f.name for f in reader_type.fields]
    return decoded.select(
        *[c for c in decoded.columns if c != "_record"],
        *[F.col(f"_record.{n}").alias(n) for n in field_names],
    )


def reader_field_docs(reader_schema: str) -> dict[str, str]:
    """Field docs of the reader schema (Bronze column comments)."""
    return {f["name"]: f.get("doc", "") for f in json.loads(reader_schema)["fields"]}
