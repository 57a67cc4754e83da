"""Model lifecycle on the MLflow registry, with aliases (stages are deprecated).

What the training DAG calls, in order::

    result = ml.train.train(frame, tracking_uri=uri, register_as=NAME)   # logs and registers
    version = result.registered_version
    report = ml.gates.run_gates(result.model, result.evaluation)
    if set_challenger_if_gates_pass(NAME, version, report, tracking_uri=uri):
        promote_if_better(NAME, holdout_frame, version=version, tracking_uri=uri)

* ``@challenger`` is set only when every gate passed (the report is stored as version tags either
  way).
* ``@champion`` moves only when the challenger beats the current champion on the *same* held-out
  frame (average precision by default, both models scored here on identical rows and labels). With
  no champion yet, the challenger becomes champion. A champion built on another
  ``FEATURE_SET_VERSION`` cannot be scored on today's features: promotion then needs
  ``allow_feature_set_change=True``.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from ml import metrics
from ml.gates import GateReport
from ml.pit import feature_matrix
from ml.pyfunc import ModelBundle, load_bundle
from ml.tracking import client, mlflow_tracking, resolve_uri

log = logging.getLogger(__name__)

CHALLENGER: Final = "challenger"
CHAMPION: Final = "champion"
_METRICS: Final = {"ap": metrics.ap, "auc": metrics.auc}


def register_model(
    model_uri: str, name: str, *, tracking_uri: str | None = None, run_id: str | None = None
) -> str:
    """Register a logged model as a new version of ``name``; returns the version number."""
    with mlflow_tracking(resolve_uri(tracking_uri)):
        mv = mlflow.register_model(model_uri, name, tags={"run_id": run_id or ""})
    log.info("registered %s version %s from %s", name, mv.version, model_uri)
    return str(mv.version)


def alias_version(name: str, alias: str, *, tracking_uri: str | None = None) -> str | None:
    try:
        return str(client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def load_alias(name: str, alias: str = CHAMPION, *, tracking_uri: str | None = None) -> ModelBundle | None:
    """The model behind ``models:/<name>@<alias>`` (None when the alias is not set)."""
    version = alias_version(name, alias, tracking_uri=tracking_uri)
    if version is None:
        return None
    with mlflow_tracking(resolve_uri(tracking_uri)):
        return load_bundle(f"models:/{name}@{alias}", version=version)


def set_challenger_if_gates_pass(
    name: str, version: str, report: GateReport, *, tracking_uri: str | None = None
) -> bool:
    c = client(tracking_uri)
    c.set_model_version_tag(name, version, "gates_passed", str(report.passed).lower())
    c.set_model_version_tag(name, version, "gates", json.dumps(report.as_dict(), default=float)[:5000])
    if not report.passed:
        failed = [r.name for r in report.results if not r.passed]
        log.warning("%s v%s failed gates %s: not a challenger", name, version, failed)
        return False
    c.set_registered_model_alias(name, CHALLENGER, version)
    log.info("%s v%s is @%s", name, version, CHALLENGER)
    return True


def _score(bundle: ModelBundle, x: np.ndarray, y: np.ndarray, metric: str) -> float:
    return float(_METRICS[metric](y, bundle.model.predict_proba(x)))


def promote_if_better(
    name: str,
    holdout: pd.DataFrame,
    *,
    version: str | None = None,
    metric: str = "ap",
    min_delta: float = 0.0,
    allow_feature_set_change: bool = False,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Move ``@champion`` to the challenger if it beats the champion on ``holdout``.

    ``holdout`` is a point-in-time feature frame (``ml.pit.build_feature_frame`` / Gold) of a period
    neither model trained on, with ``is_fraud``. ``version`` defaults to ``@challenger``.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}")
    c = client(tracking_uri)
    version = version or alias_version(name, CHALLENGER, tracking_uri=tracking_uri)
    if version is None:
        raise ValueError(f"{name} has no @{CHALLENGER} and no version was given")
    with mlflow_tracking(resolve_uri(tracking_uri)):
        challenger = load_bundle(f"models:/{name}/{version}", version=version)
    champion = load_alias(name, CHAMPION, tracking_uri=tracking_uri)
    x = feature_matrix(holdout)
    y = holdout["is_fraud"].to_numpy()
    decision: dict[str, Any] = {
        "metric": metric,
        "holdout_rows": len(holdout),
        "holdout_frauds": int(y.sum()),
        "challenger": {"version": version, metric: _score(challenger, x, y, metric)},
    }
    if champion is None:
        promote, reason = True, "no current champion"
    elif champion.version == version:
        promote, reason = False, "already champion"
    elif champion.feature_set_version != challenger.feature_set_version and not allow_feature_set_change:
        promote, reason = (
            False,
            (
                f"champion uses feature set {champion.feature_set_version}, challenger "
                f"{challenger.feature_set_version}: not comparable on one holdout, promote by hand"
            ),
        )
    else:
        champ_score = _score(champion, x, y, metric)
        decision["champion"] = {"version": champion.version, metric: champ_score}
        promote = decision["challenger"][metric] > champ_score + min_delta
        reason = f"challenger {metric} {decision['challenger'][metric]:.4f} vs champion {champ_score:.4f}"
    decision.update({"promoted": bool(promote), "reason": reason})
    c.set_model_version_tag(name, version, f"holdout_{metric}", f"{decision['challenger'][metric]:.6f}")
    if promote:
        c.set_registered_model_alias(name, CHAMPION, version)
    log.info("%s v%s promotion: %s (%s)", name, version, promote, reason)
    return decision
