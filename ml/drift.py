"""Score drift: the population stability index (PSI) of live scores against the model's reference.

Training stores a *reference* in the deployable model: the decile edges of its scores on recent
rows it was not fitted on (the gap before its deployment), with the share of those rows in each
bin. Serving keeps the bins of its last ``window`` scores and exports
``PSI = Σ (live − ref) · ln(live / ref)`` over the bins (``fraud_api_score_psi``). Rules of thumb:
< 0.1 stable, 0.1–0.2 a moderate shift, > 0.2 a significant one (the alert's threshold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

BINS: Final = 10
#: floor of a bin's share, so an empty bin gives a large but finite term
EPS: Final = 1e-4


def score_reference(scores: npt.NDArray[np.float64], bins: int = BINS) -> dict[str, list[float]]:
    """Inner quantile edges of ``scores`` (ties merged) and the share of scores in each bin."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return {"edges": [], "shares": [1.0]}
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
    return {"edges": edges.tolist(), "shares": (counts / counts.sum()).tolist()}


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI of two share vectors over the same bins (each floored at ``EPS``)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


class ScoreDrift:
    """The bins of the last ``window`` live scores; :meth:`psi` against the reference."""

    def __init__(self, reference: Mapping[str, Any], window: int = 5000, min_count: int = 200) -> None:
        self.edges = np.asarray(reference["edges"], dtype=np.float64)
        self.shares = np.asarray(reference["shares"], dtype=np.float64)
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError("a score reference has one more share than edges")
        self.window, self.min_count = window, min_count
        self._bins = np.zeros(window, dtype=np.int16)
        self._n = 0

    def observe(self, scores: npt.ArrayLike) -> None:
        """Record scores (a micro-batch at a time: one searchsorted per batch)."""
        idx = np.searchsorted(self.edges, np.atleast_1d(np.asarray(scores, dtype=np.float64)), side="right")
        pos = (self._n + np.arange(len(idx))) % self.window
        self._bins[pos] = idx
        self._n += len(idx)

    @property
    def count(self) -> int:
        return min(self._n, self.window)

    def psi(self) -> float | None:
        """PSI of the window, or None until ``min_count`` scores were seen."""
        n = self.count
        if n < self.min_count:
            return None
        live = np.bincount(self._bins[:n], minlength=len(self.shares)) / n
        return psi(self.shares, live)
