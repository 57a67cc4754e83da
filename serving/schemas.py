"""Request and response bodies of the serving API.

``TransactionIn`` carries the fields of the Avro event ``producer/schemas/transaction.avsc`` with
the same validation rules as the producer (``producer.validation``: one contract for what enters
the platform): ids non-empty, ``event_time`` timezone-aware in [2000, 2100), ``amount`` > 0 with at
most 2 decimals, ``currency`` an active ISO 4217 code, ``country`` ISO 3166-1 alpha-2, ``mcc`` four
digits, ``channel`` ``card_present`` / ``online``, coordinates in range. A violation is a 422 that
names the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import features
from producer.validation import Country, Currency, Id, Latitude, Longitude, Mcc, Money, UtcTime

Decision = Literal["approve", "review", "decline"]
FeatureSource = Literal["online", "partial", "default"]

EXAMPLE_TRANSACTION: dict[str, Any] = {
    "transaction_id": "txn-000000001",
    "event_time": "2025-03-01T12:34:56.789Z",
    "card_id": "card-0000020",
    "customer_id": "cust-000020",
    "terminal_id": "term-000193",
    "merchant_name": "Corner Shop",
    "amount": "42.50",
    "currency": "EUR",
    "mcc": "5411",
    "channel": "card_present",
    "device_id": None,
    "latitude": 51.5,
    "longitude": -0.12,
    "country": "GB",
}


class TransactionIn(BaseModel):
    """One card transaction to score (the fields of the ``transactions.raw`` event)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [dict(EXAMPLE_TRANSACTION)]})

    transaction_id: Id
    event_time: UtcTime = Field(description="UTC time of authorisation, ISO-8601 with an offset")
    card_id: Id
    customer_id: Id | None = None
    terminal_id: Id
    merchant_name: str | None = Field(default=None, max_length=512, description="ignored by the model")
    amount: Money = Field(description="major units of currency, > 0, at most 2 decimals")
    currency: Currency = Field(default="EUR", description="active ISO 4217 code")
    mcc: Mcc | None = None
    channel: Literal["card_present", "online"] | None = None
    device_id: Id | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    country: Country | None = Field(default=None, description="ISO 3166-1 alpha-2")

    def to_transaction(self) -> features.Transaction:
        return features.Transaction(
            transaction_id=self.transaction_id,
            event_time=self.event_time,
            card_id=self.card_id,
            terminal_id=self.terminal_id,
            amount=float(self.amount),
            channel=self.channel,
            mcc=self.mcc,
            device_id=self.device_id,
            latitude=self.latitude,
            longitude=self.longitude,
            country=self.country,
            currency=self.currency,
            merchant_name=self.merchant_name,
            customer_id=self.customer_id,
        )


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
