"""The whole native stack, end to end: events in through Kafka → Bronze (the streaming service) →
Silver/Gold (dbt on Trino, through Airflow) → Redis (feature_writer) → POST /predict with the
MLflow champion."""

from __future__ import annotations

import json
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
