"""The online applier's lag gauge: a partition without a position yet counts from its committed
offset, so a quiet topic does not report its whole history as lag (and trip
OnlineStateApplierStalled)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from ml.online_applier import ApplierMetrics, _update_lag

INVALID = -1001  # librdkafka's OFFSET_INVALID


class _Consumer:
    """The four calls _update_lag makes, over fixed offsets."""

    def __init__(self, parts: dict[tuple[str, int], tuple[int, int, int, int]]) -> None:
        self.parts = parts  # (topic, partition) -> (position, committed, low, high)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self.parts]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.parts[tp.topic, tp.partition][0]) for tp in tps]

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.parts[tp.topic, tp.partition][1]) for tp in tps]

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        _pos, _com, lo, hi = self.parts[tp.topic, tp.partition]
        return lo, hi


def _lag(parts: dict[tuple[str, int], tuple[int, int, int, int]]) -> dict[str, float]:
    metrics = ApplierMetrics()
    _update_lag(_Consumer(parts), metrics)  # type: ignore[arg-type]
    return {
        s.labels["topic"]: s.value
        for fam in metrics.registry.collect()
        if fam.name == "fraud_online_applier_lag_messages"
        for s in fam.samples
    }


def test_a_quiet_partition_counts_from_its_committed_offset() -> None:
    lag = _lag({("labels", 0): (INVALID, 1766, 0, 1766), ("labels", 1): (INVALID, 1600, 0, 1684)})
    assert lag == {"labels": 84}


def test_a_fetched_partition_counts_from_its_position() -> None:
    assert _lag({("raw", 0): (900, 500, 0, 1000)}) == {"raw": 100}


def test_a_group_that_never_committed_counts_from_the_low_watermark() -> None:
    assert _lag({("raw", 0): (INVALID, INVALID, 200, 1000)}) == {"raw": 800}
