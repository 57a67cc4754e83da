"""The simulator: contract, determinism, fraud scenarios with their signatures, both modes."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from contracts.events import LABEL_COLUMNS, TRANSACTION_COLUMNS
from features import haversine_km
from producer.cli import app
from producer.simulator import (
    SCENARIOS,
    SCHEMA,
    LabelEvent,
    SimulatorConfig,
    TransactionEvent,
    iter_events,
    simulate,
)

TINY = SimulatorConfig(
    seed=3, days=10, n_customers=60, n_terminals=80, n_online_merchants=12, fraud_rate=0.03
)


def _scenario(df: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = df[df["fraud_scenario"] == name]
    assert len(rows) > 0, f"scenario {name} missing"
    return rows


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    a, b = simulate(TINY), simulate(TINY)
    assert a.equals(b)
    c = simulate(SimulatorConfig(**{**TINY.__dict__, "seed": 4}))
    assert not a.equals(c)


def test_schema_and_column_contract(small_sim: pd.DataFrame) -> None:
    table = simulate(TINY)
    assert table.schema.equals(SCHEMA)
    assert list(small_sim.columns[: len(TRANSACTION_COLUMNS)]) == list(TRANSACTION_COLUMNS)
    df = small_sim
    assert df["transaction_id"].is_unique
    assert df["event_time"].is_monotonic_increasing
    assert str(df["event_time"].dt.tz) == "UTC"
    assert set(df["channel"]) == {"card_present", "online"}
    online = df["channel"] == "online"
    assert df.loc[online, "device_id"].notna().all()
    assert df.loc[~online, "device_id"].isna().all()
    assert df["mcc"].str.fullmatch(r"\d{4}").all()
    assert df["currency"].str.fullmatch(r"[A-Z]{3}").all()
    assert df["country"].str.fullmatch(r"[A-Z]{2}").all()
    cents = df["amount"].to_numpy() * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)
    assert (df["amount"] > 0).all()
    assert df[["latitude", "longitude"]].notna().all().all()


def test_fraud_rate_follows_config(small_sim: pd.DataFrame, small_config: SimulatorConfig) -> None:
    assert small_sim["is_fraud"].mean() == pytest.approx(small_config.fraud_rate, rel=0.15)
    low = simulate(SimulatorConfig(**{**small_config.__dict__, "fraud_rate": 0.005})).to_pandas()
    assert low["is_fraud"].mean() == pytest.approx(0.005, rel=0.25)
    assert set(small_sim["fraud_scenario"].dropna()) == set(SCENARIOS)


def test_labels_arrive_later_and_only_for_frauds(small_sim: pd.DataFrame) -> None:
    fraud = small_sim["is_fraud"] == 1
    assert small_sim.loc[~fraud, ["fraud_scenario", "label_time"]].isna().all().all()
    delay = (
        small_sim.loc[fraud, "label_time"] - small_sim.loc[fraud, "event_time"]
    ).dt.total_seconds() / 86400
    assert delay.min() >= 0.5
    assert delay.max() <= 60
    assert 3 < delay.median() < 12  # days to weeks, like chargebacks


def test_compromised_terminal_marks_every_transaction_of_a_window(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "compromised_terminal")
    assert (rows["channel"] == "card_present").all()
    for terminal, frauds in rows.groupby("terminal_id"):
        start, end = frauds["event_time"].min(), frauds["event_time"].max()
        assert end - start <= pd.Timedelta(days=21)
        at_terminal = small_sim[(small_sim["terminal_id"] == terminal)]
        inside = at_terminal[(at_terminal["event_time"] >= start) & (at_terminal["event_time"] <= end)]
        assert inside["is_fraud"].all(), f"genuine transaction inside the compromise of {terminal}"


def _genuine_before(df: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    card = df[(df["card_id"] == row["card_id"]) & (df["is_fraud"] == 0)]
    return card[card["event_time"] < row["event_time"]]


def test_compromised_card_uses_new_merchants_with_inflated_amounts(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "compromised_card")
    new_terminal, ratio = [], []
    for _, row in rows.iterrows():
        before = _genuine_before(small_sim, row)
        new_terminal.append(row["terminal_id"] not in set(before["terminal_id"]))
        card_median = small_sim[(small_sim["card_id"] == row["card_id"]) & (small_sim["is_fraud"] == 0)][
            "amount"
        ].median()
        ratio.append(row["amount"] / card_median)
    assert np.mean(new_terminal) > 0.85
    assert np.median(ratio) > 2.0


def test_card_testing_is_small_amounts_within_minutes_then_a_large_one(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "card_testing")
    assert (rows["channel"] == "online").all()
    bursts = 0
    for _, burst in rows.sort_values("event_time").groupby(["card_id", "device_id"]):
        small, large = burst.iloc[:-1], burst.iloc[-1]
        assert len(small) >= 5
        assert (small["amount"] <= 3.0).all()
        assert small["event_time"].max() - small["event_time"].min() <= pd.Timedelta(minutes=15)
        assert large["amount"] >= 250
        assert pd.Timedelta(0) < large["event_time"] - small["event_time"].max() <= pd.Timedelta(minutes=15)
        bursts += 1
    assert bursts >= 5


def test_impossible_travel_is_far_faster_than_a_plane(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "impossible_travel")
    assert (rows["channel"] == "card_present").all()
    speeds = []
    for _, row in rows.iterrows():
        card = small_sim[
            (small_sim["card_id"] == row["card_id"]) & (small_sim["event_time"] < row["event_time"])
        ]
        prev = card.iloc[-1]
        km = float(haversine_km(prev["latitude"], prev["longitude"], row["latitude"], row["longitude"]))
        hours = (row["event_time"] - prev["event_time"]).total_seconds() / 3600
        speeds.append(km / hours)
    assert np.mean(np.array(speeds) > 900) > 0.95


def test_account_takeover_is_online_from_a_device_the_customer_never_used(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "account_takeover")
    assert (rows["channel"] == "online").all()
    genuine_devices = small_sim[small_sim["is_fraud"] == 0].groupby("customer_id")["device_id"].agg(set)
    for _, row in rows.iterrows():
        assert row["device_id"] not in genuine_devices.get(row["customer_id"], set())
    assert (rows["amount"] >= 300).all()


def test_outlier_amount_is_far_in_the_tail_of_the_card_history(small_sim: pd.DataFrame) -> None:
    rows = _scenario(small_sim, "outlier_amount")
    genuine = small_sim[small_sim["is_fraud"] == 0].groupby("card_id")["amount"]
    mean, std = genuine.mean(), genuine.std()
    z = (rows["amount"].to_numpy() - rows["card_id"].map(mean).to_numpy()) / rows["card_id"].map(
        std
    ).to_numpy()
    assert np.mean(z > 4) > 0.9


def test_stream_mode_yields_the_batch_in_time_order_with_labels_after_transactions() -> None:
    table = simulate(TINY).to_pandas()
    events = list(iter_events(TINY))
    txns = [e for e in events if isinstance(e, TransactionEvent)]
    labels = [e for e in events if isinstance(e, LabelEvent)]
    assert [t.transaction_id for t in txns] == table["transaction_id"].tolist()
    assert len(labels) == int(table["is_fraud"].sum()) > 0
    times = [e.event_time if isinstance(e, TransactionEvent) else e.label_time for e in events]
    assert all(a <= b for a, b in itertools.pairwise(times))
    seen: set[str] = set()
    for e in events:
        if isinstance(e, TransactionEvent):
            seen.add(e.transaction_id)
        else:
            assert e.transaction_id in seen
    assert set(txns[0].to_dict()) == set(TRANSACTION_COLUMNS)
    assert set(labels[0].to_dict()) == set(LABEL_COLUMNS)
    assert "is_fraud" not in txns[0].to_dict()


def test_cli_writes_parquet_and_labels(tmp_path: Path) -> None:
    out, labels = tmp_path / "tx.parquet", tmp_path / "labels.parquet"
    result = CliRunner().invoke(
        app,
        ["simulate", "--out", str(out), "--days", "5", "--seed", "1", "--customers", "50",
         "--terminals", "60", "--online-merchants", "10", "--labels-out", str(labels)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.num_rows > 100
    assert pq.read_table(labels).num_rows == sum(table.column("is_fraud").to_pylist())
