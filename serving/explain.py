"""Probabilities and reasons: a :class:`Scorer` maps a matrix of vectors to probabilities and
per-feature contributions (the reasons a prediction carries).

* LightGBM: probabilities from the model's own ``predict_proba``; contributions by exact TreeSHAP,
  LightGBM's native ``predict(pred_contrib=True)`` (log-odds).
* RandomForest (scikit-learn has no native attribution): the path method (Saabas /
  "treeinterpreter") on the forest's per-tree leaves: each split on a row's path credits its
  feature with the change in node value, contributions in probability of the class-weighted forest.
  The leaves also give the probability, computed as scikit-learn does (float32 input, per-tree leaf
  values summed in tree order, divided by the number of trees, prior correction): this skips
  scikit-learn's ~50 µs-per-tree dispatch. The fast path is **verified at load**: it must reproduce
  the model's ``predict_proba`` bit for bit on probe rows, otherwise the model's own method is used.
* Anything else: the model's ``predict_proba``; contributions by occlusion (probability change
  when a card/terminal feature is replaced by its learnt default).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import sparse

import features
from ml.estimators import prior_correction
from ml.pyfunc import FraudModel
from serving.vectors import N_FEATURES, Matrix

log = logging.getLogger(__name__)


class Scorer(Protocol):
    method: str

    def score(self, x: Matrix) -> tuple[npt.NDArray[np.float64], Matrix | None]: ...


def _csr_from_paths(
    paths: list[list[tuple[int, float]]], n_features: int
) -> sparse.csr_matrix:  # rows: leaves; columns: features
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for p in paths:
        acc: dict[int, float] = {}
        for f, d in p:
            acc[f] = acc.get(f, 0.0) + d
        indices.extend(acc)
        data.extend(acc.values())
        indptr.append(len(indices))
    return sparse.csr_matrix(
        (
            np.array(data, dtype=np.float64),
            np.array(indices, dtype=np.int64),
            np.array(indptr, dtype=np.int64),
        ),
        shape=(len(paths), n_features),
    )


def _gather(rows: npt.NDArray[np.int64], leaf_contrib: sparse.csr_matrix) -> Matrix:
    """Sum over trees of the contribution rows ``rows`` (shape n x trees) of ``leaf_contrib``."""
    n, t = rows.shape
    selector = sparse.csr_matrix(
        (np.ones(n * t), rows.ravel(), np.arange(0, n * t + 1, t)), shape=(n, leaf_contrib.shape[0])
    )
    return np.asarray((selector @ leaf_contrib).todense(), dtype=np.float64)


@dataclass
class LightGBMScorer:
    """LightGBM: the model's own probabilities; reasons by exact TreeSHAP in log-odds (LightGBM's
    ``pred_contrib``: the contributions plus :attr:`expected_value` sum to the raw score)."""

    model: FraudModel
    booster: Any
    expected_value: float
    method: str = "TreeSHAP (LightGBM pred_contrib) in log-odds"

    @classmethod
    def build(cls, model: FraudModel) -> LightGBMScorer:
        booster = model.classifier._booster  # type: ignore[attr-defined]
        row = np.zeros((1, N_FEATURES))
        expected = float(booster.predict(row, pred_contrib=True, num_threads=1)[0, -1])
        return cls(model, booster, expected)

    def score(self, x: Matrix) -> tuple[npt.NDArray[np.float64], Matrix | None]:
        proba = self.model.predict_proba(x)
        shap = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        return proba, shap.reshape(len(x), N_FEATURES + 1)[:, :N_FEATURES]

    def raw_score(self, x: Matrix) -> npt.NDArray[np.float64]:
        return np.asarray(self.booster.predict(x, raw_score=True, num_threads=1), dtype=np.float64)


@dataclass
class ForestScorer:
    """RandomForest probabilities from per-tree leaves + path contributions (probability)."""

    model: FraudModel
    trees: list[Any]
    values: list[npt.NDArray[np.float64]]  # per tree: P(class 1) of every node
    node_rows: list[npt.NDArray[np.int64]]  # per tree: node -> row of leaf_contrib (leaves only)
    leaf_contrib: sparse.csr_matrix
    bias: float
    weight: float
    fast_proba: bool = True
    method: str = "path contributions (Saabas) in probability, RandomForest"

    @classmethod
    def build(cls, model: FraudModel) -> ForestScorer:
        clf = model.classifier
        forest = clf._model  # type: ignore[attr-defined]
        weight = float({**clf.BASE, **clf.params}["class_weight_pos"])  # type: ignore[attr-defined]
        trees = [e.tree_ for e in forest.estimators_]
        values: list[npt.NDArray[np.float64]] = []
        node_rows: list[npt.NDArray[np.int64]] = []
        paths: list[list[tuple[int, float]]] = []
        bias = 0.0
        n_trees = len(trees)
        for tree in trees:
            v = (
                np.asarray(tree.value[:, 0, 1], dtype=np.float64)
                if tree.value.shape[2] > 1
                else np.zeros(tree.node_count)
            )
            values.append(v)
            rows = np.full(tree.node_count, -1, dtype=np.int64)
            bias += v[0] / n_trees
            stack: list[tuple[int, list[tuple[int, float]]]] = [(0, [])]
            left, right, feat = tree.children_left, tree.children_right, tree.feature
            while stack:
                node, path = stack.pop()
                if left[node] == -1:
                    rows[node] = len(paths)
                    paths.append(path)
                    continue
                for child in (left[node], right[node]):
                    stack.append((int(child), [*path, (int(feat[node]), (v[child] - v[node]) / n_trees)]))
            node_rows.append(rows)
        return cls(model, trees, values, node_rows, _csr_from_paths(paths, N_FEATURES), bias, weight)

    def _leaves(self, x: Matrix) -> list[npt.NDArray[np.intp]]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        return [t.apply(x32) for t in self.trees]

    def proba_from_leaves(self, leaves: list[npt.NDArray[np.intp]]) -> npt.NDArray[np.float64]:
        acc = np.zeros(len(leaves[0]), dtype=np.float64)
        for v, leaf in zip(self.values, leaves, strict=True):
            acc += v[leaf]
        acc /= len(self.trees)
        return prior_correction(acc, self.weight)

    def score(self, x: Matrix) -> tuple[npt.NDArray[np.float64], Matrix | None]:
        leaves = self._leaves(x)
        proba = self.proba_from_leaves(leaves) if self.fast_proba else self.model.predict_proba(x)
        rows = np.stack([r[leaf] for r, leaf in zip(self.node_rows, leaves, strict=True)], axis=1)
        return proba, _gather(rows, self.leaf_contrib)


@dataclass
class OcclusionScorer:
    """Any model: its own probabilities; contribution of a card/terminal feature = p(x) - p(x with
    that feature at its learnt default). Transaction features have no default and get none."""

    model: FraudModel
    columns: list[int] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    method: str = "occlusion against the learnt defaults (probability)"

    @classmethod
    def build(cls, model: FraudModel) -> OcclusionScorer:
        cols = [i for i, n in enumerate(features.FEATURE_NAMES) if n in model.feature_defaults]
        return cls(model, cols, [model.feature_defaults[features.FEATURE_NAMES[i]] for i in cols])

    def score(self, x: Matrix) -> tuple[npt.NDArray[np.float64], Matrix | None]:
        proba = self.model.predict_proba(x)
        if not self.columns:
            return proba, None
        k = len(self.columns)
        probe = np.repeat(x, k, axis=0)
        idx = np.arange(len(probe))
        probe[idx, np.tile(self.columns, len(x))] = np.tile(self.baseline, len(x))
        occluded = self.model.predict_proba(probe).reshape(len(x), k)
        contrib = np.zeros_like(x)
        contrib[:, self.columns] = proba[:, None] - occluded
        return proba, contrib


def probe_rows(model: FraudModel, n: int = 512, seed: int = 0) -> Matrix:
    """Varied synthetic vectors for load-time checks (defaults perturbed over wide ranges)."""
    rng = np.random.default_rng(seed)
    base = np.array([model.feature_defaults.get(name, 1.0) for name in features.FEATURE_NAMES])
    scale = rng.lognormal(mean=0.0, sigma=1.5, size=(n, N_FEATURES))
    x = base[None, :] * scale + rng.normal(0.0, 3.0, size=(n, N_FEATURES))
    binary = [i for i, name in enumerate(features.FEATURE_NAMES) if name.startswith("is_")]
    x[:, binary] = rng.integers(-1, 2, size=(n, len(binary)))
    return np.round(x, 3)


def build_scorer(model: FraudModel) -> Scorer:
    """The fastest scorer that reproduces the model's probabilities exactly (checked here)."""
    family = getattr(model.classifier, "name", "")
    scorer: Scorer
    try:
        if family == "lightgbm":
            scorer = LightGBMScorer.build(model)
        elif family == "random_forest":
            scorer = ForestScorer.build(model)
        else:
            scorer = OcclusionScorer.build(model)
    except Exception:
        log.exception("could not build the %s scorer; falling back to occlusion", family)
        return OcclusionScorer.build(model)
    x = probe_rows(model)
    expected = model.predict_proba(x)
    got, _ = scorer.score(x)
    if not np.array_equal(expected, got):
        if isinstance(scorer, ForestScorer):
            log.warning("fast forest probabilities differ from predict_proba: using predict_proba")
            scorer.fast_proba = False
        else:
            raise RuntimeError(f"{type(scorer).__name__} does not reproduce the model's probabilities")
    return scorer


def top_reasons(contrib: Matrix | None, x: Matrix, k: int) -> list[list[dict[str, float | str]]]:
    """Per row, the ``k`` features with the largest absolute contribution (sign kept: > 0 = toward fraud)."""
    n = len(x)
    if contrib is None or k == 0:
        return [[] for _ in range(n)]
    k = min(k, contrib.shape[1])
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    out = []
    for i in range(n):
        row = []
        for j in order[i]:
            c = float(contrib[i, j])
            if c == 0.0 or not math.isfinite(c):
                continue
            row.append({"feature": features.FEATURE_NAMES[j], "value": float(x[i, j]), "contribution": c})
        out.append(row)
    return out
