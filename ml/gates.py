"""Gates a model must pass before it may become ``@challenger``.

Behaviour gates (scenarios built by hand, scored through the same path serving uses:
``features.build_vector`` on snapshots from ``ml.pit`` -> ``FraudModel``):

* ``card_testing_burst`` — a card with three weeks of ordinary history gets 8 small online
  amounts 30 s apart from an unknown device, then a large one: the large transaction must score at
  or above the model's review threshold.
* ``merchant_name_casing`` — the same transactions with the merchant name in lower, upper, title
  and swapped case must get exactly the same scores.

Quality gate (``quality``): on the test folds the model's mean average precision beats the rules
baseline and the random baseline, and its mean AUC is at least ``min_auc``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

import features
from ml.data import validate_transactions
from ml.pit import card_snapshot, terminal_snapshot
from ml.pyfunc import FraudModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "gates": {r.name: {"passed": r.passed, **r.detail} for r in self.results},
        }


def _row(txn: features.Transaction) -> dict[str, Any]:
    return {
        "transaction_id": txn.transaction_id,
        "event_time": txn.event_time,
        "card_id": txn.card_id,
        "terminal_id": txn.terminal_id,
        "amount": txn.amount,
        "is_fraud": 0,
        "channel": txn.channel,
        "mcc": txn.mcc,
        "device_id": txn.device_id,
        "latitude": txn.latitude,
        "longitude": txn.longitude,
        "country": txn.country,
        "currency": txn.currency,
        "merchant_name": txn.merchant_name,
    }


def ordinary_history(card_id: str, start: datetime, days: int = 21) -> list[features.Transaction]:
    """Two card-present purchases a day at three usual terminals around Paris, amounts 20–60."""
    out = []
    for d in range(days):
        for i, hour in enumerate((9, 18)):
            k = (d + i) % 3
            out.append(
                features.Transaction(
                    transaction_id=f"gate-{card_id}-{d:03d}-{i}",
                    event_time=start + timedelta(days=d, hours=hour, minutes=7 * k),
                    card_id=card_id,
                    terminal_id=f"gate-term-{k}",
                    amount=20.0 + 10.0 * k + (d % 5),
                    channel="card_present",
                    mcc=("5411", "5812", "5541")[k],
                    latitude=48.85 + 0.01 * k,
                    longitude=2.35 + 0.01 * k,
                    country="FR",
                    currency="EUR",
                    merchant_name=("Market Dupont", "Bistro Rossi", "Fuel Nord")[k],
                )
            )
    return out


def card_testing_burst(card_id: str, at: datetime, n_small: int = 8) -> list[features.Transaction]:
    """``n_small`` amounts of 1.00–1.70 every 30 s at one online merchant, then 899.00 two minutes later."""
    burst = [
        features.Transaction(
            transaction_id=f"gate-{card_id}-burst-{i:02d}",
            event_time=at + timedelta(seconds=30 * i),
            card_id=card_id,
            terminal_id="gate-web-small",
            amount=1.0 + 0.1 * i,
            channel="online",
            mcc="5816",
            device_id="gate-device-unknown",
            latitude=52.52,
            longitude=13.40,
            country="DE",
            currency="EUR",
            merchant_name="Games Online",
        )
        for i in range(n_small)
    ]
    burst.append(
        features.Transaction(
            transaction_id=f"gate-{card_id}-burst-large",
            event_time=at + timedelta(seconds=30 * (n_small - 1) + 120),
            card_id=card_id,
            terminal_id="gate-web-large",
            amount=899.0,
            channel="online",
            mcc="5732",
            device_id="gate-device-unknown",
            latitude=52.52,
            longitude=13.40,
            country="DE",
            currency="EUR",
            merchant_name="Tech Online",
        )
    )
    return burst


def score_sequence(model: FraudModel, transactions: list[features.Transaction]) -> list[float]:
    """Score every transaction against the history of all earlier ones (the serving path)."""
    history = validate_transactions(pd.DataFrame([_row(t) for t in transactions]))
    vectors = [
        features.build_vector(
            txn,
            card_snapshot(history, txn.card_id, txn.event_time),
            terminal_snapshot(history, txn.terminal_id, txn.event_time),
            defaults=model.feature_defaults,
        )
        for txn in transactions
    ]
    return [s["fraud_probability"] for s in model.score(vectors)]


def card_testing_gate(model: FraudModel, start: datetime | None = None) -> GateResult:
    start = start or datetime(2025, 3, 1, tzinfo=UTC)
    history = ordinary_history("gate-card", start)
    burst = card_testing_burst("gate-card", start + timedelta(days=21, hours=3))
    scores = score_sequence(model, history + burst)
    large = scores[-1]
    ordinary = scores[: len(history)]
    review = model.thresholds["review"]
    return GateResult(
        "card_testing_burst",
        large >= review,
        {
            "large_amount_score": large,
            "review_threshold": review,
            "max_ordinary_score": max(ordinary),
            "burst_scores": scores[len(history) :],
        },
    )


def merchant_casing_gate(model: FraudModel, start: datetime | None = None) -> GateResult:
    start = start or datetime(2025, 3, 1, tzinfo=UTC)
    base = ordinary_history("gate-card-2", start, days=10) + card_testing_burst(
        "gate-card-2", start + timedelta(days=10, hours=2), n_small=5
    )
    reference = score_sequence(model, base)
    variants: dict[str, list[float]] = {}
    for style in ("lower", "upper", "title", "swapcase"):
        changed = [replace(t, merchant_name=getattr(str, style)(t.merchant_name or "")) for t in base]
        variants[style] = score_sequence(model, changed)
    diffs = {
        style: max(abs(a - b) for a, b in zip(reference, s, strict=True)) for style, s in variants.items()
    }
    return GateResult("merchant_name_casing", all(d == 0.0 for d in diffs.values()), {"max_abs_diff": diffs})


def quality_gate(evaluation: dict[str, Any], family: str, min_auc: float = 0.75) -> GateResult:
    models = evaluation["models"]
    ap = models[family]["ap"]["mean"]
    auc = models[family]["auc"]["mean"]
    rules = models.get("rules", {}).get("ap", {}).get("mean", 0.0)
    rand = models.get("random", {}).get("ap", {}).get("mean", 0.0)
    passed = bool(ap > rules and ap > rand and auc >= min_auc)
    return GateResult(
        "quality", passed, {"ap": ap, "auc": auc, "rules_ap": rules, "random_ap": rand, "min_auc": min_auc}
    )


def run_gates(model: FraudModel, evaluation: dict[str, Any] | None = None) -> GateReport:
    results = [card_testing_gate(model), merchant_casing_gate(model)]
    if evaluation is not None:
        results.append(quality_gate(evaluation, model.model_name))
    report = GateReport(tuple(results))
    log.info("gates: %s", {r.name: r.passed for r in results})
    return report
