"""Fraud-detection metrics on one evaluation period (a test or validation fold).

All functions take plain arrays aligned row by row: ``y`` (0/1 truth), ``score`` (fraud probability),
and where needed ``day`` (integer UTC day of the transaction), ``card`` (card id) and ``amount``.

* ``auc`` — ROC AUC over transactions.
* ``ap`` — average precision over transactions.
* ``cp_at_k`` — card precision @k: for each day, rank the cards by their highest score that day,
  take the top ``k``; precision = fraudulent cards among them / ``k`` (a card is fraudulent that day
  if any of its transactions that day is). Mean over days.
* ``recall_at_1pct_fpr`` — highest transaction recall reachable with a false-positive rate <= 1 %.
* ``fraud_amount_caught`` — each day, alert the top ``ceil(budget * n_day)`` transactions by score;
  share of the period's fraud amount that falls in the alerts.
* ``brier`` — mean squared error of the probability.
* ``alert_rate`` / ``alert_precision`` — share of transactions at or above the review threshold and
  the fraud share among them (the thresholds chosen on validation, applied unchanged).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _both_classes(y: npt.NDArray[Any]) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def auc(y: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    return float(roc_auc_score(y, score)) if _both_classes(y) else math.nan


def ap(y: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    return float(average_precision_score(y, score)) if _both_classes(y) else math.nan


def recall_at_fpr(y: npt.NDArray[Any], score: npt.NDArray[Any], max_fpr: float = 0.01) -> float:
    if not _both_classes(y):
        return math.nan
    fpr, tpr, _ = roc_curve(y, score)
    return float(tpr[fpr <= max_fpr].max(initial=0.0))


def brier(y: npt.NDArray[Any], prob: npt.NDArray[Any]) -> float:
    return (
        float(np.mean((np.asarray(prob, dtype=float) - np.asarray(y, dtype=float)) ** 2))
        if len(y)
        else math.nan
    )


def card_precision_at_k(
    day: npt.NDArray[Any], card: npt.NDArray[Any], y: npt.NDArray[Any], score: npt.NDArray[Any], k: int = 100
) -> float:
    """Mean over days of the fraud share among the ``k`` highest-scored cards of the day.

    Ties between cards are broken by card id (ascending) so the figure is deterministic.
    """
    if len(day) == 0:
        return math.nan
    frame = pd.DataFrame({"day": day, "card": card, "y": y, "score": score})
    per_card = (
        frame.groupby(["day", "card"], sort=True).agg(score=("score", "max"), y=("y", "max")).reset_index()
    )
    per_card = per_card.sort_values(["day", "score", "card"], ascending=[True, False, True], kind="stable")
    top = per_card.groupby("day", sort=True).head(k)
    daily = top.groupby("day")["y"].sum() / float(k)
    return float(daily.mean())


def fraud_amount_caught(
    day: npt.NDArray[Any],
    y: npt.NDArray[Any],
    score: npt.NDArray[Any],
    amount: npt.NDArray[Any],
    budget: float = 0.01,
) -> float:
    """Share of fraud amount among the daily top ``budget`` share of transactions by score."""
    frame = pd.DataFrame({"day": day, "y": y, "score": score, "amount": amount})
    total = float(frame.loc[frame["y"] == 1, "amount"].sum())
    if total <= 0:
        return math.nan
    frame = frame.sort_values(["day", "score"], ascending=[True, False], kind="stable")
    rank = frame.groupby("day").cumcount()
    quota = np.ceil(frame.groupby("day")["y"].transform("size") * budget)
    alerted = frame[rank < quota]
    return float(alerted.loc[alerted["y"] == 1, "amount"].sum()) / total


def evaluate_period(
    *,
    day: npt.NDArray[Any],
    card: npt.NDArray[Any],
    y: npt.NDArray[Any],
    prob: npt.NDArray[Any],
    amount: npt.NDArray[Any],
    review_threshold: float | None = None,
    k: int = 100,
    alert_budget: float = 0.01,
) -> dict[str, float]:
    """Every metric of one period (see module docstring)."""
    y = np.asarray(y, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    out = {
        "auc": auc(y, prob),
        "ap": ap(y, prob),
        f"cp_at_{k}": card_precision_at_k(day, card, y, prob, k),
        "recall_at_1pct_fpr": recall_at_fpr(y, prob, 0.01),
        "fraud_amount_caught": fraud_amount_caught(day, y, prob, amount, alert_budget),
        "brier": brier(y, prob),
        "n_transactions": float(len(y)),
        "n_frauds": float(y.sum()),
    }
    if review_threshold is not None:
        alerts = prob >= review_threshold
        out["alert_rate"] = float(alerts.mean()) if len(y) else math.nan
        out["alert_precision"] = float(y[alerts].mean()) if alerts.any() else math.nan
    return out


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation over folds, ignoring NaN (std 0 for a single fold)."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return {"mean": math.nan, "std": math.nan}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0}
