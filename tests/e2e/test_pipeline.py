"""The whole native stack, end to end: events in through Kafka → Bronze (the streaming service) →
Silver/Gold (dbt on Trino, through Airflow) → Redis (feature_writer) → POST /predict with the
MLflow champion."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from common import trino_client
from common.settings import mlflow_settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A fresh 75-day history of a few hundred cards, ending now, replayed through the producer
    (the demo's shape at half its size: enough for the training protocol when no champion exists)."""
    from producer.simulator import SimulatorConfig, simulate

    seed = 500_000 + os.getpid() % 400_000
    now = datetime.now(UTC)
    cfg = SimulatorConfig(
        seed=seed, days=75, start=(now - timedelta(days=75)).replace(microsecond=0),
        n_customers=400, n_terminals=300, n_online_merchants=20,
    )  # fmt: skip
    frame = simulate(cfg).to_pandas()
    frame = frame[frame["event_time"] < pd.Timestamp(now)].copy()
    future = frame["label_time"] >= pd.Timestamp(now)
    frame.loc[future & (frame["is_fraud"] == 1), "is_fraud"] = 0
    path = tmp_path_factory.mktemp("e2e") / "transactions.parquet"
    frame.to_parquet(path, index=False)
    report = path.with_suffix(".json")
    proc = subprocess.run(
        [sys.executable, "-m", "producer", "replay", str(path), "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    accepted = json.loads(report.read_text())["accepted"]
    assert accepted["transaction"] == len(frame)
    return {"seed": seed, "frame": frame, "accepted": accepted}


def test_events_reach_bronze_exactly_once(produced: dict[str, Any]) -> None:
    like = (f"tx-{produced['seed']}-%",)
    deadline = time.monotonic() + 600
    while True:
        n = trino_client.scalar("SELECT count(*) FROM bronze.transactions WHERE transaction_id LIKE ?", like)
        labels = trino_client.scalar("SELECT count(*) FROM bronze.labels WHERE transaction_id LIKE ?", like)
        if (n >= produced["accepted"]["transaction"] and labels >= produced["accepted"]["label"]) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(5)
    assert n == produced["accepted"]["transaction"]
    assert labels == produced["accepted"]["label"]
    distinct = trino_client.scalar(
        "SELECT count(DISTINCT transaction_id) FROM bronze.transactions WHERE transaction_id LIKE ?", like
    )
    assert distinct == n


def test_airflow_runs_the_pipeline_dag(produced: dict[str, Any]) -> None:
    """`airflow dags test fraud_pipeline`: freshness → Silver → Gold → Redis, on the real stack."""
    proc = subprocess.run(
        [str(ROOT / "infra/local/services/airflow.sh"), "cli", "dags", "test", "fraud_pipeline"],
        cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False,
        env={**os.environ, **_stack_env()},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    for task in ("wait_for_fresh_bronze", "build_silver", "build_gold", "write_online_features"):
        assert f"task_id={task}" in out or task in out
    like = (f"tx-{produced['seed']}-%",)
    rows = trino_client.scalar(
        "SELECT count(*) FROM gold.fct_transaction_features WHERE transaction_id LIKE ?", like
    )
    assert rows == produced["accepted"]["transaction"]


def _stack_env() -> dict[str, str]:
    from common.dbt import dbt_env

    env = dbt_env()
    env.update({k: v for k, v in _versions().items() if k not in env})
    return env


def _versions() -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(ROOT / "infra/versions.env").items()}


def test_predict_uses_online_features_and_the_champion(produced: dict[str, Any]) -> None:
    """After the pipeline run, a card of this history is scored with its Redis features by the
    model that is @champion in MLflow (trained on Gold if there is none yet)."""
    from ml.registry import alias_version

    m = mlflow_settings()
    version = alias_version(m.mlflow_model_name, "champion", tracking_uri=m.mlflow_tracking_uri)
    if version is None:
        from ml.tasks import run_all

        decision = run_all(n_test_folds=2, n_val_folds=1)
        version = decision["challenger"]["version"] if decision.get("promoted") else decision.get("version")
        assert version, decision
        if not decision.get("promoted"):
            # The gates judge a model trained on this small random history and refuse about half of
            # them (the same with the code before the refactor; the gates have their own tests in
            # tests/unit/ml/test_lifecycle.py). This test is about the pipeline: the version it
            # trained and registered becomes champion by hand.
            from mlflow import MlflowClient

            uri = m.mlflow_tracking_uri
            MlflowClient(uri, uri).set_registered_model_alias(m.mlflow_model_name, "champion", version)
    from serving.settings import get_settings

    s = get_settings()
    keys = s.keys()
    headers = {"X-API-Key": keys[0].decode()} if keys else {}
    card = produced["frame"].sort_values("event_time").iloc[-1]
    body = {
        "transaction_id": f"e2e-{produced['seed']}", "event_time": datetime.now(UTC).isoformat(),
        "card_id": card["card_id"], "terminal_id": card["terminal_id"], "amount": "12.34",
        "currency": card["currency"], "channel": card["channel"],
    }  # fmt: skip
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=f"http://127.0.0.1:{s.port}", headers=headers, timeout=10) as client:
        while True:
            model = client.get("/model").json()
            if str(model.get("version")) == str(version) or time.monotonic() > deadline:
                break
            time.sleep(3)
        r = client.post("/predict", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert str(out["model_version"]) == str(version)
    assert out["feature_source"] == "online"
    assert 0.0 <= out["fraud_probability"] <= 1.0
    assert out["decision"] in ("approve", "review", "decline")


# --------------------------------------------------------------------------- decision-time features


def _client() -> httpx.Client:
    from serving.settings import get_settings

    s = get_settings()
    keys = s.keys()
    headers = {"X-API-Key": keys[0].decode()} if keys else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{s.port}", headers=headers, timeout=30)


def _logged(ids: list[str], timeout_s: float = 60, *, last: bool = False) -> dict[str, list[float]]:
    from bench.parity import logged_vectors

    return {k: v for k, (v, _) in logged_vectors(ids, timeout_s, first=not last).items()}


def _feature(vector: list[float], name: str) -> float:
    import features

    return vector[features.FEATURE_NAMES.index(name)]


def test_a_burst_is_seen_at_decision_time(produced: dict[str, Any]) -> None:
    """A card with history, then 10 small online attempts within 60 s at a new terminal from a new
    device: each attempt's vector counts the attempts before it (read-your-writes through the real
    API), sees the previous one seconds ago and the terminal and device as known from the 2nd on.
    (Whether the score climbs is the model's business: models trained on the current simulator
    key card testing on its location jitter, not on velocity; see ml/README.)"""
    frame = produced["frame"]
    card = frame.sort_values("event_time").iloc[-1]["card_id"]
    now = datetime.now(UTC)
    tag = f"e2e-burst-{produced['seed']}"
    bodies = [
        {
            "transaction_id": f"{tag}-{i}", "event_time": (now + timedelta(seconds=6 * i)).isoformat(),
            "card_id": card, "terminal_id": f"{tag}-web", "amount": "1.00", "currency": "EUR",
            "channel": "online", "mcc": "5816", "device_id": f"{tag}-device",
        }
        for i in range(10)
    ]  # fmt: skip
    answers = []
    with _client() as client:
        for b in bodies:
            for _ in range(3):  # Redis past SERVING_REDIS_TIMEOUT_MS on a busy machine: defaults; a
                r = client.post("/predict", json=b)  # repeat reads what the first attempt read
                assert r.status_code == 200, r.text
                if r.json()["feature_source"] != "default":
                    break
            answers.append(r.json())
    assert {a["feature_source"] for a in answers} == {"online"}
    vectors = _logged([b["transaction_id"] for b in bodies], last=True)
    counts = [_feature(vectors[b["transaction_id"]], "card_count_txn_1h") for b in bodies]
    assert counts == [counts[0] + i for i in range(10)], counts  # read-your-writes, attempt by attempt
    for name in ("is_new_terminal", "is_new_device"):
        assert [_feature(vectors[b["transaction_id"]], name) for b in bodies] == [1.0] + [0.0] * 9, name
    gaps = [_feature(vectors[b["transaction_id"]], "log_seconds_since_prev") for b in bodies[1:]]
    assert gaps == [pytest.approx(math.log1p(6.0))] * 9, gaps
    sums = [_feature(vectors[b["transaction_id"]], "card_sum_amount_1h") for b in bodies]
    assert [round(b - a, 2) for a, b in itertools.pairwise(sums)] == [1.0] * 9


def test_a_transaction_produced_to_kafka_reaches_the_next_predict(
    produced: dict[str, Any], tmp_path: Path
) -> None:
    """`make replay` of one transaction (never sent to /predict): the online applier appends it,
    the card's next /predict vector counts it; the same transaction through /predict counts once."""
    frame = produced["frame"]
    row = frame.sort_values("event_time").iloc[-1]
    now = datetime.now(UTC).replace(microsecond=0)
    tag = f"e2e-kafka-{produced['seed']}"
    card = f"{tag}-card"
    one = pd.DataFrame([{**row.to_dict(), "transaction_id": f"{tag}-0", "card_id": card, "event_time": now,
                         "is_fraud": 0, "label_time": None, "fraud_scenario": None}])  # fmt: skip
    path = tmp_path / "one.parquet"
    one.to_parquet(path, index=False)
    proc = subprocess.run(
        [sys.executable, "-m", "producer", "replay", str(path)], cwd=ROOT, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = {
        "event_time": (now + timedelta(seconds=30)).isoformat(), "card_id": card, "terminal_id": f"{tag}-t",
        "amount": "5.00", "currency": "EUR", "channel": "online",
    }  # fmt: skip
    deadline = time.monotonic() + 60
    with _client() as client:
        i = 0
        while True:  # probes share one time 30 s later: each reads the produced one once applied, and
            # none reads another probe (only strictly earlier transactions count)
            i += 1
            probe_id = f"{tag}-probe-{i}"
            assert client.post("/predict", json={**probe, "transaction_id": probe_id}).status_code == 200
            seen = _feature(_logged([probe_id])[probe_id], "card_count_txn_1h")
            if seen >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert seen == 1, (
            f"the produced transaction never reached the online state (count {seen}, {i} probes)"
        )
        # the produced transaction itself through /predict: already known, counted once
        same = {
            **probe,
            "transaction_id": f"{tag}-0",
            "event_time": now.isoformat(),
            "terminal_id": row["terminal_id"],
        }
        assert client.post("/predict", json=same).status_code == 200
        last = f"{tag}-probe-last"
        assert client.post("/predict", json={**probe, "transaction_id": last}).status_code == 200
    assert _feature(_logged([last])[last], "card_count_txn_1h") == 1, "seen by both paths, counted once"


def test_replay_parity_through_the_running_api() -> None:
    """`make parity` at a smaller size: a 3-day simulation through the running API in event-time
    order; every logged vector equals ml.pit's training vector (labels through Kafka)."""
    from bench import parity

    report = parity.run(days=3, customers=800)
    assert report["rows"] > 3000 and report["missing_from_log"] == 0
    assert report["mismatches_by_feature"] == {}
    assert report["exact_rows"] == report["rows"]
    assert report["labels_through_kafka"] > 0 and report["rows_with_known_terminal_fraud"] > 0
