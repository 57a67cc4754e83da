"""The online state on the real Redis (and Trino for the Gold seed): every vector read at decision
time equals ``ml.pit``'s training vector, whatever order transactions and labels arrive in;
appends are idempotent, read-your-writes holds inside one call, a label that comes before its
transaction waits for it, the state is trimmed to its retention, and seeding merges."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis

import features
from common import trino_client
from common.settings import redis_settings
from contracts.online_store import MODE_READ, MODE_READ_APPEND, RETENTION_MS, OnlineLayout
from ml.data import validate_transactions
from ml.feature_writer import (
    FeatureWriterError,
    frame_rows,
    labels_of,
    seed_batches,
    seed_frame,
    write_online_features,
)
from ml.online_state import Label, apply_events, apply_labels, parse_event, state_bytes
from ml.pit import build_feature_frame, feature_matrix, transaction_from_row
from producer.simulator import SimulatorConfig, simulate
from serving.vectors import batch_vectors

SIM = SimulatorConfig(
    seed=3, days=20, n_customers=150, n_terminals=120, n_online_merchants=20, fraud_rate=0.03
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return build_feature_frame(validate_transactions(simulate(SIM).to_pandas()))


@pytest.fixture
def client(running_stack: None, unique: str) -> Iterator[tuple[redis.Redis, OnlineLayout]]:
    r = redis.Redis.from_url(redis_settings().redis_url)
    layout = OnlineLayout(f"test-state-{unique}")
    yield r, layout
    keys = list(r.scan_iter(match=layout.pattern(), count=10_000))
    if keys:
        r.delete(*keys)
    r.close()


def txns_of(frame: pd.DataFrame) -> list[features.Transaction]:
    return [transaction_from_row(row) for _, row in frame.iterrows()]


def mismatches(frame: pd.DataFrame, txns: list[features.Transaction], applied: list) -> dict[str, int]:
    got = batch_vectors(txns, [a.card for a in applied], [a.terminal for a in applied])
    close = np.isclose(got, feature_matrix(frame), rtol=1e-9, atol=1e-9)
    return {
        features.FEATURE_NAMES[j]: int((~close[:, j]).sum())
        for j in range(close.shape[1])
        if not close[:, j].all()
    }


def test_replay_in_event_order_equals_training(
    client: tuple[redis.Redis, OnlineLayout], frame: pd.DataFrame
) -> None:
    """Read + append one transaction at a time, labels applied as they become known."""
    r, layout = client
    txns = txns_of(frame)
    labels = sorted(labels_of(frame_rows(frame)), key=lambda lb: lb.label_ms)
    assert labels, "the simulation has frauds"
    applied, li = [], 0
    for t in txns:
        ms = features.to_epoch_ms(t.event_time)
        due = []
        while li < len(labels) and labels[li].label_ms < ms:
            due.append(labels[li])
            li += 1
        if due:
            apply_labels(r, layout, due)
        applied.extend(apply_events(r, layout, [t], MODE_READ_APPEND))
    assert all(a.new for a in applied)
    assert mismatches(frame, txns, applied) == {}
    terminal_frauds = sum(a.terminal.terminal_count_fraud_90d > 0 for a in applied)
    assert terminal_frauds > 0, "some transactions saw known frauds at their terminal"


def test_any_arrival_order_reads_the_same(
    client: tuple[redis.Redis, OnlineLayout], frame: pd.DataFrame
) -> None:
    """Labels before their transactions, transactions shuffled: reads as of each time are exact."""
    r, layout = client
    txns = txns_of(frame)
    labels = labels_of(frame_rows(frame))
    done, waiting = apply_labels(r, layout, labels)
    assert (done, waiting) == (0, len(labels)), "no transaction known yet: every label waits"
    order = np.random.default_rng(0).permutation(len(txns))
    first = apply_events(r, layout, [txns[i] for i in order])
    assert sum(a.new for a in first) == len(txns)
    again = apply_events(r, layout, txns)  # every transaction a second time: idempotent
    assert not any(a.new for a in again)
    assert mismatches(frame, txns, apply_events(r, layout, txns, MODE_READ)) == {}
    assert apply_labels(r, layout, labels) == (len(labels), 0)  # re-applied: no change
    assert mismatches(frame, txns, apply_events(r, layout, txns, MODE_READ)) == {}


def test_read_your_writes_inside_one_call(client: tuple[redis.Redis, OnlineLayout]) -> None:
    """A burst in one micro-batch: each attempt sees the ones before it, none sees itself."""
    r, layout = client
    t0 = features.to_epoch_ms("2026-06-01T12:00:00Z")
    burst = [
        features.Transaction(f"b{i}", features.from_epoch_ms(t0 + 6_000 * i), "card-x", "term-new", 1.0)
        for i in range(10)
    ]
    out = apply_events(r, layout, burst, MODE_READ_APPEND)
    assert [a.card.card_count_txn_1h for a in out] == list(range(10))  # type: ignore[union-attr]
    assert [a.terminal.terminal_count_txn_7d for a in out] == list(range(10))
    assert [a.card.card_sum_amount_1h for a in out] == [float(i) for i in range(10)]  # type: ignore[union-attr]
    assert out[1].card.card_recent_terminal_ids == ("term-new",)  # type: ignore[union-attr]
    repeat = apply_events(r, layout, burst[3:4], MODE_READ_APPEND)[0]
    assert not repeat.new and repeat.card.card_count_txn_1h == 3  # type: ignore[union-attr]


def test_retention_trims_and_expires(client: tuple[redis.Redis, OnlineLayout]) -> None:
    r, layout = client
    t0 = features.to_epoch_ms("2026-01-01T00:00:00Z")
    old = features.Transaction("old", features.from_epoch_ms(t0), "card-t", "term-t", 5.0)
    new = features.Transaction("new", features.from_epoch_ms(t0 + RETENTION_MS + 1), "card-t", "term-t", 7.0)
    apply_events(r, layout, [old, new])
    ev, zt, _ = layout.card("card-t")
    tz, _, _ = layout.terminal("term-t")
    assert r.hkeys(ev) == [b"new"] and r.zrange(tz, 0, -1) == [b"new"]
    (kept,) = r.zrange(zt, 0, -1)
    assert parse_event(kept).transaction_id == "new"
    assert 0 < r.pttl(ev) <= RETENTION_MS
    lb = Label("new", "card-t", t0 + RETENTION_MS + 10)
    assert apply_labels(r, layout, [lb]) == (1, 0)
    assert 0 < r.pttl(layout.terminal("term-t")[1]) <= RETENTION_MS


def test_seed_merges_with_what_came_after(
    client: tuple[redis.Redis, OnlineLayout], frame: pd.DataFrame
) -> None:
    """Seeding from an older snapshot of history keeps the events /predict appended since."""
    r, layout = client
    cut = int(frame["event_time_ms"].quantile(0.8))
    later = frame[frame["event_time_ms"] >= cut]
    apply_events(r, layout, txns_of(later))  # what serving and the applier appended
    report = seed_frame(frame[frame["event_time_ms"] < cut], client=r, namespace=layout.namespace)
    assert report["transactions"] == int((frame["event_time_ms"] < cut).sum())
    assert report["transactions_new"] == report["transactions"]
    again = seed_frame(frame, client=r, namespace=layout.namespace)  # the next run: a superset
    assert again["transactions_new"] == 0 and again["fraud_labels_applied"] > 0
    txns = txns_of(frame)
    assert mismatches(frame, txns, apply_events(r, layout, txns, MODE_READ)) == {}
    size = state_bytes(r, layout)
    assert size["cards_sampled"] > 0 and size["bytes_per_card"] > 0
    with pytest.raises(FeatureWriterError, match="nothing to seed"):
        seed_batches(r, iter([]), namespace=layout.namespace)


# --------------------------------------------------------------------------- Gold through Trino


def _lit(v: object, kind: str) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "NULL"
    if kind == "varchar":
        return "'" + str(v).replace("'", "''") + "'"
    if kind == "ts":
        return f"CAST(from_unixtime_nanos({int(v)} * 1000000) AS timestamp(3) with time zone)"  # type: ignore[call-overload]
    if kind == "integer":
        return str(int(v))  # type: ignore[call-overload]
    return f"DOUBLE '{float(v)!r}'"  # type: ignore[arg-type]


GOLD_TYPES = {
    "transaction_id": "varchar", "event_time": "ts", "card_id": "varchar", "terminal_id": "varchar",
    "amount": "double", "channel": "varchar", "mcc": "varchar", "device_id": "varchar",
    "latitude": "double", "longitude": "double", "country": "varchar", "is_fraud": "integer",
    "label_time": "ts",
}  # fmt: skip


def test_seed_from_gold_through_trino(
    client: tuple[redis.Redis, OnlineLayout], frame: pd.DataFrame, unique: str
) -> None:
    r, layout = client
    sample = frame[frame["card_id"].isin(frame["card_id"].drop_duplicates().head(12))]
    rows = frame_rows(sample).rename(columns={"event_time_ms": "event_time", "label_time_ms": "label_time"})
    table = f"gold.test_seed_{unique}"
    conn = trino_client.connect()
    cur = conn.cursor()
    ddl = ", ".join(f"{c} {'timestamp(3) with time zone' if t == 'ts' else t}" for c, t in GOLD_TYPES.items())
    try:
        cur.execute(f"CREATE TABLE {table} ({ddl})")
        cur.fetchall()
        records = rows.to_dict("records")
        for start in range(0, len(records), 200):
            values = ", ".join(
                "(" + ", ".join(_lit(rec[c], t) for c, t in GOLD_TYPES.items()) + ")"
                for rec in records[start : start + 200]
            )
            cur.execute(f"INSERT INTO {table} ({', '.join(GOLD_TYPES)}) VALUES {values}")
            cur.fetchall()
        report = write_online_features(table=table, namespace=layout.namespace, client=r)
        assert report["transactions"] == len(sample) and report["source"] == f"trino:{table}"
        assert report["fraud_labels_applied"] == int(sample["is_fraud"].sum())
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.fetchall()
        conn.close()
    # the seeded state reads, as of each transaction, what training computed over the whole history
    sub = frame.loc[sample.index]
    txns = txns_of(sub)
    applied = apply_events(r, layout, txns, MODE_READ)
    card_cols = [i for i, n in enumerate(features.FEATURE_NAMES) if features.FEATURE_GROUPS[n] == "card"]
    got = batch_vectors(txns, [a.card for a in applied], [a.terminal for a in applied])
    assert np.allclose(got[:, card_cols], feature_matrix(sub)[:, card_cols], rtol=1e-9, atol=1e-9)


def test_the_versioned_snapshots_of_an_earlier_release_are_removed(
    client: tuple[redis.Redis, OnlineLayout],
) -> None:
    from ml.feature_writer import drop_legacy_snapshots

    r, layout = client
    ns = layout.namespace
    legacy = [f"{ns}:current", f"{ns}:versions", f"{ns}:v7:card:c1", f"{ns}:v7:meta", f"{ns}:v12:terminal:t"]
    for key in legacy:
        r.set(key, "x")
    apply_events(r, layout, [features.Transaction("t1", features.from_epoch_ms(10**12), "c1", "t", 1.0)])
    kept = sorted(r.scan_iter(match=layout.pattern()))
    assert drop_legacy_snapshots(r, ns) == len(legacy)
    assert sorted(r.scan_iter(match=layout.pattern())) == [k for k in kept if k.decode() not in legacy]
    assert r.exists(*layout.card("c1")[:2]) == 2
