"""Duplicates of a micro-batch: where to look for them, and flagging them.

A duplicate is another Kafka record of the same transaction — a producer retry, a replayed file,
``make replay-dlq`` — so it carries the same event time as the original. The batch writer looks
originals up in Bronze only among rows whose event time falls in the batch's own time ranges:
partition pruning on the event date plus Delta data skipping on the event time (per-file min/max
statistics) keep the look-up to the few files that can hold an original. Live traffic makes one
narrow range per batch (the last seconds); replays of history make a few wider ones
(:func:`time_ranges`, pure logic). :func:`flag_duplicates` then marks each record of the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# ranges closer than this are merged (fewer predicates, the same files)
MERGE_GAP = timedelta(seconds=60)
# upper bound on the number of ranges in one look-up predicate
MAX_RANGES = 64
# the identity of a Kafka record
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")


def time_ranges(
    spans: Iterable[tuple[datetime, datetime]], gap: timedelta = MERGE_GAP, max_ranges: int = MAX_RANGES
) -> list[tuple[datetime, datetime]]:
    """Merge ``(low, high)`` spans into at most ``max_ranges`` disjoint, sorted ranges covering them.

    Spans closer than ``gap`` are merged; if more than ``max_ranges`` remain, the closest
    neighbours are merged until they fit (every input instant stays covered).
    """
    ordered = sorted((lo, hi) if lo <= hi else (hi, lo) for lo, hi in spans)
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in ordered:
        if merged and lo - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    while len(merged) > max(1, max_ranges):
        # merge the pair separated by the smallest gap
        i = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        merged[i : i + 2] = [(merged[i][0], max(merged[i][1], merged[i + 1][1]))]
    return merged


def flag_duplicates(checked: DataFrame, existing: DataFrame, key_column: str) -> DataFrame:
    """``checked`` plus ``_already`` (this very Kafka record is in Bronze) and ``_dup`` (another record
    of its key is, in Bronze or earlier in the batch by topic, partition and offset). ``existing``
    holds the Bronze rows that may share a key (``_e_key`` and the ``_e_`` Kafka coordinates)."""
    from pyspark.sql import functions as F  # noqa: N812

    key = F.col(key_column)
    valid = F.col("_decode_error").isNull() & F.col("_quality").isNull()
    same_record = existing.select(
        F.col("_e_key").alias("_a_key"),
        *[F.col(f"_e_{c}").alias(f"_a_{c}") for c in KAFKA_COLUMNS],
        F.lit(True).alias("_a_hit"),
    )
    seen_keys = existing.select(F.col("_e_key").alias("_s_key"), F.lit(True).alias("_s_hit")).distinct()
    on_record = (key == F.col("_a_key")) & valid
    for c in KAFKA_COLUMNS:
        on_record = on_record & (F.col(c) == F.col(f"_a_{c}"))
    # keys seen more than once in the batch, with their first record (a narrow aggregation:
    # cheaper than ranking the whole batch, and the result is tiny)
    coords = F.struct(*KAFKA_COLUMNS)
    repeated = (
        checked.where(valid)
        .groupBy(key.alias("_r_key"))
        .agg(F.count(F.lit(1)).alias("_r_n"), F.min(coords).alias("_r_first"))
        .where(F.col("_r_n") > 1)
    )
    joined = (
        checked.join(same_record, on_record, "left")
        .join(seen_keys, (key == F.col("_s_key")) & valid, "left")
        .join(F.broadcast(repeated), (key == F.col("_r_key")) & valid, "left")
    )
    already = F.coalesce(F.col("_a_hit"), F.lit(False))
    later_copy = F.col("_r_key").isNotNull() & (coords != F.col("_r_first"))
    dup = valid & ~already & (F.coalesce(F.col("_s_hit"), F.lit(False)) | later_copy)
    return joined.select(*checked.columns, already.alias("_already"), dup.alias("_dup"))
