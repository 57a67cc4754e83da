"""The HTTP API with its dependencies overridden (a real small model, an in-memory feature store):
schemas and validation, auth, limits, feature sources, 503 without a model, metrics, fuzzing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import hypothesis
import numpy as np
import orjson
import pandas as pd
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

import features
from ml.estimators import LightGBMModel
from ml.pit import feature_matrix
from ml.pyfunc import FraudModel
from ml.train import learnt_defaults
from serving.app import create_app
from serving.batcher import Answer
from serving.explain import build_scorer
from serving.model_manager import ModelManager
from serving.online_store import FetchResult
from serving.scoring import LoadedModel
from serving.service import Services
from serving.settings import ServingSettings

BODY: dict[str, Any] = {
    "transaction_id": "t-1",
    "event_time": "2025-02-20T10:00:00.123Z",
    "card_id": "card-1",
    "terminal_id": "term-1",
    "amount": "42.50",
    "currency": "EUR",
    "mcc": "5411",
    "channel": "card_present",
    "latitude": 48.85,
    "longitude": 2.35,
    "country": "FR",
}
AS_OF = features.from_epoch_ms(features.to_epoch_ms(BODY["event_time"]))
_H = 3_600_000
_T = features.to_epoch_ms(BODY["event_time"])
#: card-1's earlier transactions (what the online state holds), and one after the request
EVENTS = [
    features.CardEvent("e1", _T - 20 * 24 * _H, 4000, "term-1", 48.8, 2.3, None, "FR"),
    features.CardEvent("e2", _T - 5 * _H, 6000, "term-1", 48.8, 2.3, None, "FR"),
    features.CardEvent("e3", _T - 2 * _H, 1250, "term-2", 48.9, 2.4, None, "FR"),
    features.CardEvent("later", _T + _H, 99900, "term-9", None, None, None, "US"),
]
CARD = features.card_features_from_events("card-1", AS_OF, EVENTS)
TERMINAL = features.TerminalFeatures("term-1", AS_OF, 30, 1, 100, 2, 300, 3)
#: the script's terminal counts, in reply order (transactions 7/30/90 d, then frauds)
TERMINAL_REPLY = [30, 100, 300, 1, 2, 3]


def _event_json(e: features.CardEvent) -> bytes:
    return orjson.dumps([e.transaction_id, e.event_ms, e.cents, e.terminal_id, e.latitude, e.longitude,
                         e.device_id, e.country])  # fmt: skip


class FakeStore:
    """In-memory stand-in for OnlineStore: the script's reply from fixed events, or 'down'."""

    def __init__(self) -> None:
        self.events = {"card-1": b"[" + b",".join(_event_json(e) for e in EVENTS if e.event_ms < _T) + b"]"}
        self.terminals = {"term-1": TERMINAL_REPLY}
        self.seen: set[str] = set()
        self.down = False
        self.explode = False
        self.garbled = False

    async def apply(self, txns: Sequence[features.Transaction]) -> FetchResult:
        if self.explode:
            raise RuntimeError("a bug with a secret in it: password=hunter2")
        if self.down:
            return FetchResult(txns, None, None, "error")
        reply: list[Any] = []
        for t in txns:
            events = b"not json" if self.garbled else self.events.get(t.card_id, b"[]")
            new = t.transaction_id not in self.seen
            self.seen.add(t.transaction_id)
            reply.append([events, *self.terminals.get(t.terminal_id, [0] * 6), int(new)])
        return FetchResult(txns, reply, "features")

    def describe(self) -> dict[str, Any]:
        return {"breaker": "closed", "namespace": "features"}


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, txn: Any) -> None:
        self.published.append(txn.transaction_id)

    def describe(self) -> dict[str, Any]:
        return {"enabled": True}


class FakeLog:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []  # COPY text lines split into fields

    def record(self, row: bytes) -> bool:
        self.rows.append(row.decode().rstrip("\n").split("\t"))
        return True

    def describe(self) -> dict[str, Any]:
        return {"enabled": True, "buffered": 0}


