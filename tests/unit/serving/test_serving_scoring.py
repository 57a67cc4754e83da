"""Serving's CPU path: batched vectors = build_vector, fast scorers = the model, reasons add up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import features
from ml.estimators import LightGBMModel, RandomForestModel, RulesModel
from ml.pit import (
    card_features_from_row,
    feature_matrix,
    snapshot_frame,
    terminal_features_from_row,
    transaction_from_row,
)
from ml.pyfunc import FraudModel
from ml.train import learnt_defaults
from serving.batcher import MicroBatcher
from serving.explain import (
    ForestScorer,
    LightGBMScorer,
    OcclusionScorer,
    build_scorer,
    probe_rows,
    top_reasons,
)
from serving.online_store import FetchResult
from serving.scoring import LoadedModel
from serving.vectors import batch_vectors


def fraud_model(classifier: object, x: np.ndarray) -> FraudModel:
    return FraudModel(
        classifier,  # type: ignore[arg-type]
        model_name=classifier.name,  # type: ignore[attr-defined]
        thresholds={"review": 0.2, "decline": 0.6},
        feature_defaults=learnt_defaults(x),
    )


@pytest.fixture(scope="module")
def xy(small_frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return feature_matrix(small_frame), small_frame["is_fraud"].to_numpy()


@pytest.fixture(scope="module")
def lgb_model(xy: tuple[np.ndarray, np.ndarray]) -> FraudModel:
    x, y = xy
    return fraud_model(LightGBMModel({"n_estimators": 60}).fit(x, y), x)


@pytest.fixture(scope="module")
def rf_model(xy: tuple[np.ndarray, np.ndarray]) -> FraudModel:
    x, y = xy
    return fraud_model(RandomForestModel({"n_estimators": 25, "max_depth": 10}).fit(x, y), x)


def test_batch_vectors_equal_build_vector_bit_for_bit(small_frame: pd.DataFrame) -> None:
    """Real snapshots (some entities absent → no history), unavailable groups → defaults."""
    rng = np.random.default_rng(0)
    history = small_frame
    as_of = features.from_epoch_ms(int(history["event_time_ms"].quantile(0.8)))
    cards, terms = snapshot_frame(history, as_of)
    card_by_id = {r["card_id"]: card_features_from_row(r, as_of) for r in cards.to_dict("records")}
    term_by_id = {r["terminal_id"]: terminal_features_from_row(r, as_of) for r in terms.to_dict("records")}
    later = history[history["event_time_ms"] >= features.to_epoch_ms(as_of)].sample(300, random_state=1)
    txns, cs, ts = [], [], []
    for _, row in later.iterrows():
        t = transaction_from_row(row)
        if rng.random() < 0.1:
            t = replace(t, card_id="never-seen", channel=None, mcc=None, country=None, latitude=None)
        txns.append(t)
        card = card_by_id.get(t.card_id, features.CardFeatures(t.card_id, as_of))
        term = term_by_id.get(t.terminal_id, features.TerminalFeatures(t.terminal_id, as_of))
        cs.append(None if rng.random() < 0.15 else card)
        ts.append(None if rng.random() < 0.15 else term)
    defaults = {k: v + 0.25 for k, v in features.STATIC_DEFAULTS.items()}
    got = batch_vectors(txns, cs, ts, defaults)
    want = np.array([features.build_vector(t, c, m, defaults) for t, c, m in zip(txns, cs, ts, strict=True)])
    assert got.shape == (300, len(features.FEATURE_NAMES))
    assert np.array_equal(got.view(np.int64), want.view(np.int64))
    assert np.array_equal(batch_vectors(txns[:1], cs[:1], ts[:1], defaults), want[:1])
    assert batch_vectors([], [], [], defaults).shape == (0, len(features.FEATURE_NAMES))


@pytest.mark.parametrize("which", ["lgb_model", "rf_model"])
def test_tree_scorers_reproduce_the_model_exactly(
    which: str, request: pytest.FixtureRequest, xy: tuple
) -> None:
    model: FraudModel = request.getfixturevalue(which)
    scorer = build_scorer(model)
    assert isinstance(scorer, LightGBMScorer | ForestScorer)
    if isinstance(scorer, ForestScorer):
        assert scorer.fast_proba  # the fast path passed its load-time check
    x = xy[0][:3000]
    proba, contrib = scorer.score(x)
    assert np.array_equal(proba, model.predict_proba(x))
    assert contrib is not None and contrib.shape == x.shape
    # contributions decompose the score exactly: TreeSHAP's expected value + sum = raw score
    # (LightGBM, log-odds); the path method's bias + sum = the class-weighted forest's probability
    if isinstance(scorer, LightGBMScorer):
        np.testing.assert_allclose(
            scorer.expected_value + contrib.sum(axis=1), scorer.raw_score(x), atol=1e-9
        )
    else:
        leaves = scorer._leaves(x)
        q = np.mean([v[leaf] for v, leaf in zip(scorer.values, leaves, strict=True)], axis=0)
        np.testing.assert_allclose(scorer.bias + contrib.sum(axis=1), q, atol=1e-12)
    # a feature the model never splits on gets no credit
    used = np.flatnonzero(np.abs(contrib).sum(axis=0))
    assert 0 < len(used) <= x.shape[1]


def test_other_models_get_occlusion_reasons(xy: tuple) -> None:
    x, y = xy
    model = fraud_model(RulesModel().fit(x, y), x)
    scorer = build_scorer(model)
    assert isinstance(scorer, OcclusionScorer)
    proba, contrib = scorer.score(x[:50])
    assert np.array_equal(proba, model.predict_proba(x[:50]))
    assert contrib is not None
    txn_cols = [
        i for i, n in enumerate(features.FEATURE_NAMES) if features.FEATURE_GROUPS[n] == "transaction"
    ]
    assert not contrib[:, txn_cols].any()


def test_a_fast_path_that_disagrees_falls_back_to_the_model(
    rf_model: FraudModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = ForestScorer.build

    def broken(model: FraudModel) -> ForestScorer:
        scorer = real_build(model)
        scorer.weight += 1.0  # a wrong prior correction: the load-time check must catch it
        return scorer

    monkeypatch.setattr(ForestScorer, "build", staticmethod(broken))
    scorer = build_scorer(rf_model)
    assert isinstance(scorer, ForestScorer) and not scorer.fast_proba
    x = probe_rows(rf_model)
    assert np.array_equal(scorer.score(x)[0], rf_model.predict_proba(x))


def test_top_reasons_are_the_largest_absolute_contributions() -> None:
    x = np.arange(2 * len(features.FEATURE_NAMES), dtype=float).reshape(2, -1)
    contrib = np.zeros_like(x)
    contrib[0, [3, 7, 9]] = [0.5, -2.0, 1.0]
    out = top_reasons(contrib, x, 2)
    assert [r["feature"] for r in out[0]] == [features.FEATURE_NAMES[7], features.FEATURE_NAMES[9]]
    assert out[0][0]["contribution"] == -2.0 and out[0][0]["value"] == x[0, 7]
    assert out[1] == []  # nothing contributed
    assert top_reasons(None, x, 3) == [[], []]


@pytest.mark.asyncio
async def test_micro_batcher_batches_concurrent_requests_and_keeps_each_requests_model(
    lgb_model: FraudModel, rf_model: FraudModel, small_frame: pd.DataFrame
) -> None:
    batches: list[int] = []

    class NoFeatures:  # Redis unavailable: every group from the learnt defaults
        async def apply(self, txns: Sequence[features.Transaction]) -> FetchResult:
            return FetchResult(txns, None, None, "error")

    batcher = MicroBatcher(
        store=NoFeatures(), max_rows=8, top_k=2, observe=lambda rows, s: batches.append(rows)
    )
    batcher.start()
    try:
        a = LoadedModel("m", "1", lgb_model, build_scorer(lgb_model), "a")
        b = LoadedModel("m", "2", rf_model, build_scorer(rf_model), "b")
        txns = [transaction_from_row(r) for _, r in small_frame.head(20).iterrows()]
        jobs = [batcher.score(a if i % 2 else b, [t]) for i, t in enumerate(txns)]
        answers = await asyncio.gather(*jobs)
    finally:
        await batcher.stop()
    assert sum(batches) == 20 and max(batches) <= 8 and len(batches) < 20  # batched, bounded
    for i, answer in enumerate(answers):
        (res,) = answer.scored
        assert answer.lookups[0].source == "default"
        model = lgb_model if i % 2 else rf_model
        vector = features.build_vector(txns[i], None, None, model.feature_defaults)
        assert res.vector == vector
        assert res.probability == model.predict_proba(np.array([vector]))[0]
        assert res.decision in {"approve", "review", "decline"} and len(res.reasons) <= 2
        assert res.vector_text == "{" + ",".join(repr(v) for v in vector) + "}"
