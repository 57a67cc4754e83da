"""The producer against the real local Kafka and schema registry.

Every test works on its own topics (``it.<unique>.raw|labels|dlq``) and subjects, created here and
deleted afterwards, so tests never read each other's records.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Producer
from kafka_support import (
    K,
    decode_with_writer_schema,
    end_offsets,
    good_event,
    produce,
    read_all,
    registry,
    settings,
    v1_schema,
)

from common.schema_registry import SchemaRegistrationError
from contracts.avro import load_schema_str, subject_for
from contracts.dlq import CONTENT_AVRO, dlq_headers, header_dict
from contracts.events import to_json_bytes
from contracts.wire import frame, parse_frame
from producer.encoders import CompiledEncoder
from producer.pipeline import Pipeline, StartupError, Topics, producer_config
from producer.service import replay_dead_letters, replay_file, start
from producer.sources import simulator_events
from producer.stream import run_stream

pytestmark = pytest.mark.usefixtures("running_stack")


# --------------------------------------------------------------------------- round trip


def test_round_trip_decodes_with_the_registered_writer_schema_and_keeps_each_card_in_order(
    topics: Topics,
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    for event_type, raw in simulator_events(seed=11, days=8):
        events.append((event_type, raw))
        if len(events) >= 3000 and any(t == "label" for t, _ in events):
            break
    p = produce(topics, events)
    assert p.counters.reconciled()
    sent_tx = [raw for t, raw in events if t == "transaction"]
    sent_labels = [raw for t, raw in events if t == "label"]

    raw_msgs = read_all(topics.raw)
    assert len(raw_msgs) == len(sent_tx)
    by_id = {raw["transaction_id"]: raw for raw in sent_tx}
    partitions_of_card: dict[str, set[int]] = {}
    order_of_card: dict[str, list[str]] = {}
    schema_ids = set()
    for msg in raw_msgs:
        schema_id, record = decode_with_writer_schema(msg.value())
        schema_ids.add(schema_id)
        sent = by_id[record["transaction_id"]]
        assert msg.key() == sent["card_id"].encode()
        assert record["amount"] == Decimal(str(sent["amount"]))  # exact, from the float repr
        assert record["event_time"] == sent["event_time"]
        assert {k: v for k, v in record.items() if k not in ("amount", "event_time")} == {
            k: v for k, v in sent.items() if k not in ("amount", "event_time")
        }
        partitions_of_card.setdefault(record["card_id"], set()).add(msg.partition())
        order_of_card.setdefault(record["card_id"], []).append(record["transaction_id"])
    assert len(schema_ids) == 1
    assert all(len(p) == 1 for p in partitions_of_card.values()), "a card spans partitions"
    for card, received in order_of_card.items():
        assert received == [r["transaction_id"] for r in sent_tx if r["card_id"] == card], card

    label_msgs = read_all(topics.labels)
    decoded_labels = [decode_with_writer_schema(m.value())[1] for m in label_msgs]
    assert sorted(r["transaction_id"] for r in decoded_labels) == sorted(
        r["transaction_id"] for r in sent_labels
    )
    assert all(r["is_fraud"] is True for r in decoded_labels)


# --------------------------------------------------------------------------- dead letters


def test_invalid_events_go_to_the_dlq_with_reason_headers_and_their_original_json(topics: Topics) -> None:
    bad = [
        ({k: v for k, v in good_event(100).items() if k != "card_id"}, "missing", "card_id"),
        (good_event(101, amount=-12.5), "out_of_range", "amount"),
        (good_event(102, currency="EUX"), "unknown_currency", "currency"),
        (good_event(103, event_time="2025-13-45T25:61:00Z"), "bad_timestamp", "event_time"),
        (good_event(104, latitude="north"), "wrong_type", "latitude"),
    ]
    good = [("transaction", good_event(i)) for i in range(40)]
    events = good[:20] + [("transaction", ev) for ev, _, _ in bad] + good[20:]
    before = datetime.now(UTC) - timedelta(seconds=5)
    p = produce(topics, events)
    rec = p.counters.reconciliation()
    assert (rec["generated"], rec["accepted"], rec["dead_lettered"], rec["ok"]) == (45, 40, 5, True)
    assert len(read_all(topics.raw)) == 40

    dlq = read_all(topics.dlq)
    assert len(dlq) == 5
    by_value = {m.value(): m for m in dlq}
    for event, reason, field in bad:
        msg = by_value[to_json_bytes(event)]  # the original event, byte for byte
        h = header_dict(msg.headers())
        assert (h["stage"], h["reason"], h["field"]) == ("producer.validate", reason, field)
        assert h["source"] == "it-test" and h["event_type"] == "transaction"
        assert h["content_type"] == "application/json" and h["error"].startswith(f"{field}:")
        assert datetime.fromisoformat(h["error_time"].replace("Z", "+00:00")) > before
        assert msg.key() == (event["card_id"].encode() if "card_id" in event else None)


def test_a_serialisation_failure_is_dead_lettered_with_the_original_event(topics: Topics) -> None:
    # The registered schema demands a field the validation model does not produce.
    schema = json.loads(load_schema_str("transaction"))
    schema["fields"].append({"name": "risk_flag", "type": "string", "doc": "required, no default"})
    p = produce(
        topics,
        [("transaction", good_event(1))],
        event_types=("transaction",),
        schemas={"transaction": json.dumps(schema)},
    )
    assert p.counters.reconciled()
    [msg] = read_all(topics.dlq)
    h = header_dict(msg.headers())
    assert (h["stage"], h["reason"], h["field"]) == ("producer.serialize", "serialize_error", "risk_flag")
    assert "risk_flag" in h["error"]
    assert msg.value() == to_json_bytes(good_event(1))
    assert end_offsets(topics.raw) == 0


def test_undeliverable_records_are_dead_lettered_with_their_avro_bytes(topics: Topics) -> None:
    missing_topic = f"{topics.raw}.absent"
    with pytest.raises(StartupError, match=f"{missing_topic}.*do not exist"):
        start("it", settings=settings(), topics=Topics(missing_topic, topics.labels, topics.dlq))
    reg = registry().ensure_subject(
        subject_for(topics.raw), load_schema_str("transaction"), "FULL_TRANSITIVE"
    )
    pipeline = Pipeline(
        producer_config(K.kafka_bootstrap_servers, settings(delivery_timeout_ms=3000)),
        {"transaction": CompiledEncoder(reg.schema_str, reg.schema_id)},
        Topics(missing_topic, topics.labels, topics.dlq),
        source="it-deliver",
    )
    run_stream(pipeline, [("transaction", good_event(i)) for i in range(3)])
    assert pipeline.flush(30) == 0
    rec = pipeline.counters.reconciliation()
    assert (rec["accepted"], rec["dead_lettered"], rec["ok"]) == (0, 3, True)
    dlq = read_all(topics.dlq)
    assert len(dlq) == 3
    for msg in dlq:
        h = header_dict(msg.headers())
        assert h["stage"] == "producer.deliver" and h["source_topic"] == missing_topic
        assert h["content_type"] == CONTENT_AVRO and h["reason"]
        assert int(h["schema_id"]) == reg.schema_id
        _, record = decode_with_writer_schema(msg.value())  # the Avro record as it was produced
        assert record["card_id"].encode() == msg.key()


# --------------------------------------------------------------------------- compatibility


def test_schema_evolution_under_full_transitive(unique: str) -> None:
    subject = f"it-compat-{unique}-value"
    reg = registry()
    try:
        v1 = reg.ensure_subject(subject, json.dumps(v1_schema()), "FULL_TRANSITIVE")
        assert v1.version == 1
        assert reg.client.get_compatibility(subject) == "FULL_TRANSITIVE"

        # additive field with a default: version 2
        v2_schema = v1_schema()
        v2_schema["fields"].append(
            {"name": "entry_mode", "type": ["null", "string"], "default": None, "doc": "chip, swipe, ..."}
        )
        v2 = reg.ensure_subject(subject, json.dumps(v2_schema), "FULL_TRANSITIVE")
        assert (v2.version, v2.schema_id != v1.schema_id) == (2, True)

        # old readers decode new records, new readers old ones
        record = {**good_event(1, amount=Decimal("12.30")), "entry_mode": "chip"}
        new_bytes = CompiledEncoder(v2.schema_str, v2.schema_id)(record)
        body = parse_frame(new_bytes).body
        old_reader = fastavro.parse_schema(v1_schema())
        writer = fastavro.parse_schema(
            json.loads(reg.client.get_schema(parse_frame(new_bytes).schema_id).schema_str)
        )
        decoded = fastavro.schemaless_reader(io.BytesIO(body), writer, old_reader)
        assert decoded == {k: v for k, v in record.items() if k != "entry_mode"}
        old_bytes = CompiledEncoder(v1.schema_str, v1.schema_id)(record)
        decoded_new = fastavro.schemaless_reader(
            io.BytesIO(parse_frame(old_bytes).body), old_reader, fastavro.parse_schema(v2_schema)
        )
        assert decoded_new["entry_mode"] is None

        # a type change is refused, the incompatibility named
        changed = v1_schema()
        changed["fields"][6]["type"] = "double"  # amount
        with pytest.raises(SchemaRegistrationError) as exc:
            reg.ensure_subject(subject, json.dumps(changed), "FULL_TRANSITIVE")
        assert exc.value.status == 409 and "/fields/6/type" in str(exc.value)

        # removing a required field is refused, the field named
        removed = v1_schema()
        removed["fields"] = [f for f in removed["fields"] if f["name"] != "terminal_id"]
        with pytest.raises(SchemaRegistrationError) as exc:
            reg.ensure_subject(subject, json.dumps(removed), "FULL_TRANSITIVE")
        assert exc.value.status == 409 and "terminal_id" in str(exc.value)

        # a new required field (no default) is refused too
        required = json.loads(v2.schema_str)
        required["fields"].append({"name": "risk", "type": "string", "doc": "no default"})
        with pytest.raises(SchemaRegistrationError, match=r"409.*risk"):
            reg.ensure_subject(subject, json.dumps(required), "FULL_TRANSITIVE")
        assert [v for v in reg.client.get_versions(subject)] == [1, 2]

        # under FULL_TRANSITIVE an optional field (with a default) may go: old readers use the default
        dropped = json.loads(v2.schema_str)
        dropped["fields"] = [f for f in dropped["fields"] if f["name"] != "device_id"]
        assert reg.ensure_subject(subject, json.dumps(dropped), "FULL_TRANSITIVE").version == 3
    finally:
        registry().delete_subject(subject)


def test_backward_alone_would_accept_the_removal_of_a_required_field(unique: str) -> None:
    """Why the producer sets FULL_TRANSITIVE: the registry's global BACKWARD lets this through."""
    subject = f"it-compat-bw-{unique}-value"
    reg = registry()
    try:
        reg.ensure_subject(subject, json.dumps(v1_schema()), "BACKWARD")
        removed = v1_schema()
        removed["fields"] = [f for f in removed["fields"] if f["name"] != "terminal_id"]
        assert reg.ensure_subject(subject, json.dumps(removed), "BACKWARD").version == 2
    finally:
        registry().delete_subject(subject)


