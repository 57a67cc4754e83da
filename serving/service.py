"""The ``score()`` service: transactions in, predictions out; the routes only call this.

For N transactions (1 for ``/predict``): read the model once (a swap mid-request cannot mix
versions) → the micro-batcher: one Redis round trip for every request queued meanwhile, each
transaction read as of its time and appended (:class:`OnlineStore`), then vectors, probabilities,
decisions and reasons (on the event loop, or its worker thread with ``SERVING_SCORING_THREAD``)
→ metrics and one prediction-log row each (queued, written later); a transaction new to the
online state is also published to ``transactions.raw`` (:mod:`serving.publisher`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts.events import TransactionIn
from serving.batcher import MicroBatcher
from serving.metrics import ServingMetrics
from serving.model_manager import ModelManager
from serving.online_store import Lookup, OnlineStore
from serving.prediction_log import DisabledLog, LogRow, PredictionLog
from serving.publisher import DisabledPublisher, Publisher
from serving.schemas import PredictionOut, Reason
from serving.scoring import Scored
from serving.vectors import to_transaction


@dataclass
class Services:
    """Everything a request needs, built in the app's lifespan (see serving.app)."""

    models: ModelManager
    store: OnlineStore
    batcher: MicroBatcher
    log: PredictionLog | DisabledLog
    metrics: ServingMetrics
    publisher: Publisher | DisabledPublisher


@dataclass(slots=True)
class Outcome:
    prediction: PredictionOut
    vector: list[float]


async def score(services: Services, txns_in: Sequence[TransactionIn]) -> list[Outcome]:
    """Score transactions; raises ``NoModelError`` when no model is loaded (the route answers 503)."""
    started = time.perf_counter()
    model = services.models.require()
    txns = [to_transaction(t) for t in txns_in]
    answer = await services.batcher.score(model, txns)  # one Redis round trip, then the model
    scored: list[Scored] = answer.scored
    lookups: list[Lookup] = answer.lookups
    latency_ms = (time.perf_counter() - started) * 1000.0
    now = datetime.now(UTC).isoformat()
    m = services.metrics
    fs_version = model.model.feature_set_version
    out: list[Outcome] = []
    for t_in, txn, lookup, s in zip(txns_in, txns, lookups, scored, strict=True):
        prediction = PredictionOut(
            transaction_id=txn.transaction_id,
            fraud_probability=s.probability,
            decision=s.decision,  # type: ignore[arg-type]
            model_name=model.name,
            model_version=model.version,
            feature_set_version=fs_version,
            feature_source=lookup.source,
            latency_ms=round(latency_ms, 3),
            reasons=[Reason.model_construct(**r) for r in s.reasons],  # type: ignore[arg-type]
        )
        m.predictions.labels(s.decision, lookup.source).inc()
        m.score.observe(s.probability)
        row = LogRow(
            predicted_at=now,
            transaction_id=txn.transaction_id,
            card_id=txn.card_id,
            terminal_id=txn.terminal_id,
            event_time=txn.event_time,
            amount=t_in.amount,
            currency=t_in.currency,
            model_name=model.name,
            model_version=model.version,
            feature_set_version=fs_version,
            fraud_probability=s.probability,
            decision=s.decision,
            feature_source=lookup.source,
            features_version=answer.version,
            latency_ms=latency_ms,
            feature_vector=s.vector_text,
            reasons=s.reasons_json,
            request=t_in.model_dump_json(),
        )
        services.log.record(row.copy_line())
        if lookup.new is not False:  # new to the state, or unknown (Redis gave no answer)
            services.publisher.publish(t_in)
        out.append(Outcome(prediction, s.vector))
    return out
