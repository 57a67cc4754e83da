"""Reconciliation counters, the latency histogram and their Prometheus view (pure logic)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from producer.metrics import Counters, LatencyHistogram, ProducerCollector


def counters(generated: int, accepted: int, dead: int) -> Counters:
    c = Counters(generated={"transaction": generated}, accepted={"transaction": accepted})
    if dead:
        c.dead_lettered[("transaction", "producer.validate", "missing")] = dead
    return c


def test_reconciled_when_every_event_is_accepted_or_dead_lettered() -> None:
    rec = counters(10, 7, 3).reconciliation()
    assert rec["ok"] and rec["unaccounted"] == 0
    assert rec["by_event_type"]["transaction"] == {
        "generated": 10,
        "accepted": 7,
        "dead_lettered": 3,
        "ok": True,
    }


def test_not_reconciled_when_an_event_is_missing_or_counted_twice() -> None:
    assert counters(10, 7, 2).reconciliation()["unaccounted"] == 1
    assert not counters(10, 7, 2).reconciled()
    assert not counters(10, 8, 3).reconciled()


def test_per_type_mismatch_is_not_hidden_by_the_total() -> None:
    c = Counters(generated={"transaction": 5, "label": 5}, accepted={"transaction": 6, "label": 4})
    assert c.reconciliation()["unaccounted"] == 0
    assert not c.reconciled()


def test_report_groups_dead_letters_by_stage_and_reason() -> None:
    c = counters(10, 5, 2)
    c.add(c.dead_lettered, ("label", "producer.validate", "missing"))
    c.add(c.dead_lettered, ("transaction", "producer.deliver", "msg_timed_out"), 2)
    report = c.as_report()
    assert report["dead_lettered"] == {"transaction": 4, "label": 1}
    assert report["dead_lettered_by_stage_reason"] == {
        "producer.deliver/msg_timed_out": 2,
        "producer.validate/missing": 3,
    }


def test_latency_histogram_quantiles_are_bucket_upper_bounds() -> None:
    h = LatencyHistogram((0.01, 0.1, 1.0))
    assert h.quantile(0.5) is None
    for v in [0.005] * 90 + [0.05] * 9 + [5.0]:
        h.observe(v)
    assert h.count == 100
    assert h.quantile(0.5) == 0.01 and h.quantile(0.99) == 0.1 and h.quantile(1.0) == float("inf")
    assert h.cumulative() == [("0.01", 90), ("0.1", 99), ("1.0", 99), ("+Inf", 100)]


def test_collector_exposes_the_counters() -> None:
    c = counters(10, 7, 3)
    c.delivery_errors[("transactions.raw", "msg_timed_out")] = 1
    h = LatencyHistogram()
    h.observe(0.02)
    registry = CollectorRegistry()
    registry.register(
        ProducerCollector(
            c,
            h,
            topic_of=lambda t: "transactions.raw",
            injected=lambda: {"negative_amount": 2},
            in_flight=lambda: 4,
            schema_ids=lambda: {"transactions.raw-value": 12},
        )
    )
    text = generate_latest(registry).decode()
    for line in (
        'fraud_producer_events_generated_total{event_type="transaction"} 10.0',
        'fraud_producer_produced_total{event_type="transaction",topic="transactions.raw"} 7.0',
        "fraud_producer_dead_lettered_total"
        '{event_type="transaction",reason="missing",stage="producer.validate"} 3.0',
        'fraud_producer_delivery_errors_total{reason="msg_timed_out",topic="transactions.raw"} 1.0',
        'fraud_producer_injected_bad_events_total{kind="negative_amount"} 2.0',
        'fraud_producer_delivery_latency_seconds_bucket{le="0.025"} 1.0',
        "fraud_producer_delivery_latency_seconds_count 1.0",
        "fraud_producer_in_flight_messages 4.0",
        'fraud_producer_schema_id{subject="transactions.raw-value"} 12.0',
    ):
        assert line in text, line
