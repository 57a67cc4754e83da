"""Time-ordered evaluation protocol: train / delay gap / test folds with prequential validation.

Timeline (days are UTC days; defaults 7 / 7 / 7)::

    |-- burn-in (history only) --| ... | train T | gap G | test E |

* **Test folds**: the last ``n_test_folds`` consecutive test windows of ``test_days`` up to the end
  of the data. Fold ``k`` trains on ``[s_k - G - T, s_k - G)`` and is tested on ``[s_k, s_k + E)``;
  the gap stands for the label delay: at ``s_k`` the training labels are those already arrived
  (``label_time < s_k``; a fraud not yet reported counts as genuine, as it would in production).
* **Validation folds** (prequential): fold ``k`` shifted back by ``(G + E) + j * E`` for
  ``j = 0 .. n_val_folds - 1``. Each validation model trains with the labels known at its own
  validation start, and is scored with the labels known at ``s_k``; everything a validation fold
  uses is in the past of ``s_k``. Hyperparameters (best mean validation average precision) and
  decision thresholds (for the alert budget) are chosen on them, per test fold.
* **Known compromised cards** are removed from every evaluation day: a card with a fraud label that
  arrived before the start of the day is already blocked in practice, scoring it is not a win.
* The first ``burn_in_days`` only serve as feature history (30-day windows need 30 days).

The champion is the model family with the best mean *validation* score (never chosen on test).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml import metrics
from ml.estimators import MODEL_SPECS, FraudClassifier, make_model

log = logging.getLogger(__name__)

MS_PER_DAY: Final = 86_400_000
DEFAULT_MODELS: Final = ("lightgbm", "random_forest", "logistic_regression", "rules", "random")


@dataclass(frozen=True)
class ProtocolConfig:
    train_days: int = 7
    gap_days: int = 7
    test_days: int = 7
    n_test_folds: int = 4
    n_val_folds: int = 2
    burn_in_days: int = 30
    #: share of transactions sent to review or declined (the alert budget), chosen on validation
    review_budget: float = 0.01
    #: share of transactions declined outright
    decline_budget: float = 0.001
    #: daily alert budget (share of transactions) for the fraud-amount-caught metric
    alert_budget: float = 0.01
    cp_k: int = 100
    seed: int = 42
    models: tuple[str, ...] = DEFAULT_MODELS

    def __post_init__(self) -> None:
        if min(self.train_days, self.test_days) < 1 or self.gap_days < 0:
            raise ValueError("train_days and test_days must be >= 1, gap_days >= 0")
        if self.n_test_folds < 1 or self.n_val_folds < 1:
            raise ValueError("need at least one test fold and one validation fold")
        if not 0 < self.decline_budget <= self.review_budget < 1:
            raise ValueError("need 0 < decline_budget <= review_budget < 1")
        unknown = set(self.models) - set(MODEL_SPECS)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; known: {sorted(MODEL_SPECS)}")


@dataclass(frozen=True)
class Fold:
    """Half-open windows in epoch ms: train [train_start, train_end), test [test_start, test_end)."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int

    def shifted(self, ms: int) -> Fold:
        return Fold(self.train_start + ms, self.train_end + ms, self.test_start + ms, self.test_end + ms)

    def describe(self) -> dict[str, str]:
        def day(ms: int) -> str:
            return str(pd.Timestamp(ms, unit="ms", tz="UTC").date())

        return {
            "train": f"{day(self.train_start)}..{day(self.train_end - 1)}",
            "test": f"{day(self.test_start)}..{day(self.test_end - 1)}",
        }


def _fold_for_test_start(test_start: int, cfg: ProtocolConfig) -> Fold:
    train_end = test_start - cfg.gap_days * MS_PER_DAY
    return Fold(
        train_end - cfg.train_days * MS_PER_DAY,
        train_end,
        test_start,
        test_start + cfg.test_days * MS_PER_DAY,
    )


def validation_folds(fold: Fold, cfg: ProtocolConfig) -> list[Fold]:
    base = (cfg.gap_days + cfg.test_days) * MS_PER_DAY
    return [fold.shifted(-(base + j * cfg.test_days * MS_PER_DAY)) for j in range(cfg.n_val_folds)]


