"""Request and response bodies of the serving API.

A request's transaction is the platform's contract, :class:`contracts.events.TransactionIn`: the
fields of the ``transactions.raw`` event with the rules the producer validates with (one contract
for what enters the platform). A violation is a 422 that names the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import TransactionIn

__all__ = ["BatchIn", "BatchOut", "ErrorOut", "HealthOut", "PredictionOut", "ReadyOut", "TransactionIn"]

Decision = Literal["approve", "review", "decline"]
FeatureSource = Literal["online", "partial", "default"]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    transactions: list[TransactionIn] = Field(min_length=1, description="at most SERVING_BATCH_MAX")


class Reason(BaseModel):
    feature: str
    value: float = Field(description="the feature's value in this transaction's vector")
    contribution: float = Field(description="its share of the score; > 0 pushes toward fraud")


class PredictionOut(BaseModel):
    transaction_id: str
    fraud_probability: float = Field(ge=0, le=1)
    decision: Decision
    model_name: str
    model_version: str
    feature_set_version: str
    feature_source: FeatureSource = Field(
        description="online: card and terminal aggregates from Redis; partial: some entity absent from "
        "the snapshot (no history) or unreadable; default: Redis unavailable, learnt defaults used"
    )
    latency_ms: float = Field(description="time spent in the service for this request")
    reasons: list[Reason] = Field(description="largest feature contributions (see GET /model reasons_method)")


class BatchOut(BaseModel):
    predictions: list[PredictionOut]
    latency_ms: float


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    ready: bool
    model: dict[str, object]
    online_features: dict[str, object]
    prediction_log: dict[str, object]


class ErrorOut(BaseModel):
    detail: str
