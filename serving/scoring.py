"""CPU work of a prediction: feature vectors, probabilities, reasons — in micro-batches.

**Vectors.** :func:`batch_vectors` is :func:`features.build_vector` for many transactions at once:
it stacks :func:`features.scalar_inputs` of every row, calls :func:`features.compute_features`
once (the one definition of the formulas) and fills unavailable groups from the learnt defaults
exactly as ``build_vector`` does. A unit test holds the two bit-identical.

**Probabilities and reasons.** A :class:`Scorer` maps a matrix to probabilities and per-feature
contributions (the reasons):

* LightGBM: probabilities from the model's own ``predict_proba``; contributions by the path
  method (Saabas / "treeinterpreter"): each split on a row's path credits its feature with the
  change in node value, so ``bias + Σ contributions`` is the raw score (log-odds). One extra
  ``pred_leaf`` pass plus a sparse gather of per-leaf contributions precomputed at load.
* RandomForest: the same path method on the forest's per-tree leaves (contributions in
  probability of the class-weighted forest). The leaves also give the probability, computed as
  scikit-learn does (float32 input, per-tree leaf values summed in tree order, divided by the
  number of trees, prior correction): this skips scikit-learn's ~50 µs-per-tree dispatch.
  The fast path is **verified at load**: it must reproduce the model's ``predict_proba`` bit for
  bit on probe rows, otherwise the model's own method is used.
* Anything else: the model's ``predict_proba``; contributions by occlusion (probability change
  when a card/terminal feature is replaced by its learnt default).

**Micro-batching.** :class:`MicroBatcher` queues concurrent requests; each batch makes one Redis
round trip for all its cards and terminals, then one worker thread scores it while the next batch
forms, so per-call overheads are paid once per batch and the event loop never runs model code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import orjson
from scipy import sparse

import features
from ml.model import FraudModel, decide
from ml.models import prior_correction

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
N_FEATURES: Final = len(features.FEATURE_NAMES)
_GROUP_COLUMNS: Final[dict[str, npt.NDArray[np.intp]]] = {
    group: np.array([i for i, n in enumerate(features.FEATURE_NAMES) if features.FEATURE_GROUPS[n] == group])
    for group in ("card", "terminal")
}
_DTYPES: Final[dict[str, Any]] = {
    "event_time_ms": np.int64,
    "channel": object,
    "mcc": object,
    "device_id": object,
    "country": object,
}

# --------------------------------------------------------------------------- vectors


def batch_vectors(
    txns: Sequence[features.Transaction],
    cards: Sequence[features.CardFeatures | None],
    terminals: Sequence[features.TerminalFeatures | None],
    defaults: Mapping[str, float] | None = None,
) -> Matrix:
    """``[build_vector(t, c, m, defaults) for ...]`` as one matrix, with one compute_features call."""
    n = len(txns)
    if n == 0:
        return np.empty((0, N_FEATURES))
    rows = [features.scalar_inputs(t, c, m) for t, c, m in zip(txns, cards, terminals, strict=True)]
    if n == 1:
        columns = rows[0]
    else:  # the dtypes of the training frame (ml.pit.feature_inputs)
        columns = {
            name: np.concatenate([r[name] for r in rows]).astype(_DTYPES.get(name, np.float64), copy=False)
            for name in rows[0]
        }
    matrix = features.compute_features(columns)
    fallback = {**features.STATIC_DEFAULTS, **(defaults or {})}
    for group, snaps in (("card", cards), ("terminal", terminals)):
        missing = np.array([i for i, s in enumerate(snaps) if s is None], dtype=np.intp)
        if len(missing):
            cols = _GROUP_COLUMNS[group]
            values = np.array([float(fallback[features.FEATURE_NAMES[j]]) for j in cols])
            matrix[np.ix_(missing, cols)] = values
    return matrix


# --------------------------------------------------------------------------- scorers


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
    """LightGBM probabilities (the model's own) + path contributions in log-odds."""

    model: FraudModel
    booster: Any
    leaf_rows: npt.NDArray[np.int64]  # (trees, max_leaves): leaf index -> row of leaf_contrib
    leaf_contrib: sparse.csr_matrix
    bias: float
    method: str = "path contributions (Saabas) in log-odds, LightGBM"

    @classmethod
    def build(cls, model: FraudModel) -> LightGBMScorer:
        booster = model.classifier._booster  # type: ignore[attr-defined]
        dump = booster.dump_model()
        trees = dump["tree_info"]
        max_leaves = max(int(t["num_leaves"]) for t in trees)
        leaf_rows = np.zeros((len(trees), max_leaves), dtype=np.int64)
        paths: list[list[tuple[int, float]]] = []
        bias = 0.0
        for ti, tree in enumerate(trees):
            root = tree["tree_structure"]
            if "leaf_index" in root:  # a single-leaf tree
                bias += float(root["leaf_value"])
                leaf_rows[ti, 0] = len(paths)
                paths.append([])
                continue
            bias += float(root["internal_value"])
            stack: list[tuple[dict[str, Any], list[tuple[int, float]]]] = [(root, [])]
            while stack:
                node, path = stack.pop()
                parent_value = float(node["internal_value"])
                feature = int(node["split_feature"])
                for child in (node["left_child"], node["right_child"]):
                    value = float(child["leaf_value"] if "leaf_index" in child else child["internal_value"])
                    step = [*path, (feature, value - parent_value)]
                    if "leaf_index" in child:
                        leaf_rows[ti, int(child["leaf_index"])] = len(paths)
                        paths.append(step)
                    else:
                        stack.append((child, step))
        return cls(model, booster, leaf_rows, _csr_from_paths(paths, N_FEATURES), bias)

    def score(self, x: Matrix) -> tuple[npt.NDArray[np.float64], Matrix | None]:
        proba = self.model.predict_proba(x)
        leaves = np.asarray(self.booster.predict(x, pred_leaf=True, num_threads=1), dtype=np.int64)
        leaves = leaves.reshape(len(x), -1)
        rows = self.leaf_rows[np.arange(leaves.shape[1])[None, :], leaves]
        return proba, _gather(rows, self.leaf_contrib)

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


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Scored:
    vector: list[float]
    probability: float
    decision: str
    reasons: list[dict[str, float | str]]
    vector_text: str = ""  # the vector as a Postgres array literal (prediction log)
    reasons_json: str = ""


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


@dataclass
class LoadedModel:
    """A model as served: registry coordinates, the pyfunc, its scorer."""

    name: str
    version: str
    model: FraudModel
    scorer: Scorer
    uri: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def family(self) -> str:
        return str(getattr(self.model.classifier, "name", self.model.model_name))

    def score_rows(
        self,
        txns: Sequence[features.Transaction],
        cards: Sequence[features.CardFeatures | None],
        terminals: Sequence[features.TerminalFeatures | None],
        k: int,
    ) -> list[Scored]:
        x = batch_vectors(txns, cards, terminals, self.model.feature_defaults)
        proba, contrib = self.scorer.score(x)
        decisions = decide(proba, self.model.thresholds)
        reasons = top_reasons(contrib, x, k)
        vectors = x.tolist()
        return [
            Scored(
                vectors[i],
                float(proba[i]),
                str(decisions[i]),
                reasons[i],
                "{" + ",".join(map(repr, vectors[i])) + "}",
                orjson.dumps(reasons[i]).decode(),
            )
            for i in range(len(txns))
        ]


# --------------------------------------------------------------------------- micro-batching


class FeatureFetcher(Protocol):
    async def fetch(self, keys: list[tuple[str, str]]) -> Any: ...


@dataclass(slots=True)
class Answer:
    """What a queued job gets back: its scored rows, its lookups, the snapshot version read."""

    scored: list[Scored]
    lookups: list[Any]
    version: str | None


@dataclass(slots=True)
class _Job:
    model: LoadedModel
    txns: Sequence[features.Transaction]
    future: asyncio.Future[Answer]


def _one_openmp_thread() -> None:
    """OpenMP (LightGBM) spinning up threads for a 64-row batch costs more than it saves, and
    spin-waits badly on a busy machine: the scoring thread uses one (``python -m serving`` also
    sets OMP_NUM_THREADS=1 before anything loads)."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1, user_api="openmp")


class MicroBatcher:
    """Feature lookups and scoring for the requests queued meanwhile, one batch at a time.

    A batch makes one Redis round trip (:meth:`OnlineStore.fetch` with every card and terminal of
    the batch), then its CPU work goes to the scoring thread while the next batch forms and fetches.
    At most ``max_in_flight`` batches are being scored; while they are, arriving requests queue up,
    so batches grow with load and per-call overheads (Redis client, LightGBM, numpy) are paid once
    per batch. Each job keeps the model it was submitted with (a swap never mixes versions).
    """

    def __init__(
        self,
        *,
        store: FeatureFetcher,
        max_rows: int,
        top_k: int,
        observe: Any | None = None,
        use_thread: bool = True,
        max_in_flight: int = 2,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.top_k = top_k
        self.use_thread = use_thread
        self._observe = observe  # callable(batch_rows, seconds)
        self._queue: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="scoring", initializer=_one_openmp_thread
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, model: LoadedModel, txns: Sequence[features.Transaction]) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(model, txns, future))
        self._wake.set()
        return await future

    def _take(self) -> list[_Job]:
        batch: list[_Job] = []
        rows = 0
        while self._queue:
            job = self._queue[0]
            if batch and rows + len(job.txns) > self.max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(job.txns)
        return [j for j in batch if not j.future.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._slots.acquire()
                batch = self._take()
                if not batch:
                    self._slots.release()
                    continue
                try:
                    keys = [(t.card_id, t.terminal_id) for job in batch for t in job.txns]
                    fetched = await self.store.fetch(keys)  # never raises for Redis trouble
                    if self.use_thread:
                        done = loop.run_in_executor(self._executor, self._compute, batch, fetched)
                        done.add_done_callback(functools.partial(self._finish, batch, fetched.version))
                    else:
                        result: asyncio.Future[list[Answer]] = loop.create_future()
                        result.set_result(self._compute(batch, fetched))
                        self._finish(batch, fetched.version, result)
                        await asyncio.sleep(0)
                except Exception as exc:  # a bug, not bad input: fail these requests, keep serving
                    log.exception("a batch of %d jobs failed", len(batch))
                    self._slots.release()
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(exc)

    def _finish(self, batch: list[_Job], version: str | None, done: asyncio.Future[list[Answer]]) -> None:
        self._slots.release()
        exc = done.exception()
        if exc is not None:
            log.error("scoring a batch of %d jobs failed", len(batch), exc_info=exc)
        for i, job in enumerate(batch):
            if job.future.done():
                continue
            if exc is not None:
                job.future.set_exception(exc)
            else:
                job.future.set_result(done.result()[i])

    def _compute(self, batch: list[_Job], fetched: Any) -> list[Answer]:
        """Worker thread: decode the batch's snapshots, then vectors, scores, reasons per model."""
        started = time.perf_counter()
        all_lookups = fetched.lookups  # JSON decoding happens here, not on the event loop
        lookups: list[list[Any]] = []
        pos = 0
        for job in batch:
            lookups.append(all_lookups[pos : pos + len(job.txns)])
            pos += len(job.txns)
        out: list[list[Scored] | None] = [None] * len(batch)
        # group by model: during a swap, each request keeps the model it started with
        groups: dict[int, list[int]] = {}
        for i, job in enumerate(batch):
            groups.setdefault(id(job.model), []).append(i)
        rows = 0
        for idx in groups.values():
            model = batch[idx[0]].model
            txns = [t for i in idx for t in batch[i].txns]
            cards = [lk.card for i in idx for lk in lookups[i]]
            terms = [lk.terminal for i in idx for lk in lookups[i]]
            scored = model.score_rows(txns, cards, terms, self.top_k)
            rows += len(txns)
            pos = 0
            for i in idx:
                n = len(batch[i].txns)
                out[i] = scored[pos : pos + n]
                pos += n
        if self._observe is not None:
            self._observe(rows, time.perf_counter() - started)
        return [Answer(out[i] or [], lookups[i], fetched.version) for i in range(len(batch))]