def data_bounds(ms: npt.NDArray[np.int64]) -> tuple[int, int]:
    """(first day start, end of last day) of the data, in ms."""
    return int(ms.min() // MS_PER_DAY * MS_PER_DAY), int((ms.max() // MS_PER_DAY + 1) * MS_PER_DAY)


def make_folds(start_ms: int, end_ms: int, cfg: ProtocolConfig) -> list[Fold]:
    """Test folds (oldest first) whose validation folds all start after the burn-in."""
    earliest = start_ms + cfg.burn_in_days * MS_PER_DAY
    folds = []
    for k in range(cfg.n_test_folds):
        test_start = end_ms - (k + 1) * cfg.test_days * MS_PER_DAY
        fold = _fold_for_test_start(test_start, cfg)
        if min(v.train_start for v in validation_folds(fold, cfg)) < earliest:
            break
        folds.append(fold)
    if not folds:
        need = cfg.burn_in_days + cfg.train_days + cfg.gap_days + cfg.test_days
        need += (cfg.gap_days + cfg.test_days) + (cfg.n_val_folds - 1) * cfg.test_days
        have = (end_ms - start_ms) / MS_PER_DAY
        raise ValueError(
            f"not enough history for the protocol: need {need} days "
            f"(burn-in {cfg.burn_in_days} + validation + train {cfg.train_days} + gap {cfg.gap_days} "
            f"+ test {cfg.test_days}), the data covers {have:.1f} days"
        )
    if len(folds) < cfg.n_test_folds:
        log.warning("only %d of %d test folds fit in the data", len(folds), cfg.n_test_folds)
    return sorted(folds, key=lambda f: f.test_start)


def deployment_fold(end_ms: int, cfg: ProtocolConfig) -> Fold:
    """The fold of a model deployed at ``end_ms``: its test window is the future."""
    return _fold_for_test_start(end_ms, cfg)


def choose_thresholds(val_prob: npt.NDArray[np.float64], cfg: ProtocolConfig) -> dict[str, float]:
    """Review / decline thresholds: quantiles of the validation scores for the stated budgets."""
    if len(val_prob) == 0:
        return {"review": 1.0, "decline": 1.0}
    review = float(np.quantile(val_prob, 1.0 - cfg.review_budget))
    decline = float(np.quantile(val_prob, 1.0 - cfg.decline_budget))
    return {"review": review, "decline": max(decline, review)}


@dataclass
class FoldResult:
    fold: Fold
    model: str
    params: dict[str, Any]
    val_score: float
    thresholds: dict[str, float]
    metrics: dict[str, float]


@dataclass
class ProtocolResult:
    config: ProtocolConfig
    folds: list[Fold]
    results: dict[str, list[FoldResult]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def champion(self) -> str:
        """Best mean validation score; ties go to the earlier model in ``config.models``."""
        scores = {m: np.nanmean([r.val_score for r in rs]) for m, rs in self.results.items()}
        return max(self.config.models, key=lambda m: (scores.get(m, -math.inf), -self.config.models.index(m)))

    def summary(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, rs in self.results.items():
            keys = [k for k in rs[0].metrics if not k.startswith("n_")]
            entry: dict[str, Any] = {k: metrics.mean_std([r.metrics[k] for r in rs]) for k in keys}
            entry["validation_ap"] = metrics.mean_std([r.val_score for r in rs])
            entry["folds"] = [
                {**r.fold.describe(), "params": r.params, "thresholds": r.thresholds, **r.metrics} for r in rs
            ]
            models[name] = entry
        return {
            "champion": self.champion,
            "models": models,
            "protocol": {**asdict(self.config), "folds": [f.describe() for f in self.folds]},
            "seconds": round(self.seconds, 1),
        }


class Evaluator:
    """Runs the protocol on a point-in-time feature frame and its matrix (rows sorted by time)."""

    def __init__(self, frame: pd.DataFrame, x: npt.NDArray[np.float64], cfg: ProtocolConfig) -> None:
        self.cfg = cfg
        self.x = x
        self.ms = frame["event_time_ms"].to_numpy(np.int64)
        if np.any(np.diff(self.ms) < 0):
            raise ValueError("frame must be sorted by event_time_ms")
        self.y = frame["is_fraud"].to_numpy().astype(np.int8)
        self.label_ms = frame["label_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
        self.label_ms = np.where(self.y == 1, self.label_ms, np.iinfo(np.int64).max)
        self.card = frame["card_id"].to_numpy(dtype=object)
        self.amount = frame["amount"].to_numpy(np.float64)
        self.day = self.ms // MS_PER_DAY
        # first time a fraud label of the card is known
        first_known = pd.Series(self.label_ms).groupby(pd.factorize(self.card)[0]).transform("min")
        self.card_known_ms = first_known.to_numpy(np.int64)
        self._fits: dict[tuple[Any, ...], FraudClassifier] = {}
        self._preds: dict[tuple[Any, ...], npt.NDArray[np.float64]] = {}

    def rows(self, start: int, end: int) -> slice:
        return slice(int(np.searchsorted(self.ms, start, "left")), int(np.searchsorted(self.ms, end, "left")))

    def eval_index(self, start: int, end: int) -> npt.NDArray[np.int64]:
        """Rows of [start, end) minus cards already known compromised at the start of their day."""
        sl = self.rows(start, end)
        idx = np.arange(sl.start, sl.stop)
        day_start = self.day[idx] * MS_PER_DAY
        return idx[~(self.card_known_ms[idx] < day_start)]

    def known_labels(self, idx: npt.NDArray[np.int64] | slice, cutoff: int) -> npt.NDArray[np.int8]:
        return ((self.y[idx] == 1) & (self.label_ms[idx] < cutoff)).astype(np.int8)

    def fit(
        self, name: str, params: dict[str, Any], train_start: int, train_end: int, cutoff: int
    ) -> FraudClassifier:
        key = (name, tuple(sorted(params.items())), train_start, train_end, cutoff)
        if key not in self._fits:
            sl = self.rows(train_start, train_end)
            y = self.known_labels(sl, cutoff)
            started = time.perf_counter()
            self._fits[key] = make_model(name, params, self.cfg.seed).fit(self.x[sl], y)
            log.debug("fit %s %s on %d rows in %.1fs", name, params, len(y), time.perf_counter() - started)
        return self._fits[key]

    def predict(
        self, model: FraudClassifier, key: tuple[Any, ...], idx: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        if key not in self._preds:
            self._preds[key] = model.predict_proba(self.x[idx])
        return self._preds[key]

    def select(self, name: str, fold: Fold) -> tuple[dict[str, Any], float, dict[str, float]]:
        """Best hyperparameters on the validation folds of ``fold``, their score, thresholds."""
        best: tuple[float, dict[str, Any], npt.NDArray[np.float64]] | None = None
        for params in MODEL_SPECS[name].grid:
            scores, probs = [], []
            for vf in validation_folds(fold, self.cfg):
                model = self.fit(name, params, vf.train_start, vf.train_end, cutoff=vf.test_start)
                idx = self.eval_index(vf.test_start, vf.test_end)
                key = (name, tuple(sorted(params.items())), vf)
                p = self.predict(model, key, idx)
                scores.append(metrics.ap(self.known_labels(idx, fold.test_start), p))
                probs.append(p)
            score = float(np.nanmean(scores)) if not all(math.isnan(s) for s in scores) else math.nan
            if best is None or (not math.isnan(score) and (math.isnan(best[0]) or score > best[0])):
                best = (score, dict(params), np.concatenate(probs))
        assert best is not None
        return best[1], best[0], choose_thresholds(best[2], self.cfg)

    def run_fold(self, name: str, fold: Fold) -> FoldResult:
        params, val_score, thresholds = self.select(name, fold)
        model = self.fit(name, params, fold.train_start, fold.train_end, cutoff=fold.test_start)
        idx = self.eval_index(fold.test_start, fold.test_end)
        prob = model.predict_proba(self.x[idx])
        period_metrics = metrics.evaluate_period(
            day=self.day[idx],
            card=self.card[idx],
            y=self.y[idx],
            prob=prob,
            amount=self.amount[idx],
            review_threshold=thresholds["review"],
            k=self.cfg.cp_k,
            alert_budget=self.cfg.alert_budget,
        )
        return FoldResult(fold, name, params, val_score, thresholds, period_metrics)


def run_protocol(
    frame: pd.DataFrame,
    x: npt.NDArray[np.float64],
    cfg: ProtocolConfig,
    models: Iterable[str] | None = None,
    *,
    evaluator: Evaluator | None = None,
) -> ProtocolResult:
    """Evaluate every model family on every test fold (see module docstring)."""
    started = time.perf_counter()
    ev = evaluator or Evaluator(frame, x, cfg)
    start_ms, end_ms = data_bounds(ev.ms)
    folds = make_folds(start_ms, end_ms, cfg)
    result = ProtocolResult(cfg, folds)
    for name in models or cfg.models:
        t0 = time.perf_counter()
        result.results[name] = [ev.run_fold(name, fold) for fold in folds]
        s = result.summary()["models"][name]
        log.info(
            "%-20s AUC %.3f±%.3f  AP %.3f±%.3f  CP@%d %.3f±%.3f  (%.0fs)",
            name,
            s["auc"]["mean"],
            s["auc"]["std"],
            s["ap"]["mean"],
            s["ap"]["std"],
            cfg.cp_k,
            s[f"cp_at_{cfg.cp_k}"]["mean"],
            s[f"cp_at_{cfg.cp_k}"]["std"],
            time.perf_counter() - t0,
        )
    result.seconds = time.perf_counter() - started
    return result
