"""The model zoo compared in every run: LightGBM (the candidate) against baselines.

Every model maps a feature matrix (columns in ``features.FEATURE_NAMES`` order) to a fraud
probability. Models trained with a positive-class weight ``w`` estimate inflated odds; their
output is mapped back with the prior correction ``p = q / (q + w (1 - q))`` so probabilities stay
comparable (Brier score, thresholds) across models.

* ``lightgbm`` — gradient-boosted trees, class weight ``scale_pos_weight``.
* ``random_forest`` — the original design's RandomForest (scikit-learn), weighted classes.
* ``logistic_regression`` — signed log transform, standardisation, weighted L2 logistic regression.
* ``rules`` — a fixed expert rule set (velocity, amount anomaly, impossible speed, new device with a
  large amount, risky terminal); the number of rules fired is mapped to the fraud rate observed per
  count on the training data.
* ``random`` — random scores around the training fraud rate: the floor every model must beat.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Protocol

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import features

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]


class FraudClassifier(Protocol):
    name: str
    params: dict[str, Any]

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> FraudClassifier: ...

    def predict_proba(self, x: Matrix) -> Vector: ...

    def feature_importance(self) -> dict[str, float]: ...


def prior_correction(q: Vector, weight: float) -> Vector:
    """Undo a positive-class weight: odds divided by ``weight``."""
    q = np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0)
    if weight == 1.0:
        return q
    den = q + weight * (1.0 - q)
    return np.where(den > 0, q / np.where(den > 0, den, 1.0), 0.0)


def _signed_log(x: Matrix) -> Matrix:
    return np.sign(x) * np.log1p(np.abs(x))


@dataclass
class LightGBMModel:
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str = "lightgbm"
    _booster: lgb.Booster | None = None

    BASE: ClassVar[dict[str, Any]] = {
        "objective": "binary",
        "learning_rate": 0.05,
        "n_estimators": 300,
        "num_leaves": 15,
        "min_child_samples": 100,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.5,
        "reg_lambda": 1.0,
        "scale_pos_weight": 5.0,
    }
    #: one thread: deterministic, and OpenMP spin-waiting degrades badly on a busy machine
    N_JOBS: ClassVar[int] = 1

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> LightGBMModel:
        p = {**self.BASE, **self.params}
        model = lgb.LGBMClassifier(
            **p,
            random_state=self.seed,
            n_jobs=self.N_JOBS,
            verbose=-1,
            deterministic=True,
            force_row_wise=True,
        )
        model.fit(x, y)
        self._booster = model.booster_
        return self

    def predict_proba(self, x: Matrix) -> Vector:
        assert self._booster is not None, "fit first"
        q = np.asarray(self._booster.predict(x), dtype=np.float64)
        return prior_correction(q, float({**self.BASE, **self.params}["scale_pos_weight"]))

    def feature_importance(self) -> dict[str, float]:
        assert self._booster is not None
        gain = self._booster.feature_importance(importance_type="gain")
        return {n: float(g) for n, g in zip(features.FEATURE_NAMES, gain, strict=True)}


@dataclass
class RandomForestModel:
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str = "random_forest"
    _model: RandomForestClassifier | None = None

    BASE: ClassVar[dict[str, Any]] = {
        "n_estimators": 100,
        "max_depth": 12,
        "min_samples_leaf": 5,
        "class_weight_pos": 10.0,
    }

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> RandomForestModel:
        p = {**self.BASE, **self.params}
        self._model = RandomForestClassifier(
            n_estimators=int(p["n_estimators"]),
            max_depth=p["max_depth"],
            min_samples_leaf=int(p["min_samples_leaf"]),
            class_weight={0: 1.0, 1: float(p["class_weight_pos"])},
            max_features="sqrt",
            n_jobs=2,
            random_state=self.seed,
        )
        self._model.fit(x, y)
        return self

    def predict_proba(self, x: Matrix) -> Vector:
        assert self._model is not None, "fit first"
        # one thread: parallel tree averaging sums in a nondeterministic order (bitwise-unstable scores)
        self._model.n_jobs = 1
        proba = self._model.predict_proba(x)
        q = proba[:, 1] if proba.shape[1] == 2 else np.zeros(len(x))
        return prior_correction(q, float({**self.BASE, **self.params}["class_weight_pos"]))

    def feature_importance(self) -> dict[str, float]:
        assert self._model is not None
        return {
            n: float(v) for n, v in zip(features.FEATURE_NAMES, self._model.feature_importances_, strict=True)
        }


@dataclass
class LogisticModel:
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str = "logistic_regression"
    _model: Any = None

    BASE: ClassVar[dict[str, Any]] = {"C": 1.0, "class_weight_pos": 10.0}

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> LogisticModel:
        p = {**self.BASE, **self.params}
        self._model = make_pipeline(
            FunctionTransformer(_signed_log),
            StandardScaler(),
            LogisticRegression(
                C=float(p["C"]),
                class_weight={0: 1.0, 1: float(p["class_weight_pos"])},
                max_iter=2000,
                random_state=self.seed,
            ),
        )
        self._model.fit(x, y)
        return self

    def predict_proba(self, x: Matrix) -> Vector:
        assert self._model is not None, "fit first"
        q = self._model.predict_proba(x)[:, 1]
        return prior_correction(q, float({**self.BASE, **self.params}["class_weight_pos"]))

    def feature_importance(self) -> dict[str, float]:
        coef = np.abs(self._model[-1].coef_[0])
        return {n: float(v) for n, v in zip(features.FEATURE_NAMES, coef, strict=True)}


_IDX: Final = {name: i for i, name in enumerate(features.FEATURE_NAMES)}

#: name -> (rule, plain-language meaning). Generic rules of a legacy fraud engine, not fitted.
RULES: Final[dict[str, tuple[Callable[[Matrix], npt.NDArray[np.bool_]], str]]] = {
    "velocity_1h": (
        lambda x: x[:, _IDX["card_count_txn_1h"]] >= 5,
        ">= 5 card transactions in the last hour",
    ),
    "amount_anomaly": (lambda x: x[:, _IDX["amount_zscore_30d"]] > 4, "amount z-score > 4 vs 30 days"),
    "impossible_speed": (lambda x: x[:, _IDX["speed_from_prev_kmh"]] > 900, "> 900 km/h since previous"),
    "new_device_large": (
        lambda x: (x[:, _IDX["is_new_device"]] == 1) & (x[:, _IDX["log_amount_ratio_30d"]] > 1.0),
        "new device and amount > e x the 30-day mean",
    ),
    "risky_terminal": (
        lambda x: x[:, _IDX["terminal_fraud_share_30d"]] > 0.05,
        "> 5 % known fraud at terminal",
    ),
    "large_new_merchant": (
        lambda x: (x[:, _IDX["is_new_terminal"]] == 1) & (x[:, _IDX["amount"]] > 1000),
        "amount > 1000 at a terminal new to the card",
    ),
}


@dataclass
class RulesModel:
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str = "rules"
    _rate: Vector | None = None

    @staticmethod
    def hits(x: Matrix) -> npt.NDArray[np.int64]:
        return np.sum([rule(x) for rule, _ in RULES.values()], axis=0).astype(np.int64)

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> RulesModel:
        h = self.hits(x)
        n_levels = len(RULES) + 1
        count = np.bincount(h, minlength=n_levels).astype(float)
        fraud = np.bincount(h, weights=np.asarray(y, dtype=float), minlength=n_levels)
        prior = (fraud.sum() + 1.0) / (count.sum() + 2.0)
        rate = (fraud + prior) / (count + 1.0)  # smoothed towards the prior
        self._rate = np.maximum.accumulate(rate)  # more rules fired is never less risky
        return self

    def predict_proba(self, x: Matrix) -> Vector:
        assert self._rate is not None, "fit first"
        return np.asarray(self._rate[self.hits(x)], dtype=np.float64)

    def feature_importance(self) -> dict[str, float]:
        return {}


@dataclass
class RandomModel:
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    name: str = "random"
    _prior: float = 0.0

    def fit(self, x: Matrix, y: npt.NDArray[Any]) -> RandomModel:
        self._prior = float(np.mean(y)) if len(y) else 0.0
        return self

    def predict_proba(self, x: Matrix) -> Vector:
        rng = np.random.default_rng([self.seed, len(x)])
        return rng.random(len(x)) * 2.0 * self._prior

    def feature_importance(self) -> dict[str, float]:
        return {}


@dataclass(frozen=True)
class ModelSpec:
    factory: Callable[[dict[str, Any], int], FraudClassifier]
    grid: tuple[dict[str, Any], ...]


#: Hyperparameter grids searched by prequential validation (kept small: every config is refitted
#: on every validation window).
MODEL_SPECS: Final[dict[str, ModelSpec]] = {
    "lightgbm": ModelSpec(
        lambda p, s: LightGBMModel(dict(p), s),
        (
            {"num_leaves": 15, "min_child_samples": 100},
            {"num_leaves": 31, "min_child_samples": 50},
        ),
    ),
    "random_forest": ModelSpec(
        lambda p, s: RandomForestModel(dict(p), s),
        tuple({"max_depth": d, "class_weight_pos": 10.0} for d in (8, 16)),
    ),
    "logistic_regression": ModelSpec(
        lambda p, s: LogisticModel(dict(p), s), tuple({"C": c, "class_weight_pos": 10.0} for c in (0.1, 1.0))
    ),
    "rules": ModelSpec(lambda p, s: RulesModel(dict(p), s), ({},)),
    "random": ModelSpec(lambda p, s: RandomModel(dict(p), s), ({},)),
}


def make_model(name: str, params: Mapping[str, Any], seed: int) -> FraudClassifier:
    return MODEL_SPECS[name].factory(dict(params), seed)
