"""The steps of the `fraud_training` DAG, as plain functions (the DAG only calls them).

Each takes and returns JSON-serialisable values (they travel between Airflow tasks as XComs):
Gold → Parquet training set → trained, logged and registered model → gates → `@challenger` →
`@champion` if it beats the current champion on the same held-out period.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import trino_client
from common.settings import ROOT, mlflow_settings, trino_settings

log = logging.getLogger(__name__)

TRAINING_DIR = ROOT / "var" / "data" / "training"
GOLD_TABLE = "gold.fct_transaction_features"


def read_gold_training_set(table: str = GOLD_TABLE) -> pd.DataFrame:
    """The Gold training set as the point-in-time feature frame training expects (UTC times)."""

    t = trino_settings()
    frame = trino_client.frame(f"SELECT * FROM {t.trino_catalog}.{table}")  # noqa: S608 (name from code)
    if frame.empty:
        raise ValueError(f"{table} is empty: build Gold first (fraud_pipeline / make dbt-build)")
    for col in ("event_time", "label_time"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in frame.columns:
        if frame[col].dtype == object and col not in {
            "transaction_id", "card_id", "terminal_id", "customer_id", "currency", "channel", "mcc",
            "device_id", "country", "fraud_scenario",
        }:  # fmt: skip
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["is_fraud"] = frame["is_fraud"].astype("int8")
    return frame.sort_values(["event_time_ms", "transaction_id"], kind="stable").reset_index(drop=True)


def build_training_set(out_dir: Path = TRAINING_DIR) -> str:
    frame = read_gold_training_set()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"fct_transaction_features_{datetime.now(UTC):%Y%m%dT%H%M%SZ}.parquet"
    frame.to_parquet(path, index=False)
    log.info("training set: %d rows, %d frauds -> %s", len(frame), int(frame["is_fraud"].sum()), path)
    return str(path)


def _json(obj: Any) -> Any:
    from ml.train import json_safe

    return json.loads(json.dumps(json_safe(obj), default=str))


def train_model(training_set: str, **protocol: Any) -> dict[str, Any]:
    from ml.protocol import ProtocolConfig
    from ml.train import train

    m = mlflow_settings()
    frame = pd.read_parquet(training_set)
    started = time.perf_counter()
    result = train(
        frame,
        ProtocolConfig(**protocol),
        tracking_uri=m.mlflow_tracking_uri,
        experiment=m.mlflow_experiment,
        register_as=m.mlflow_model_name,
    )
    return {
        "training_set": training_set,
        "model_name": m.mlflow_model_name,
        "version": result.registered_version,
        "run_id": result.run_id,
        "champion_family": result.champion,
        "train_s": round(time.perf_counter() - started, 1),
        "evaluation": _json({k: v for k, v in result.evaluation.items() if k != "folds"}),
    }


def evaluate_model(trained: dict[str, Any]) -> dict[str, Any]:
    from ml.gates import run_gates
    from ml.model import load_bundle
    from ml.train import mlflow_tracking

    with mlflow_tracking(mlflow_settings().mlflow_tracking_uri):
        bundle = load_bundle(
            f"models:/{trained['model_name']}/{trained['version']}", version=trained["version"]
        )
    report = run_gates(bundle.model, trained["evaluation"])
    return {**trained, "gates": _json(report.as_dict())}


def register_challenger(evaluated: dict[str, Any]) -> dict[str, Any]:
    from ml.gates import GateReport, GateResult
    from ml.registry import set_challenger_if_gates_pass

    gates = evaluated["gates"]["gates"]
    report = GateReport(tuple(GateResult(n, bool(g["passed"]), {}) for n, g in gates.items()))
    ok = set_challenger_if_gates_pass(
        evaluated["model_name"],
        evaluated["version"],
        report,
        tracking_uri=mlflow_settings().mlflow_tracking_uri,
    )
    return {**evaluated, "challenger": ok}


def holdout_period(frame: pd.DataFrame, days: int = 7) -> pd.DataFrame:
    """The last `days` of the training set: the period both models are compared on."""
    end = frame["event_time_ms"].max()
    return frame[frame["event_time_ms"] > end - days * 86_400_000].reset_index(drop=True)


def promote_champion(challenger: dict[str, Any], holdout_days: int = 7) -> dict[str, Any]:
    from ml.registry import promote_if_better

    if not challenger.get("challenger"):
        log.warning("version %s failed its gates: champion unchanged", challenger["version"])
        return {"promoted": False, "reason": "gates failed", "version": challenger["version"]}
    holdout = holdout_period(pd.read_parquet(challenger["training_set"]), holdout_days)
    if int(np.asarray(holdout["is_fraud"]).sum()) == 0:
        return {
            "promoted": False,
            "reason": "no fraud in the held-out period",
            "version": challenger["version"],
        }
    decision = promote_if_better(
        challenger["model_name"],
        holdout,
        version=challenger["version"],
        tracking_uri=mlflow_settings().mlflow_tracking_uri,
    )
    return _json(decision)


def run_all(**protocol: Any) -> dict[str, Any]:
    """The whole DAG in one process (the demo uses it)."""
    trained = train_model(build_training_set(), **protocol)
    return promote_champion(register_challenger(evaluate_model(trained)))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(run_all(), indent=2, default=str))  # noqa: T201
