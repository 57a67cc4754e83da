"""PSI of live scores against a training reference (ml.drift)."""

from __future__ import annotations

import numpy as np
import pytest

from ml.drift import ScoreDrift, psi, score_reference


def _scores(rng: np.random.Generator, n: int, a: float = 0.5, b: float = 20.0) -> np.ndarray:
    return rng.beta(a, b, n)


def test_reference_is_deciles_with_shares_summing_to_one() -> None:
    ref = score_reference(_scores(np.random.default_rng(1), 10_000))
    assert len(ref["edges"]) == 9 and len(ref["shares"]) == 10
    assert sum(ref["shares"]) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.1, abs=0.01) for s in ref["shares"])


def test_ties_merge_edges() -> None:
    ref = score_reference(np.array([0.0] * 900 + [0.5] * 100))
    assert len(ref["shares"]) == len(ref["edges"]) + 1
    assert sum(ref["shares"]) == pytest.approx(1.0)


def test_same_distribution_is_stable_and_a_shift_is_not() -> None:
    rng = np.random.default_rng(2)
    ref = score_reference(_scores(rng, 20_000))
    same, shifted = ScoreDrift(ref), ScoreDrift(ref)
    same.observe(_scores(rng, 5000))
    shifted.observe(_scores(rng, 5000, a=1.5, b=10.0))  # scores several times higher
    assert (same.psi() or 1.0) < 0.05
    assert (shifted.psi() or 0.0) > 0.2


def test_window_keeps_only_the_last_scores_and_waits_for_enough() -> None:
    rng = np.random.default_rng(3)
    ref = score_reference(_scores(rng, 20_000))
    drift = ScoreDrift(ref, window=1000, min_count=200)
    drift.observe(_scores(rng, 199))
    assert drift.psi() is None
    drift.observe(_scores(rng, 3000, a=1.5, b=10.0))
    high = drift.psi()
    for _ in range(11):  # 1,100 scores like the reference push the shifted ones out
        drift.observe(_scores(rng, 100))
    assert drift.count == 1000
    assert high is not None and high > 0.2
    assert (drift.psi() or 1.0) < 0.1


def test_psi_of_an_empty_bin_is_finite() -> None:
    assert np.isfinite(psi([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]))


def test_a_malformed_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="one more share"):
        ScoreDrift({"edges": [0.1, 0.2], "shares": [0.5, 0.5]})
