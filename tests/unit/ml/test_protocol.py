"""Metrics and the time-ordered fold protocol on tiny hand-made data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml import metrics
from ml.protocol import (
    MS_PER_DAY,
    Evaluator,
    ProtocolConfig,
    choose_thresholds,
    deployment_fold,
    make_folds,
    validation_folds,
)

D = MS_PER_DAY


def test_card_precision_at_k_ranks_cards_by_their_best_score_per_day() -> None:
    day = np.array([1, 1, 1, 1, 1, 2, 2, 2])
    card = np.array(["A", "B", "C", "D", "D", "E", "E", "F"])
    y = np.array([1, 0, 1, 0, 0, 0, 1, 1])
    score = np.array([0.9, 0.8, 0.3, 0.95, 0.1, 0.5, 0.2, 0.4])
    # day 1: D (0.95, genuine), A (0.9, fraud) -> 1/2; day 2: E (fraud via its 2nd txn), F -> 2/2
    assert metrics.card_precision_at_k(day, card, y, score, k=2) == pytest.approx(0.75)
    # k larger than the number of cards still divides by k
    assert metrics.card_precision_at_k(day, card, y, score, k=4) == pytest.approx((2 / 4 + 2 / 4) / 2)


def test_recall_at_one_percent_fpr() -> None:
    neg = np.arange(100) / 100.0  # 0.00 .. 0.99
    y = np.concatenate([np.zeros(100), [1, 1]])
    score = np.concatenate([neg, [0.995, 0.5]])
    assert metrics.recall_at_fpr(y, score, 0.01) == pytest.approx(0.5)
    assert metrics.recall_at_fpr(y, score, 0.6) == pytest.approx(1.0)


def test_fraud_amount_caught_at_a_daily_budget() -> None:
    day = np.array([1, 1, 1, 1, 2, 2])
    y = np.array([1, 1, 0, 0, 1, 0])
    score = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.1])
    amount = np.array([100.0, 50.0, 1.0, 1.0, 30.0, 1.0])
    # budget 0.5 -> 2 alerts on day 1 (fraud 100, genuine), 1 on day 2 (fraud 30); missed 50
    assert metrics.fraud_amount_caught(day, y, score, amount, budget=0.5) == pytest.approx(130 / 180)


def test_brier_and_mean_std() -> None:
    assert metrics.brier(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.25)
    assert metrics.mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(math.sqrt(2))}
    assert metrics.mean_std([0.5]) == {"mean": 0.5, "std": 0.0}
    assert math.isnan(metrics.auc(np.array([0, 0]), np.array([0.1, 0.2])))


def test_folds_are_time_ordered_with_a_gap_and_validation_in_the_past() -> None:
    cfg = ProtocolConfig(
        train_days=7, gap_days=7, test_days=7, n_test_folds=3, n_val_folds=2, burn_in_days=10
    )
    start, end = 0, 100 * D
    folds = make_folds(start, end, cfg)
    assert [(f.test_start // D, f.test_end // D) for f in folds] == [(79, 86), (86, 93), (93, 100)]
    for f in folds:
        assert f.train_end - f.train_start == 7 * D
        assert f.test_start - f.train_end == 7 * D  # the delay gap
        for v in validation_folds(f, cfg):
            assert v.test_end <= f.train_end  # validated before the fold's own training window ends
            assert v.test_start - v.train_end == 7 * D
            assert v.train_start >= start + 10 * D  # burn-in respected
    dep = deployment_fold(end, cfg)
    assert (dep.train_start // D, dep.train_end // D, dep.test_start // D) == (86, 93, 100)


def test_not_enough_history_is_an_explicit_error() -> None:
    cfg = ProtocolConfig(burn_in_days=30)
    with pytest.raises(ValueError, match=r"not enough history.*need 72 days"):
        make_folds(0, 40 * D, cfg)
    folds = make_folds(0, 80 * D, cfg)  # room for 2 of the 4 test folds only
    assert len(folds) == 2


def _tiny_frame() -> pd.DataFrame:
    rows = [
        # card X: fraud on day 2, label known day 3.5 -> removed from test days 4 and 5
        ("x1", 2 * D + 1000, "X", 1, 3 * D + D // 2),
        ("x2", 4 * D + 1000, "X", 0, None),
        ("x3", 5 * D + 1000, "X", 0, None),
        # card Y: fraud on day 4, label only on day 6 -> kept on days 4 and 5
        ("y1", 4 * D + 2000, "Y", 1, 6 * D),
        ("y2", 5 * D + 2000, "Y", 0, None),
        # card Z: label arrives during day 4 -> removed on day 5 only
        ("z1", 1 * D, "Z", 1, 4 * D + 5000),
        ("z2", 4 * D + 9000, "Z", 0, None),
        ("z3", 5 * D + 9000, "Z", 0, None),
    ]
    df = pd.DataFrame(rows, columns=["transaction_id", "event_time_ms", "card_id", "is_fraud", "label_ms"])
    df["label_time"] = pd.to_datetime(df["label_ms"], unit="ms", utc=True)
    df["amount"] = 10.0
    return df.sort_values("event_time_ms").reset_index(drop=True)


def test_known_compromised_cards_are_removed_from_each_test_day() -> None:
    df = _tiny_frame()
    ev = Evaluator(df, np.zeros((len(df), 1)), ProtocolConfig())
    kept = set(df.loc[ev.eval_index(4 * D, 6 * D), "transaction_id"])
    assert kept == {"y1", "y2", "z2"}


def test_training_labels_are_those_arrived_before_the_cutoff() -> None:
    df = _tiny_frame()
    ev = Evaluator(df, np.zeros((len(df), 1)), ProtocolConfig())
    sl = ev.rows(0, 6 * D)
    known = dict(zip(df["transaction_id"].iloc[sl], ev.known_labels(sl, cutoff=5 * D), strict=True))
    assert known["x1"] == 1 and known["z1"] == 1
    assert known["y1"] == 0  # fraud, but reported on day 6: unknown at the cutoff


def test_thresholds_follow_the_alert_budget() -> None:
    probs = np.linspace(0, 1, 10_001)
    t = choose_thresholds(probs, ProtocolConfig(review_budget=0.01, decline_budget=0.001))
    assert t["review"] == pytest.approx(0.99, abs=1e-3)
    assert t["decline"] == pytest.approx(0.999, abs=1e-3)
    assert np.mean(probs >= t["review"]) == pytest.approx(0.01, abs=1e-3)


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown models"):
        ProtocolConfig(models=("xgboost",))
    with pytest.raises(ValueError, match="decline_budget"):
        ProtocolConfig(review_budget=0.001, decline_budget=0.01)
