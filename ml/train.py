"""Training: evaluate every model under the protocol, fit the deployable champion, log to MLflow.

``train(frame, cfg)`` runs on a point-in-time feature frame (``ml.pit.build_feature_frame`` or the
dbt Gold ``fct_transaction_features``, which carries the same columns):

1. the protocol of :mod:`ml.protocol` on every model family (LightGBM and the baselines) — the
   fold metrics, mean ± std;
2. the champion family (best validation score) is refitted as the deployable model on the most
   recent training window whose labels have had ``gap_days`` to arrive, with hyperparameters and
   review/decline thresholds chosen on its own prequential validation folds, and the median of
   every feature over its training rows as the defaults serving uses when a feature group is
   unavailable;
3. with a tracking URI (argument or ``MLFLOW_TRACKING_URI``): one MLflow run with params, metrics
   (``<model>.<metric>.mean`` / ``.std``), feature importance, data fingerprint, seeds, package
   versions, ``FEATURE_SET_VERSION``, and the pyfunc model with its signature and metadata
   (thresholds, defaults, feature names); optionally registered under a model name.

CLI: ``python -m ml train --data transactions.parquet [--register fraud-detector]``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import features
from ml.data import DEFAULT_LABEL_DELAY, load_labelled
from ml.drift import score_reference
from ml.pit import build_feature_frame, feature_matrix
from ml.protocol import Evaluator, ProtocolConfig, ProtocolResult, data_bounds, deployment_fold, run_protocol
from ml.pyfunc import FraudModel
from ml.registry import register_model
from ml.tracking import mlflow_tracking

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT: Final = "fraud-detection"
DEFAULT_MODEL_NAME: Final = "fraud-detector"
#: fewest unseen rows the drift reference is taken from (else the training rows)
MIN_REFERENCE_ROWS: Final = 500
_PACKAGES: Final = (
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "scipy",
    "mlflow-skinny",
    "mlflow",
)


@dataclass
class TrainResult:
    evaluation: dict[str, Any]
    model: FraudModel
    data: dict[str, Any]
    seconds: dict[str, float]
    run_id: str | None = None
    model_uri: str | None = None
    registered_version: str | None = None
    importance: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def champion(self) -> str:
        return str(self.evaluation["champion"])


def data_fingerprint(frame: pd.DataFrame) -> dict[str, Any]:
    """Content hash of the labelled transactions (order-independent) plus size and time range."""
    cols = ["transaction_id", "event_time_ms", "card_id", "terminal_id", "amount", "is_fraud"]
    hashed = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    digest = hashlib.sha256(np.sort(hashed).tobytes()).hexdigest()
    return {
        "sha256": digest,
        "rows": len(frame),
        "frauds": int(frame["is_fraud"].sum()),
        "cards": int(frame["card_id"].nunique()),
        "terminals": int(frame["terminal_id"].nunique()),
        "start": str(frame["event_time"].min()),
        "end": str(frame["event_time"].max()),
    }


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def learnt_defaults(x: npt.NDArray[np.float64]) -> dict[str, float]:
    """Median of each feature over the training rows: the stand-in for an unavailable feature group."""
    if len(x) == 0:
        return dict(features.STATIC_DEFAULTS)
    med = np.median(x, axis=0)
    return {
        name: float(med[i])
        for i, name in enumerate(features.FEATURE_NAMES)
        if features.FEATURE_GROUPS[name] != "transaction"
    }


def fit_deployment_model(ev: Evaluator, name: str) -> tuple[FraudModel, dict[str, Any]]:
    """The champion family refitted on the most recent mature window (see module docstring)."""
    _, end_ms = data_bounds(ev.ms)
    fold = deployment_fold(end_ms, ev.cfg)
    params, val_score, thresholds = ev.select(name, fold)
    classifier = ev.fit(name, params, fold.train_start, fold.train_end, cutoff=fold.test_start)
    rows = ev.rows(fold.train_start, fold.train_end)
    # drift reference: scores on the rows after the training window (not fitted on), else on it
    unseen = ev.rows(fold.train_end, end_ms)
    ref_rows = unseen if unseen.stop - unseen.start >= MIN_REFERENCE_ROWS else rows
    reference = score_reference(classifier.predict_proba(ev.x[ref_rows]))
    info = {
        **fold.describe(),
        "params": params,
        "validation_ap": val_score,
        "train_rows": rows.stop - rows.start,
        "review_budget": ev.cfg.review_budget,
        "decline_budget": ev.cfg.decline_budget,
    }
    model = FraudModel(
        classifier,
        model_name=name,
        thresholds=thresholds,
        feature_defaults=learnt_defaults(ev.x[rows]),
        trained_on={**info, "score_reference_rows": ref_rows.stop - ref_rows.start},
        score_reference=reference,
    )
    return model, info


def train(
    frame: pd.DataFrame,
    cfg: ProtocolConfig | None = None,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    register_as: str | None = None,
    artifact_location: str | None = None,
    use_mlflow: bool = True,
) -> TrainResult:
    """Evaluate, fit the deployable champion and (with a tracking URI) log it. See module docstring.

    ``use_mlflow=False`` skips logging even when ``MLFLOW_TRACKING_URI`` is set (benchmarks).
    """
    cfg = cfg or ProtocolConfig()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    x = feature_matrix(frame)
    seconds["features"] = time.perf_counter() - t0
    ev = Evaluator(frame, x, cfg)
    t0 = time.perf_counter()
    result: ProtocolResult = run_protocol(frame, x, cfg, evaluator=ev)
    seconds["protocol"] = time.perf_counter() - t0
    evaluation = result.summary()
    t0 = time.perf_counter()
    model, info = fit_deployment_model(ev, result.champion)
    seconds["deployment_fit"] = time.perf_counter() - t0
    evaluation["deployment"] = info
    importance = {}
    for name in cfg.models:
        key = next((k for k in ev._fits if k[0] == name), None)
        if key is not None:
            importance[name] = ev._fits[key].feature_importance()
    importance[f"deployed:{model.model_name}"] = model.classifier.feature_importance()
    out = TrainResult(evaluation, model, data_fingerprint(frame), seconds, importance=importance)
    uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")) if use_mlflow else None
    if uri:
        log_to_mlflow(out, cfg, tracking_uri=uri, experiment=experiment, artifact_location=artifact_location)
        if register_as:
            assert out.model_uri is not None
            version = register_model(out.model_uri, register_as, tracking_uri=uri, run_id=out.run_id)
            out.registered_version = version
    elif register_as:
        raise ValueError("registering a model needs a tracking URI (MLFLOW_TRACKING_URI)")
    log.info(
        "champion %s; deployable model thresholds %s; %.0fs protocol",
        result.champion,
        model.thresholds,
        seconds["protocol"],
    )
    return out


def model_signature() -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in features.FEATURE_NAMES]),
        outputs=Schema([ColSpec("double", "fraud_probability"), ColSpec("string", "decision")]),
    )


def _flat_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for model, entry in evaluation["models"].items():
        for metric, value in entry.items():
            if isinstance(value, dict) and "mean" in value:
                for stat in ("mean", "std"):
                    v = value[stat]
                    if v is not None and not np.isnan(v):
                        out[f"{model}.{metric}.{stat}"] = float(v)
    return out


def log_to_mlflow(
    result: TrainResult,
    cfg: ProtocolConfig,
    *,
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
    artifact_location: str | None = None,
) -> None:
    """One run: params, metrics, artifacts and the pyfunc model (sets result.run_id/model_uri)."""
    with mlflow_tracking(tracking_uri):
        exp = mlflow.get_experiment_by_name(experiment)
        exp_id = (
            exp.experiment_id
            if exp
            else mlflow.create_experiment(experiment, artifact_location=artifact_location)
        )
        model = result.model
        with mlflow.start_run(experiment_id=exp_id) as run:
            params: dict[str, Any] = {f"protocol.{k}": v for k, v in asdict(cfg).items()}
            params.update(
                {
                    "feature_set_version": features.FEATURE_SET_VERSION,
                    "n_features": len(features.FEATURE_NAMES),
                    "seed": cfg.seed,
                    "champion_family": model.model_name,
                    "data.sha256": result.data["sha256"],
                    "data.rows": result.data["rows"],
                    "data.frauds": result.data["frauds"],
                    "data.start": result.data["start"],
                    "data.end": result.data["end"],
                }
            )
            params.update({f"deployed.{k}": v for k, v in model.trained_on.get("params", {}).items()})
            params.update({f"threshold.{k}": v for k, v in model.thresholds.items()})
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.set_tags(
                {
                    "feature_set_version": features.FEATURE_SET_VERSION,
                    "data_fingerprint": result.data["sha256"],
                    "champion_family": model.model_name,
                }
            )
            mlflow.log_metrics(_flat_metrics(result.evaluation))
            mlflow.log_metrics({f"seconds.{k}": v for k, v in result.seconds.items()})
            mlflow.log_dict(result.evaluation, "evaluation.json")
            mlflow.log_dict(result.importance, "feature_importance.json")
            mlflow.log_dict(package_versions(), "package_versions.json")
            mlflow.log_dict(result.data, "data_fingerprint.json")
            mlflow.log_dict(
                {"thresholds": model.thresholds, "feature_defaults": model.feature_defaults},
                "serving_config.json",
            )
            versions = package_versions()
            reqs = [
                f"{pkg}=={versions[pkg]}"
                for pkg in ("numpy", "pandas", "scikit-learn", "lightgbm")
                if pkg in versions
            ]
            reqs.append(
                f"mlflow-skinny=={versions.get('mlflow-skinny', versions.get('mlflow', ''))}".rstrip("=")
            )
            example = pd.DataFrame(
                [features.STATIC_DEFAULTS | _transaction_example()], columns=list(features.FEATURE_NAMES)
            )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=model,
                signature=model_signature(),
                input_example=example,
                metadata=model.metadata(),
                pip_requirements=reqs,
            )
            result.run_id = run.info.run_id
            result.model_uri = info.model_uri
    log.info("logged run %s, model %s", result.run_id, result.model_uri)


def _transaction_example() -> dict[str, float]:
    txn = features.Transaction(
        "example", pd.Timestamp("2025-01-01T12:00:00Z").to_pydatetime(), "card", "term", 42.0
    )
    vec = features.build_vector(txn, None, None)
    return {
        n: v
        for n, v in zip(features.FEATURE_NAMES, vec, strict=True)
        if features.FEATURE_GROUPS[n] == "transaction"
    }


def prepare(path: Path, *, assumed_label_delay: timedelta = DEFAULT_LABEL_DELAY) -> pd.DataFrame:
    """Labelled transactions file -> validated point-in-time feature frame."""
    return build_feature_frame(load_labelled(path, assumed_label_delay=assumed_label_delay))
