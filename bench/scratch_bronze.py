"""Scratch lakehouse schemas: Bronze-shaped Delta tables under ``s3://<lakehouse>/_scratch/``.

The dbt integration tests and the ``transforms`` benchmark build Silver and Gold from their own
Bronze (``bronze_<suffix>``) so they never touch the platform's data. The rows have exactly the
columns and types the streaming job writes (``streaming/``), written by Spark's Delta writer and
registered in Trino's file metastore; ``drop_schemas`` removes every trace from the catalog.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from common import object_store, trino_client
from common.settings import s3_settings, trino_settings

PREFIX = "_scratch"


def bronze_location(suffix: str, table: str | None = None) -> str:
    bucket = s3_settings().lakehouse_bucket
    return f"s3://{bucket}/{PREFIX}/bronze_{suffix}/" + (table or "")


def write_bronze(
    spark: Any, suffix: str, txn: pd.DataFrame, lab: pd.DataFrame, ingested_at: datetime
) -> None:
    """Append Bronze rows (the streaming job's columns) for these transactions and labels."""
    from pyspark.sql import functions as sf

    from streaming.session import s3a_uri

    t = txn.copy()
    t["ingested_at"] = pd.Timestamp(ingested_at)
    t["kafka_partition"] = 0
    t["kafka_offset"] = np.arange(len(t), dtype=np.int64)
    t["amount"] = t["amount"].map(lambda v: f"{v:.2f}")
    for col in ("latitude", "longitude"):  # Spark keeps a pandas NaN as NaN: Bronze has nulls
        t[col] = t[col].astype(object).where(t[col].notna(), None)
    df = (
        spark.createDataFrame(t)
        .withColumn("amount", sf.col("amount").cast("decimal(12,2)"))
        .withColumn("event_date", sf.to_date("event_time"))
    )
    df.write.format("delta").mode("append").partitionBy("event_date").save(
        s3a_uri(f"{PREFIX}/bronze_{suffix}/transactions")
    )
    lb = lab.copy()
    lb["ingested_at"] = pd.Timestamp(ingested_at)
    lb["is_fraud"] = lb["is_fraud"].astype(bool)
    spark.createDataFrame(lb).write.format("delta").mode("append").save(
        s3a_uri(f"{PREFIX}/bronze_{suffix}/labels")
    )


def register_bronze(suffix: str) -> None:
    """Schema ``bronze_<suffix>`` in Trino with its two tables registered at their location."""
    cat = trino_settings().trino_catalog
    trino_client.rows(f"CREATE SCHEMA {cat}.bronze_{suffix} WITH (location = '{bronze_location(suffix)}')")
    for table in ("transactions", "labels"):
        trino_client.rows(
            f"CALL {cat}.system.register_table(schema_name => 'bronze_{suffix}', table_name => '{table}', "
            f"table_location => '{bronze_location(suffix, table)}')"
        )


def schema_exists(schema: str) -> bool:
    cat = trino_settings().trino_catalog
    return bool(
        trino_client.rows(
            f"SELECT 1 FROM {cat}.information_schema.schemata WHERE schema_name = ?",  # noqa: S608
            (schema,),
        )
    )


def drop_schemas(suffix: str) -> None:
    """Drop ``gold_<suffix>``, ``silver_<suffix>`` and unregister ``bronze_<suffix>``."""
    cat = trino_settings().trino_catalog
    for schema in (f"gold_{suffix}", f"silver_{suffix}", f"bronze_{suffix}"):
        if not schema_exists(schema):
            continue
        tables = trino_client.rows(
            f"SELECT table_name, table_type FROM {cat}.information_schema.tables "  # noqa: S608
            "WHERE table_schema = ?",
            (schema,),
        )
        for name, kind in tables:
            if schema.startswith("bronze_"):
                trino_client.rows(
                    f"CALL {cat}.system.unregister_table(schema_name => '{schema}', table_name => '{name}')"
                )
            else:
                trino_client.rows(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {cat}.{schema}.{name}")
        trino_client.rows(f"DROP SCHEMA {cat}.{schema}")


def remove_bronze_files(suffix: str) -> int:
    """Delete the scratch Bronze objects of ``suffix`` (after ``drop_schemas``); returns the count."""
    return object_store.delete_prefix(f"{PREFIX}/bronze_{suffix}/")