# --------------------------------------------------------------------------- replays


def test_replay_of_a_file_produces_exactly_its_rows_and_labels(topics: Topics, tmp_path: Path) -> None:
    n = 25
    fraud_rows = {3, 11, 20}
    table = pa.table(
        {
            "transaction_id": [f"r-{i}" for i in range(n)],
            "event_time": pa.array(
                [datetime(2025, 4, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)],
                pa.timestamp("ms", "UTC"),
            ),
            "card_id": [f"card-{i % 4}" for i in range(n)],
            "terminal_id": [f"t-{i % 3}" for i in range(n)],
            "amount": [round(1 + i * 1.11, 2) for i in range(n)],
            "is_fraud": pa.array([1 if i in fraud_rows else 0 for i in range(n)], pa.int8()),
            "fraud_scenario": [("card_testing" if i in fraud_rows else None) for i in range(n)],
            "label_time": pa.array(
                [datetime(2025, 4, 20, tzinfo=UTC) if i == 20 else None for i in range(n)],
                pa.timestamp("ms", "UTC"),
            ),
        }
    )
    path = tmp_path / "replay.parquet"
    pq.write_table(table, path)
    rt = start(
        f"replay:{path.name}", settings=settings(replay_label_delay_s=3600), topics=topics, spool_path=None
    )
    report = replay_file(rt, path)
    assert report["reconciliation"]["ok"] and report["generated"] == {"transaction": n, "label": 3}

    raw = [decode_with_writer_schema(m.value())[1] for m in read_all(topics.raw)]
    assert sorted(r["transaction_id"] for r in raw) == sorted(f"r-{i}" for i in range(n))
    assert all(r["currency"] == "EUR" and r["customer_id"] is None for r in raw)  # documented defaults
    labels = {
        r["transaction_id"]: r
        for r in (decode_with_writer_schema(m.value())[1] for m in read_all(topics.labels))
    }
    assert set(labels) == {f"r-{i}" for i in fraud_rows}
    assert labels["r-3"]["label_time"] == datetime(2025, 4, 1, 0, 3, tzinfo=UTC) + timedelta(hours=1)
    assert labels["r-20"]["label_time"] == datetime(2025, 4, 20, tzinfo=UTC)
    assert end_offsets(topics.dlq) == 0


