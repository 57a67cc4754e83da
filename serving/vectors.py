"""Feature vectors of requests: ``features.build_vector`` for many transactions at once.

:func:`batch_vectors` stacks :func:`features.scalar_inputs` of every row, calls
:func:`features.compute_features` once (the one definition of the formulas) and fills unavailable
groups from the learnt defaults exactly as ``build_vector`` does; a unit test holds the two
bit-identical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt

import features
from contracts.events import TransactionIn

Matrix = npt.NDArray[np.float64]
N_FEATURES: Final = len(features.FEATURE_NAMES)
GROUP_COLUMNS: Final[dict[str, npt.NDArray[np.intp]]] = {
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


#: the fields a request shares with features.Transaction, the amount aside (a float there)
_SHARED: Final = tuple(f.name for f in fields(features.Transaction) if f.name != "amount")


def to_transaction(txn: TransactionIn) -> features.Transaction:
    """The request's transaction as the feature module takes it."""
    return features.Transaction(amount=float(txn.amount), **{name: getattr(txn, name) for name in _SHARED})


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
            cols = GROUP_COLUMNS[group]
            values = np.array([float(fallback[features.FEATURE_NAMES[j]]) for j in cols])
            matrix[np.ix_(missing, cols)] = values
    return matrix
