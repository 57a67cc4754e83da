"""The producer's counters and its Prometheus view.

The hot path only increments plain Python ints (:class:`Counters`) and a fixed-bucket latency
histogram; :class:`ProducerCollector` turns them into Prometheus metrics when /metrics is scraped,
so metrics cost nothing per record beyond the increments. The same counters reconcile the run:
``accepted + dead_lettered == generated`` for each event type.

Metrics (Prometheus conventions, base units):

* ``fraud_producer_events_generated_total{event_type}`` — events taken from the source
* ``fraud_producer_produced_total{topic,event_type}`` — acknowledged by the broker (acks=all)
* ``fraud_producer_dead_lettered_total{event_type,stage,reason}`` — acknowledged on the DLQ
* ``fraud_producer_delivery_errors_total{topic,reason}`` — records the broker never took
* ``fraud_producer_dlq_write_failures_total`` — DLQ writes that failed (spooled to disk)
* ``fraud_producer_injected_bad_events_total{kind}`` — ``--inject-bad-rate`` corruptions
* ``fraud_producer_delivery_latency_seconds`` — produce() → delivery report, histogram
* ``fraud_producer_in_flight_messages`` — records waiting in librdkafka's queue
* ``fraud_producer_schema_id{subject}`` — the registered schema id in use
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip


class LatencyHistogram:
    """Cumulative-on-read histogram with fixed upper bounds; ``observe`` is a bisect + 2 adds."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last slot: +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (an over-estimate, like Prometheus')."""
        n = self.count
        if n == 0:
            return None
        rank, seen = q * n, 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        acc = 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out


@dataclass
class Counters:
    """What happened to every event; the source of truth for metrics, report and reconciliation."""

    generated: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    # (event_type, stage, reason) → records acknowledged on the DLQ
    dead_lettered: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (topic, reason) → records the target topic never acknowledged
    delivery_errors: dict[tuple[str, str], int] = field(default_factory=dict)
    dlq_write_failures: int = 0
    avro_bytes: int = 0  # value bytes handed to Kafka for target topics (wire format)

    def add(self, table: dict[Any, int], key: Any, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def dead_lettered_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (event_type, _, _), n in list(self.dead_lettered.items()):
            out[event_type] = out.get(event_type, 0) + n
        return out

    def reconciliation(self) -> dict[str, Any]:
        """``accepted + dead_lettered == generated`` per event type and in total."""
        dead = self.dead_lettered_by_type()
        types = sorted(set(self.generated) | set(self.accepted) | set(dead))
        per_type = {}
        for t in types:
            gen, acc, dl = self.generated.get(t, 0), self.accepted.get(t, 0), dead.get(t, 0)
            per_type[t] = {"generated": gen, "accepted": acc, "dead_lettered": dl, "ok": acc + dl == gen}
        generated = sum(self.generated.values())
        accepted = sum(self.accepted.values())
        dead_total = sum(dead.values())
        return {
            "generated": generated,
            "accepted": accepted,
            "dead_lettered": dead_total,
            "unaccounted": generated - accepted - dead_total,
            "by_event_type": per_type,
            "ok": all(v["ok"] for v in per_type.values()) and accepted + dead_total == generated,
        }

    def reconciled(self) -> bool:
        return bool(self.reconciliation()["ok"])

    def as_report(self) -> dict[str, Any]:
        by_stage_reason: dict[str, int] = {}
        for (_, stage, reason), n in sorted(self.dead_lettered.items()):
            key = f"{stage}/{reason}"
            by_stage_reason[key] = by_stage_reason.get(key, 0) + n
        return {
            "generated": dict(self.generated),
            "accepted": dict(self.accepted),
            "dead_lettered": self.dead_lettered_by_type(),
            "dead_lettered_by_stage_reason": by_stage_reason,
            "delivery_errors": {
                f"{topic}/{reason}": n for (topic, reason), n in self.delivery_errors.items()
            },
            "dlq_write_failures": self.dlq_write_failures,
        }


class ProducerCollector(Collector):
    """Exposes :class:`Counters` (read at scrape time) as Prometheus metrics."""

    def __init__(
        self,
        counters: Counters,
        latency: LatencyHistogram,
        topic_of: Callable[[str], str],
        injected: Callable[[], dict[str, int]] = dict,
        in_flight: Callable[[], int] = lambda: 0,
        schema_ids: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self._c = counters
        self._latency = latency
        self._topic_of = topic_of
        self._injected = injected
        self._in_flight = in_flight
        self._schema_ids = schema_ids

    def collect(self) -> Iterator[Any]:
        c = self._c
        gen = CounterMetricFamily(
            "fraud_producer_events_generated", "Events taken from the source", labels=["event_type"]
        )
        for t, n in dict(c.generated).items():
            gen.add_metric([t], n)
        yield gen
        prod = CounterMetricFamily(
            "fraud_producer_produced",
            "Records acknowledged by the broker (acks=all) on their target topic",
            labels=["topic", "event_type"],
        )
        for t, n in dict(c.accepted).items():
            prod.add_metric([self._topic_of(t), t], n)
        yield prod
        dead = CounterMetricFamily(
            "fraud_producer_dead_lettered",
            "Records acknowledged on the dead-letter topic, by stage and reason",
            labels=["event_type", "stage", "reason"],
        )
        for (t, stage, reason), n in dict(c.dead_lettered).items():
            dead.add_metric([t, stage, reason], n)
        yield dead
        errs = CounterMetricFamily(
            "fraud_producer_delivery_errors",
            "Records their target topic never acknowledged (then dead-lettered)",
            labels=["topic", "reason"],
        )
        for (topic, reason), n in dict(c.delivery_errors).items():
            errs.add_metric([topic, reason], n)
        yield errs
        yield CounterMetricFamily(
            "fraud_producer_dlq_write_failures",
            "Dead-letter writes that failed (the record was spooled to a local file)",
            value=c.dlq_write_failures,
        )
        inj = CounterMetricFamily(
            "fraud_producer_injected_bad_events",
            "Events corrupted on purpose (--inject-bad-rate)",
            labels=["kind"],
        )
        for kind, n in self._injected().items():
            inj.add_metric([kind], n)
        yield inj
        h = self._latency
        hist = HistogramMetricFamily(
            "fraud_producer_delivery_latency_seconds", "Time from produce() to the broker's acknowledgement"
        )
        hist.add_metric([], buckets=h.cumulative(), sum_value=h.total)
        yield hist
        yield GaugeMetricFamily(
            "fraud_producer_in_flight_messages",
            "Records waiting in the client queue",
            value=self._in_flight(),
        )
        ids = GaugeMetricFamily("fraud_producer_schema_id", "Registered schema id in use", labels=["subject"])
        for subject, sid in self._schema_ids().items():
            ids.add_metric([subject], sid)
        yield ids