def test_replay_dlq_resends_what_now_passes_and_leaves_the_rest(
    topics: Topics, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. the producer dead-letters: 3 unknown-currency events and 2 without a card
    events = [("transaction", good_event(i, currency="XCG")) for i in range(3)]
    events += [
        ("transaction", {k: v for k, v in good_event(10 + i).items() if k != "card_id"}) for i in range(2)
    ]
    import contracts.events as contract

    without_xcg = contract.ISO_4217_CURRENCIES - {"XCG"}
    monkeypatch.setattr(contract, "ISO_4217_CURRENCIES", without_xcg)
    p = produce(topics, events)
    assert sum(p.counters.dead_lettered.values()) == 5

    # 2. later stages dead-letter Avro records: one decodable, one with an unknown schema id, one a
    #    duplicate the stream already holds; plus a payload that is not JSON
    reg = registry().ensure_subject(
        subject_for(topics.raw), load_schema_str("transaction"), "FULL_TRANSITIVE"
    )
    avro_ok = CompiledEncoder(reg.schema_str, reg.schema_id)(
        {**good_event(50), "amount": Decimal("7.50"), "event_time": datetime(2025, 3, 2, tzinfo=UTC)}
    )
    streaming_headers = [
        ("stage", b"streaming.quality"),
        ("reason", b"late_event"),
        ("source_topic", topics.raw.encode()),
    ]
    seed = Producer({"bootstrap.servers": K.kafka_bootstrap_servers})
    seed.produce(topics.dlq, avro_ok, b"card-050", headers=streaming_headers)
    seed.produce(
        topics.dlq, frame(2_000_000_000, b"\x02\x04"), b"x", headers=[("stage", b"streaming.decode")]
    )
    json_headers = dlq_headers(
        stage="producer.validate",
        reason="x",
        field="",
        error="",
        source="t",
        event_type="transaction",
        content_type="application/json",
    )
    seed.produce(topics.dlq, b"\xff not json", None, headers=json_headers)
    dup_headers = [
        ("stage", b"streaming.dedup"),
        ("reason", b"duplicate"),
        ("source_topic", topics.raw.encode()),
    ]
    seed.produce(topics.dlq, avro_ok, b"card-050", headers=dup_headers)
    assert seed.flush(10) == 0

    # 3. the rule is fixed (XCG becomes a known currency), then the DLQ is replayed
    monkeypatch.setattr(contract, "ISO_4217_CURRENCIES", without_xcg | {"XCG"})
    group = f"it-replay-{unique}"
    rt = start(
        "replay-dlq", settings=settings(), topics=topics, spool_path=None, dead_letter_undeliverable=False
    )
    report = replay_dead_letters(rt, group=group)
    d = report["dlq"]
    assert report["ok"], report
    assert (d["read"], d["resent"], d["left_invalid"], d["left_undecodable"]) == (9, 4, 2, 2)
    assert d["left_not_replayable_by_reason"] == {"streaming.dedup/duplicate": 1}
    assert d["resent_by_original_stage_reason"] == {
        "producer.validate/unknown_currency": 3,
        "streaming.quality/late_event": 1,
    }
    assert d["left_invalid_by_reason"] == {"transaction/missing": 2}
    assert d["left_undecodable_by_reason"] == {
        "streaming.decode/unknown_schema_id": 1,
        "producer.validate/not_json": 1,
    }
    assert sum(int(o) for o in d["committed_offsets"].values()) == 9
    resent = sorted(decode_with_writer_schema(m.value())[1]["transaction_id"] for m in read_all(topics.raw))
    assert resent == ["tx-00000", "tx-00001", "tx-00002", "tx-00050"]
    assert end_offsets(topics.dlq) == 9  # nothing was added to, or removed from, the DLQ

    # 4. the group's offsets were committed: a second run has nothing to do
    rt2 = start(
        "replay-dlq", settings=settings(), topics=topics, spool_path=None, dead_letter_undeliverable=False
    )
    again = replay_dead_letters(rt2, group=group)
    assert again["ok"] and again["dlq"]["read"] == 0
