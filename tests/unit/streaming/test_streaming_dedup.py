"""The event-time ranges a micro-batch looks duplicates up in (pure logic)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from streaming.dedup import time_ranges

T0 = datetime(2026, 5, 1, 12, 0)


def s(offset_s: float, length_s: float = 0) -> tuple[datetime, datetime]:
    lo = T0 + timedelta(seconds=offset_s)
    return lo, lo + timedelta(seconds=length_s)


def test_live_traffic_is_one_narrow_range() -> None:
    """A few seconds of events in two minute buckets: one range, exactly as wide as the data."""
    assert time_ranges([s(50, 9), s(60, 3)]) == [(T0 + timedelta(seconds=50), T0 + timedelta(seconds=63))]


def test_distant_spans_stay_apart() -> None:
    """A straggler from yesterday does not widen the range to a whole day."""
    yesterday = s(-86_400, 30)
    assert time_ranges([s(0, 5), yesterday]) == [yesterday, s(0, 5)]


def test_every_instant_stays_covered_when_capped() -> None:
    spans = [s(i * 3600, 10) for i in range(100)]  # 100 hours of history, 10 s each
    ranges = time_ranges(spans, max_ranges=8)
    assert len(ranges) <= 8
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))  # sorted, disjoint
    for lo, hi in spans:
        assert any(r_lo <= lo and hi <= r_hi for r_lo, r_hi in ranges)


def test_nothing_to_look_up() -> None:
    assert time_ranges([]) == []


def test_reversed_and_overlapping_spans() -> None:
    b, a = s(10, 5)
    assert time_ranges([(a, b), s(12, 10)]) == [s(10, 12)]