class InlineBatcher:
    """The micro-batcher's contract without its task and thread: fetch, decode, score."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def score(self, model: LoadedModel, txns: Any) -> Answer:
        fetched = await self.store.apply(txns)
        lookups = fetched.lookups
        scored = model.score_rows(txns, [lk.card for lk in lookups], [lk.terminal for lk in lookups], 3)
        return Answer(scored, lookups, fetched.version)


@pytest.fixture(scope="module")
def model(small_frame: pd.DataFrame) -> LoadedModel:
    x = feature_matrix(small_frame)
    clf = LightGBMModel({"n_estimators": 40}).fit(x, small_frame["is_fraud"].to_numpy())
    fm = FraudModel(
        clf,
        model_name="lightgbm",
        thresholds={"review": 0.05, "decline": 0.5},
        feature_defaults=learnt_defaults(x),
    )
    return LoadedModel("fraud-detector-unit", "3", fm, build_scorer(fm), "models:/fraud-detector-unit/3")


class Harness:
    def __init__(self, app: FastAPI, services: Services, store: FakeStore, log: FakeLog) -> None:
        self.app, self.services, self.store, self.log = app, services, store, log
        self.client = TestClient(app, raise_server_exceptions=False)


@asynccontextmanager
async def _no_lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield  # unit tests: no Redis client, model poller or prediction-log writer


def harness(model: LoadedModel | None, **settings: Any) -> Harness:
    s = ServingSettings(**{"batch_max": 5, "max_body_bytes": 4096, **settings})
    app = create_app(s)
    app.router.lifespan_context = _no_lifespan
    manager = ModelManager(name="fraud-detector-unit", alias="champion", tracking_uri="http://unused",
                           poll_interval_s=30, metrics=app.state.metrics)  # fmt: skip
    if model is not None:
        manager.publish(model)
    store, log = FakeStore(), FakeLog()
    services = Services(manager, store, InlineBatcher(store), log, app.state.metrics, FakePublisher())  # type: ignore[arg-type]
    app.state.services = services  # what the lifespan does (lifespan replaced above)
    return Harness(app, services, store, log)


@pytest.fixture
def h(model: LoadedModel) -> Iterator[Harness]:
    yield harness(model)


def test_predict_returns_the_contract_and_logs_the_vector_it_used(h: Harness, model: LoadedModel) -> None:
    r = h.client.post("/predict", json=BODY)
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {
        "transaction_id", "fraud_probability", "decision", "model_name", "model_version",
        "feature_set_version", "feature_source", "latency_ms", "reasons",
    }  # fmt: skip
    assert out["transaction_id"] == "t-1" and out["model_name"] == "fraud-detector-unit"
    assert out["model_version"] == "3" and out["feature_set_version"] == features.FEATURE_SET_VERSION
    assert out["feature_source"] == "online" and out["latency_ms"] > 0
    txn = features.Transaction(
        "t-1", features.from_epoch_ms(features.to_epoch_ms(BODY["event_time"])), "card-1", "term-1", 42.5,
        "card_present", "5411", None, 48.85, 2.35, "FR",
    )  # fmt: skip
    vector = features.build_vector(txn, CARD, TERMINAL, model.model.feature_defaults)
    p = model.model.predict_proba(np.array([vector]))[0]
    assert out["fraud_probability"] == p
    expected = "decline" if p >= 0.5 else "review" if p >= 0.05 else "approve"
    assert out["decision"] == expected
    assert 1 <= len(out["reasons"]) <= 3
    assert all(r["feature"] in features.FEATURE_NAMES for r in out["reasons"])
    (row,) = h.log.rows
    logged = dict(
        zip(
            ("predicted_at", "transaction_id", "card_id", "terminal_id", "event_time", "amount"),
            row[:6],
            strict=True,
        )
    )
    assert logged["transaction_id"] == "t-1" and str(logged["amount"]) == "42.50"
    assert row[15] == "{" + ",".join(repr(v) for v in vector) + "}"  # the vector, exactly
    assert row[12] == "online" and row[13] == "features"
    assert h.services.publisher.published == ["t-1"]  # type: ignore[union-attr]
    h.client.post("/predict", json=BODY)  # a repeat: already in the state, not published again
    assert h.services.publisher.published == ["t-1"]  # type: ignore[union-attr]
    assert h.log.rows[-1][15] == row[15], "a repeat reads what the first attempt read"


def test_feature_sources_online_partial_and_default(h: Harness, model: LoadedModel) -> None:
    r = h.client.post("/predict", json={**BODY, "card_id": "new-card"})
    assert r.json()["feature_source"] == "online", "a card without history has exact (empty) aggregates"
    h.store.garbled = True
    r = h.client.post("/predict", json={**BODY, "transaction_id": "t-2"})
    assert r.json()["feature_source"] == "partial"
    h.store.garbled = False
    h.store.down = True
    r = h.client.post("/predict", json=BODY)
    assert r.status_code == 200 and r.json()["feature_source"] == "default"
    txn_vector = h.log.rows[-1][15]
    defaults = model.model.feature_defaults
    got = [float(v) for v in txn_vector.strip("{}").split(",")]
    for name, value in zip(features.FEATURE_NAMES, got, strict=True):
        if features.FEATURE_GROUPS[name] != "transaction":
            assert value == defaults[name], name


def test_no_model_is_a_503_with_the_reason(model: LoadedModel) -> None:
    h = harness(None)
    h.services.models.status = "no model at models:/fraud-detector-unit@champion: no 'champion' alias"
    r = h.client.post("/predict", json=BODY)
    assert r.status_code == 503
    assert "no 'champion' alias" in r.json()["detail"] and r.headers["retry-after"] == "30"
    ready = h.client.get("/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert h.client.get("/health").json() == {"status": "ok"}
    assert h.client.get("/model").json()["loaded"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": None}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"currency": "ABC"}, "currency"),
        ({"currency": "XXX"}, "currency"),
        ({"event_time": "2025-02-20T10:00:00"}, "event_time"),  # naive
        ({"event_time": "yesterday"}, "event_time"),
        ({"card_id": ""}, "card_id"),
        ({"card_id": 123}, "card_id"),
        ({"mcc": "54"}, "mcc"),
        ({"channel": "atm"}, "channel"),
        ({"latitude": 91}, "latitude"),
        ({"country": "XK"}, "country"),
    ],
)
def test_bad_fields_are_422_naming_the_field(h: Harness, change: dict[str, Any], field: str) -> None:
    body = {**BODY, **change}
    if change.get("amount", 0) is None:
        del body["amount"]
    r = h.client.post("/predict", json=body)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["detail"]]
    assert field in fields
    assert "input" not in r.text or "lots" not in r.text  # no input echo beyond the message
    assert not h.log.rows


def test_malformed_json_and_wrong_shapes_are_422(h: Harness) -> None:
    r = h.client.post(
        "/predict", content=b'{"transaction_id": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = h.client.post("/predict", json=[BODY])
    assert r.status_code == 422
    body = orjson.dumps(BODY)
    for content_type in ("application/json; charset=utf-8", "application/vnd.fraud+json"):
        r = h.client.post("/predict", content=body, headers={"content-type": content_type})
        assert r.status_code == 200, (content_type, r.text)
    for headers in ({"content-type": "text/plain"}, {}):  # what a cross-site form can send
        for path, payload in (("/predict", BODY), ("/predict/batch", {"transactions": [BODY]})):
            r = h.client.post(path, content=orjson.dumps(payload), headers=headers)
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body", (path, headers, r.text)
    r = h.client.post("/predict/batch", json={"transactions": []})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "transactions"


def test_batch_limits_and_results(h: Harness) -> None:
    batch = [{**BODY, "transaction_id": f"t-{i}"} for i in range(5)]
    r = h.client.post("/predict/batch", json={"transactions": batch})
    assert r.status_code == 200
    assert [p["transaction_id"] for p in r.json()["predictions"]] == [f"t-{i}" for i in range(5)]
    r = h.client.post("/predict/batch", json={"transactions": [*batch, BODY]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "transactions" and "at most 5" in r.json()["detail"][0]["msg"]


def test_body_size_limit(h: Harness) -> None:
    big = {**BODY, "merchant_name": "x" * 500, "pad": "y" * 5000}
    r = h.client.post("/predict", json=big)
    assert r.status_code == 413 and r.json() == {"detail": "request body too large"}

    def chunks() -> Iterator[bytes]:  # no content-length: counted while it streams
        yield b'{"pad": "'
        for _ in range(10):
            yield b"z" * 1000
        yield b'"}'

    r = h.client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_api_keys(model: LoadedModel) -> None:
    h = harness(model, api_keys="key-one, key-two")
    assert h.client.post("/predict", json=BODY).status_code == 401
    assert h.client.post("/predict", json=BODY, headers={"X-API-Key": "key-three"}).status_code == 401
    assert h.client.get("/model").status_code == 401
    assert h.client.post("/predict", json=BODY, headers={"X-API-Key": "key-two"}).status_code == 200
    assert h.client.post("/predict", json={}, headers={"X-API-Key": "nope"}).status_code == 401  # key first
    assert h.client.post("/predict/batch", json={"transactions": [BODY]}).status_code == 401
    assert h.client.get("/model", headers={"X-API-Key": "key-one"}).json()["version"] == "3"
    for open_path in ("/health", "/ready", "/metrics", "/openapi.json"):
        assert h.client.get(open_path).status_code == 200, open_path


def test_auth_is_required_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_ENV", "prod")
    with pytest.raises(Exception, match="SERVING_API_KEYS is empty"):
        ServingSettings(api_keys="")
    assert ServingSettings(api_keys="a-real-key").keys() == (b"a-real-key",)


def test_unexpected_errors_are_500_without_internals(h: Harness) -> None:
    h.store.explode = True
    r = h.client.post("/predict", json=BODY)
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_metrics_exposition(h: Harness) -> None:
    h.client.post("/predict", json=BODY)
    h.client.post("/predict", json={**BODY, "amount": -1})
    h.client.get("/no-such-path")
    text = h.client.get("/metrics").text
    assert 'fraud_api_requests_total{endpoint="/predict",method="POST",status="200"} 1.0' in text
    assert 'fraud_api_requests_total{endpoint="/predict",method="POST",status="422"} 1.0' in text
    assert 'fraud_api_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in text
    assert "fraud_api_predictions_total{decision=" in text
    assert 'fraud_api_model_info{feature_set_version="fs-1.0.0",model_family="lightgbm",' in text
    for name in (
        "fraud_api_request_duration_seconds_bucket", "fraud_api_fraud_probability_bucket",
        "fraud_api_model_loaded 1.0", "fraud_api_redis_breaker_state",
        "fraud_api_prediction_log_dropped_total",
    ):  # fmt: skip
        assert name in text, name


def test_openapi_documents_the_contract(h: Harness) -> None:
    spec = h.client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"TransactionIn", "PredictionOut"} <= set(schemas)
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    for path in ("/predict", "/predict/batch"):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{"APIKeyHeader": []}], path
        assert operation["requestBody"]["required"] is True, path
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/TransactionIn"}
    assert h.client.get("/docs").status_code == 200


# The fuzz target: the same app, built at import (create_app does no I/O); its services are
# pointed at the fakes by an autouse fixture before any case runs.
FUZZ_APP = create_app(ServingSettings(batch_max=5))
FUZZ_APP.router.lifespan_context = _no_lifespan
schema = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)


@pytest.fixture(scope="module", autouse=True)
def _fuzz_services(model: LoadedModel) -> None:
    services = harness(model).services
    FUZZ_APP.state.services = services


@schema.parametrize()
@hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_fuzzed_requests_never_get_a_5xx(case: schemathesis.Case) -> None:
    from schemathesis.checks import not_a_server_error

    case.call_and_validate(checks=[not_a_server_error])
