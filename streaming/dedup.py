"""Where to look for duplicates: the event-time ranges of a micro-batch (pure logic).

A duplicate is another Kafka record of the same transaction — a producer retry, a replayed file,
``make replay-dlq`` — so it carries the same event time as the original. The batch writer looks
originals up in Bronze only among rows whose event time falls in the batch's own time ranges:
partition pruning on the event date plus Delta data skipping on the event time (per-file min/max
statistics) keep the look-up to the few files that can hold an original. Live traffic makes one
narrow range per batch (the last seconds); replays of history make a few wider ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

# ranges closer than this are merged (fewer predicates, the same files)
MERGE_GAP = timedelta(seconds=60)
# upper bound on the number of ranges in one look-up predicate
MAX_RANGES = 64


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
