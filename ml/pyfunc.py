"""The deployable model: a fitted classifier plus everything serving needs to use it.

:class:`FraudModel` is an MLflow ``pyfunc``: its input is a frame of feature vectors (columns
``features.FEATURE_NAMES``), its output ``fraud_probability`` and ``decision``
(``approve`` / ``review`` / ``decline``). The thresholds, the learnt defaults for missing feature
groups and ``FEATURE_SET_VERSION`` travel inside it and in the MLmodel ``metadata``, so
``models:/<name>@champion`` is self-contained: see :func:`load_bundle`.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import mlflow.pyfunc
import numpy as np
import numpy.typing as npt
import pandas as pd
from mlflow.pyfunc import PythonModel

import features
from ml.estimators import FraudClassifier

log = logging.getLogger(__name__)

DECISIONS = ("approve", "review", "decline")


def decide(prob: npt.NDArray[np.float64], thresholds: Mapping[str, float]) -> npt.NDArray[np.str_]:
    """``decline`` at or above the decline threshold, ``review`` at or above review, else ``approve``."""
    return np.where(
        prob >= thresholds["decline"], "decline", np.where(prob >= thresholds["review"], "review", "approve")
    )


class FraudModel(PythonModel):
    """Classifier + thresholds + learnt feature defaults + feature set version."""

    def __init__(
        self,
        classifier: FraudClassifier,
        *,
        model_name: str,
        thresholds: Mapping[str, float],
        feature_defaults: Mapping[str, float],
        feature_set_version: str = features.FEATURE_SET_VERSION,
        feature_names: Sequence[str] = features.FEATURE_NAMES,
        trained_on: Mapping[str, Any] | None = None,
        score_reference: Mapping[str, Any] | None = None,
    ) -> None:
        self.classifier = classifier
        self.model_name = model_name
        self.thresholds = dict(thresholds)
        self.feature_defaults = {k: float(v) for k, v in feature_defaults.items()}
        self.feature_set_version = feature_set_version
        self.feature_names = tuple(feature_names)
        self.trained_on = dict(trained_on or {})
        # the score bins drift is measured against (ml.drift); None in models registered before it
        self.score_reference = dict(score_reference) if score_reference else None

    def metadata(self) -> dict[str, Any]:
        return {
            "model_family": self.model_name,
            "feature_set_version": self.feature_set_version,
            "feature_names": list(self.feature_names),
            "thresholds": self.thresholds,
            "feature_defaults": self.feature_defaults,
            "trained_on": self.trained_on,
            "score_reference": self.score_reference,
        }

    def _matrix(self, model_input: pd.DataFrame | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        if isinstance(model_input, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in model_input.columns]
            if missing:
                raise ValueError(f"model input lacks feature columns: {missing}")
            return model_input[list(self.feature_names)].to_numpy(dtype=np.float64)
        arr = np.asarray(model_input, dtype=np.float64)
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    def predict_proba(self, model_input: pd.DataFrame | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(self.classifier.predict_proba(self._matrix(model_input)), dtype=np.float64)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        prob = self.predict_proba(model_input)
        return pd.DataFrame({"fraud_probability": prob, "decision": decide(prob, self.thresholds)})

    def score(self, vectors: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
        """Probability and decision for feature vectors built with ``features.build_vector``."""
        prob = self.predict_proba(np.asarray(vectors, dtype=np.float64))
        return [
            {"fraud_probability": float(p), "decision": str(d)}
            for p, d in zip(prob, decide(prob, self.thresholds), strict=True)
        ]


@dataclass
class ModelBundle:
    """What serving gets from ``models:/<name>@<alias>``."""

    model: FraudModel
    uri: str
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, float]:
        return self.model.thresholds

    @property
    def feature_defaults(self) -> dict[str, float]:
        return self.model.feature_defaults

    @property
    def feature_set_version(self) -> str:
        return self.model.feature_set_version

    @property
    def score_reference(self) -> dict[str, Any] | None:
        """The training score bins (ml.drift), absent from models registered before them."""
        return getattr(self.model, "score_reference", None)

    def score_transaction(
        self,
        txn: features.Transaction,
        card: features.CardFeatures | None,
        terminal: features.TerminalFeatures | None,
    ) -> dict[str, Any]:
        """Vector (learnt defaults where a snapshot is missing) -> probability and decision."""
        vector = features.build_vector(txn, card, terminal, defaults=self.feature_defaults)
        return self.model.score([vector])[0]


#: Where the pickled classes lived before they were renamed: models registered then still load.
FORMER_MODULES: Final = {"ml.model": "ml.pyfunc", "ml.models": "ml.estimators"}


def load_bundle(uri: str, version: str | None = None) -> ModelBundle:
    """Load a logged/registered FraudModel (e.g. ``models:/fraud-detector@champion``)."""
    for former, current in FORMER_MODULES.items():
        sys.modules.setdefault(former, importlib.import_module(current))
    loaded = mlflow.pyfunc.load_model(uri)
    model = loaded.unwrap_python_model()
    if not isinstance(model, FraudModel):
        raise TypeError(f"{uri} is not a FraudModel pyfunc (got {type(model).__name__})")
    meta = dict(loaded.metadata.metadata or {})
    return ModelBundle(model=model, uri=uri, version=version, metadata=meta)
