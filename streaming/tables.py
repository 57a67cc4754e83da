"""The Bronze Delta tables: explicit schema, created up front, registered in Trino.

A Bronze table has the reader schema's fields (Spark types as ``from_avro`` produces them, the
``.avsc`` docs as column comments), the partition date, and the ingestion metadata that makes
every row traceable to one Kafka record. Tables are append-only (``delta.appendOnly``); a field
added to the reader schema is added to the table at start-up (additive evolution only — a changed
type is refused with the column named).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from common.settings import trino_settings
from streaming.decode import reader_field_docs, reader_struct
from streaming.sources import SourceSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DataType, StructField, StructType

log = logging.getLogger(__name__)

# (name, Spark SQL type, comment): appended after the reader fields and the partition date
METADATA_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("kafka_topic", "string", "Kafka topic the record was read from"),
    ("kafka_partition", "int", "Kafka partition of the record"),
    ("kafka_offset", "bigint", "Kafka offset of the record (with topic and partition: its identity)"),
    ("kafka_timestamp", "timestamp", "Kafka record timestamp (producer create time), UTC"),
    ("schema_id", "int", "Schema Registry id of the writer schema the record was encoded with"),
    ("ingested_at", "timestamp", "Start of the micro-batch that ingested the record, UTC"),
    ("batch_id", "bigint", "Micro-batch id of the streaming query (Delta txnVersion of the write)"),
)

TABLE_PROPERTIES = {
    "delta.appendOnly": "true",
    # checkpoints of the Delta log keep the many small streaming commits cheap to read
    "delta.checkpointInterval": "20",
}


def bronze_schema(spark: SparkSession, spec: SourceSpec) -> StructType:
    from pyspark.sql.types import (
        DateType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    types = {"string": StringType(), "int": IntegerType(), "bigint": LongType(), "timestamp": TimestampType()}

    docs = reader_field_docs(spec.reader_schema)
    fields = [
        StructField(f.name, f.dataType, True, {"comment": docs.get(f.name, "")})
        for f in reader_struct(spark, spec.reader_schema).fields
    ]
    fields.append(
        StructField(
            spec.date_column, DateType(), True, {"comment": f"UTC date of {spec.time_column} (partition)"}
        )
    )
    for name, sql_type, comment in METADATA_COLUMNS:
        fields.append(StructField(name, types[sql_type], True, {"comment": comment}))
    return StructType(fields)


def _same_type(a: DataType, b: DataType) -> bool:
    return a.simpleString() == b.simpleString()


def ensure_table(spark: SparkSession, spec: SourceSpec) -> list[str]:
    """Create the table if absent; add reader fields it lacks. Returns the columns added."""
    from delta.tables import DeltaTable

    wanted = bronze_schema(spark, spec)
    if not DeltaTable.isDeltaTable(spark, spec.table_uri):
        builder = DeltaTable.createIfNotExists(spark).location(spec.table_uri)
        for f in wanted.fields:
            builder = builder.addColumn(f.name, f.dataType, nullable=True, comment=f.metadata.get("comment"))
        builder = builder.partitionedBy(spec.date_column).comment(
            f"Bronze {spec.event_type}s from Kafka topic {spec.topic} (append-only, exactly-once)"
        )
        for k, v in TABLE_PROPERTIES.items():
            builder = builder.property(k, v)
        builder.execute()
        log.info("created Delta table %s", spec.table_uri)
        return []
    have = {f.name: f for f in DeltaTable.forPath(spark, spec.table_uri).toDF().schema.fields}
    missing: list[StructField] = []
    for f in wanted.fields:
        if f.name not in have:
            missing.append(f)
        elif not _same_type(have[f.name].dataType, f.dataType):
            raise ValueError(
                f"{spec.table_uri}: column {f.name} is {have[f.name].dataType.simpleString()} but the "
                f"reader schema makes it {f.dataType.simpleString()}; only additive changes are applied"
            )
    if missing:
        cols = ", ".join(
            f"`{f.name}` {f.dataType.simpleString()} COMMENT '{_sql_str(f.metadata.get('comment', ''))}'"
            for f in missing
        )
        spark.sql(f"ALTER TABLE delta.`{spec.table_uri}` ADD COLUMNS ({cols})")
        log.info("added columns to %s: %s", spec.table_uri, [f.name for f in missing])
    return [f.name for f in missing]


def _sql_str(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


# ---------------------------------------------------------------------------------------- Trino


def trino_cursor() -> Any:
    import trino

    t = trino_settings()
    conn = trino.dbapi.connect(
        host=t.trino_host, port=t.trino_port, user=t.trino_user, catalog=t.trino_catalog
    )
    return conn.cursor()


def _lit(text: str) -> str:
    """A Trino string literal."""
    return "'" + text.replace("'", "''") + "'"


def _location_of(cur: Any, catalog: str, schema: str, table: str) -> str | None:
    cur.execute(f'SHOW CREATE TABLE "{catalog}"."{schema}"."{table}"')
    ddl = cur.fetchall()[0][0]
    m = re.search(r"location\s*=\s*'([^']+)'", ddl)
    return m.group(1) if m else None


def register_in_trino(schema: str, table: str, location_s3: str) -> bool:
    """Register the Delta table at ``location_s3`` as ``<catalog>.<schema>.<table>`` (idempotent).

    Returns True when it registered it now. A table of that name at another location is an error.
    """
    catalog = trino_settings().trino_catalog
    cur = trino_cursor()
    cur.execute(
        f"SELECT count(*) FROM {catalog}.information_schema.tables WHERE table_schema = ? AND table_name = ?",  # noqa: S608 (catalog from settings)
        (schema, table),
    )
    if cur.fetchall()[0][0]:
        have = _location_of(cur, catalog, schema, table)
        if have and have.rstrip("/") != location_s3.rstrip("/"):
            raise RuntimeError(f"Trino table {catalog}.{schema}.{table} points at {have}, not {location_s3}")
        return False
    try:
        # CALL takes no bind parameters: literals, quoted
        cur.execute(
            f"CALL {catalog}.system.register_table(schema_name => {_lit(schema)}, "
            f"table_name => {_lit(table)}, table_location => {_lit(location_s3)})"
        )
        cur.fetchall()
    except Exception as exc:  # a concurrent registration of the same table is fine
        if "already exists" not in str(exc):
            raise
        return False
    log.info("registered %s.%s.%s at %s", catalog, schema, table, location_s3)
    return True


def unregister_from_trino(schema: str, table: str) -> None:
    """Forget the table in Trino's metastore (the Delta files stay)."""
    catalog = trino_settings().trino_catalog
    cur = trino_cursor()
    cur.execute(
        f"CALL {catalog}.system.unregister_table(schema_name => {_lit(schema)}, table_name => {_lit(table)})"
    )
    cur.fetchall()
