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

from common.reports import json_safe
from common.settings import ROOT, mlflow_settings
from ml.gold import read_training_set

log = logging.getLogger(__name__)

TRAINING_DIR = ROOT / "var" / "data" / "training"


def build_training_set(out_dir: Path = TRAINING_DIR) -> str:
    frame = read_training_set()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"fct_transaction_features_{datetime.now(UTC):%Y%m%dT%H%M%SZ}.parquet"
    frame.to_parquet(path, index=False)
    log.info("training set: %d rows, %d frauds -> %s", len(frame), int(frame["is_fraud"].sum()), path)
    return str(path)


def _json(obj: Any) -> Any:
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
    from ml.pyfunc import load_bundle
    from ml.tracking import mlflow_tracking

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
    """The whole DAG in one process (``python -m ml run-training``)."""
    trained = train_model(build_training_set(), **protocol)
    return promote_champion(register_challenger(evaluate_model(trained)))
