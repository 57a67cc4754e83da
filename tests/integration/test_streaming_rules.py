"""The stream's Spark expressions and their plain-Python statements agree row by row: the quality
rules (streaming.quality) and the Confluent framing (contracts.wire ↔ streaming.decode)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from streaming_support import txn

from contracts.wire import WireFormatError, parse_frame
from streaming.settings import StreamingSettings

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]


def test_quality_rules_mean_the_same_in_spark_and_python(spark: Any) -> None:
    """The two interpretations of the declarative rules agree row by row."""
    from pyspark.sql import functions as F  # noqa: N812

    from streaming.decode import reader_struct
    from streaming.quality import failure_column, first_failure, transaction_rules
    from streaming.sources import source_specs

    settings = StreamingSettings()
    rules = transaction_rules(settings)
    ref = datetime(2026, 6, 1, 12, tzinfo=UTC)
    t0 = ref - timedelta(minutes=5)
    cases = [
        txn(1, event_time=t0),
        txn(2, event_time=t0, card_id=None),
        txn(3, event_time=t0, card_id=" "),
        txn(4, event_time=t0, amount=Decimal("0.00")),
        txn(5, event_time=t0, amount=Decimal("-5.00")),
        txn(6, event_time=t0, currency="ABC"),
        txn(7, event_time=ref + timedelta(seconds=301)),
        txn(8, event_time=ref + timedelta(seconds=300)),
        txn(9, event_time=ref - timedelta(days=1826)),
        txn(10, event_time=t0, channel="atm"),
        txn(11, event_time=t0, mcc="12a4"),
        txn(12, event_time=t0, country="FRA"),
        txn(13, event_time=t0, latitude=-90.5),
        txn(14, event_time=t0, longitude=float("nan")),
        txn(15, event_time=t0, mcc=None, channel=None, country=None, latitude=None, longitude=None),
        txn(16, event_time=None, currency="XXX"),
        txn(17, event_time=t0, card_id="c" * 257),
        txn(18, event_time=t0, device_id=" \t"),
        txn(19, event_time=t0, merchant_name="m" * 513),
        txn(20, event_time=t0, customer_id="\u00a0", device_id="x" * 256),  # valid: \u00a0 is not blank
    ]
    schema = reader_struct(spark, source_specs(settings)[0].reader_schema)
    df = spark.createDataFrame(cases, schema).withColumn("ref", F.lit(ref.replace(tzinfo=None)))
    got = df.select("transaction_id", failure_column(rules, F.col("ref")).alias("f")).collect()
    spark_says = {r["transaction_id"]: (r["f"]["reason"], r["f"]["field"]) if r["f"] else None for r in got}
    python_says = {}
    for c in cases:
        f = first_failure(rules, c, ref)
        python_says[c["transaction_id"]] = (f.reason, f.field) if f else None
    assert spark_says == python_says
    assert sum(v is None for v in python_says.values()) == 4  # the valid ones, so the test can fail


def test_framing_means_the_same_in_spark_and_python(spark: Any) -> None:
    from pyspark.sql import functions as F  # noqa: N812

    from streaming.decode import body_column, frame_error_column, schema_id_column

    values = [None, b"", b"\x00", b"\x00\x00\x00\x00", b"\x07\x00\x00\x00\x01ab", b"\x00\x00\x00\x01\x00",
              b"\x00\x00\x00\x30\x39body", b"\x00\xff\xff\xff\xffx", b"{}"]  # fmt: skip
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, value binary")
    rows = df.select(
        "i",
        schema_id_column(F.col("value")).alias("sid"),
        body_column(F.col("value")).alias("body"),
        frame_error_column(F.col("value")).alias("err"),
    ).collect()
    for r in sorted(rows, key=lambda r: r["i"]):
        try:
            f = parse_frame(values[r["i"]])
            assert (r["err"], r["sid"], bytes(r["body"])) == (None, f.schema_id, f.body)
        except WireFormatError as exc:
            assert r["err"] is not None, values[r["i"]]
            assert (r["err"]["reason"], r["err"]["error"]) == (exc.reason, str(exc))
