"""A model as served: its scorer, and the scoring of rows (vectors, probabilities, decisions, reasons)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

import features
from ml.drift import ScoreDrift
from ml.pyfunc import FraudModel, decide
from serving.explain import Scorer, top_reasons
from serving.prediction_log import pg_array
from serving.vectors import batch_vectors


@dataclass(slots=True)
class Scored:
    vector: list[float]
    probability: float
    decision: str
    reasons: list[dict[str, float | str]]
    vector_text: str = ""  # the vector as a Postgres array literal (the prediction log row)
    reasons_json: str = ""


@dataclass
class LoadedModel:
    """A model as served: registry coordinates, the pyfunc, its scorer."""

    name: str
    version: str
    model: FraudModel
    scorer: Scorer
    uri: str
    loaded_at: float = field(default_factory=time.time)
    # live score bins against the model's training reference (None: the model has no reference)
    drift: ScoreDrift | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        reference = getattr(self.model, "score_reference", None)
        self.drift = ScoreDrift(reference) if reference else None

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
        if self.drift is not None:
            self.drift.observe(proba)
        reasons = top_reasons(contrib, x, k)
        vectors = x.tolist()
        return [
            Scored(
                vectors[i],
                float(proba[i]),
                str(decisions[i]),
                reasons[i],
                pg_array(vectors[i]),
                orjson.dumps(reasons[i]).decode(),
            )
            for i in range(len(txns))
        ]
