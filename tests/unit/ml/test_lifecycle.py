"""Training, MLflow logging (real local sqlite store), behaviour gates and registry aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import features
from ml import registry
from ml.gates import card_testing_gate, merchant_casing_gate, run_gates
from ml.protocol import ProtocolConfig
from ml.pyfunc import FraudModel
from ml.train import TrainResult, train

NAME = "fraud-detector-test"
CFG = ProtocolConfig(n_test_folds=2, n_val_folds=1, burn_in_days=14)


@dataclass
class Store:
    uri: str
    artifacts: str
    result: TrainResult
    frame: pd.DataFrame
    versions: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, small_frame: pd.DataFrame) -> Store:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    artifacts = str(root / "artifacts")
    result = train(small_frame, CFG, tracking_uri=uri, experiment="unit", artifact_location=artifacts)
    return Store(uri, artifacts, result, small_frame)


def test_every_model_is_evaluated_with_mean_and_std(store: Store) -> None:
    models = store.result.evaluation["models"]
    assert set(models) == set(CFG.models)
    for entry in models.values():
        for metric in ("auc", "ap", "cp_at_100", "recall_at_1pct_fpr", "fraud_amount_caught", "brier"):
            assert set(entry[metric]) == {"mean", "std"}
        assert len(entry["folds"]) == 2
    auc = {name: models[name]["auc"]["mean"] for name in models}
    assert auc["lightgbm"] > auc["rules"] > auc["random"]
    assert 0.35 < auc["random"] < 0.65
    champion = store.result.champion
    assert models[champion]["ap"]["mean"] > 10 * models["random"]["ap"]["mean"]


def test_run_logs_params_metrics_artifacts_and_model(store: Store) -> None:
    client = MlflowClient(store.uri)
    assert store.result.run_id is not None
    run = client.get_run(store.result.run_id)
    assert run.data.params["feature_set_version"] == features.FEATURE_SET_VERSION
    assert run.data.params["data.sha256"] == store.result.data["sha256"]
    assert run.data.params["protocol.seed"] == "42"
    assert run.data.tags["feature_set_version"] == features.FEATURE_SET_VERSION
    assert "lightgbm.ap.mean" in run.data.metrics and "random_forest.auc.std" in run.data.metrics
    names = {a.path for a in client.list_artifacts(store.result.run_id)}
    assert {
        "evaluation.json",
        "feature_importance.json",
        "package_versions.json",
        "serving_config.json",
    } <= names
    importance = store.result.importance["lightgbm"]
    assert set(importance) == set(features.FEATURE_NAMES) and sum(importance.values()) > 0


def test_register_gate_and_promote_then_serving_gets_everything(store: Store) -> None:
    assert store.result.model_uri is not None
    version = registry.register_model(store.result.model_uri, NAME, tracking_uri=store.uri)
    store.versions["good"] = version
    report = run_gates(store.result.model, store.result.evaluation)
    assert report.passed, report.as_dict()
    assert registry.set_challenger_if_gates_pass(NAME, version, report, tracking_uri=store.uri)
    holdout = _holdout(store)
    decision = registry.promote_if_better(NAME, holdout, tracking_uri=store.uri)
    assert decision["promoted"] and decision["reason"] == "no current champion"
    bundle = registry.load_alias(NAME, "champion", tracking_uri=store.uri)
    assert bundle is not None and bundle.version == version
    assert bundle.feature_set_version == features.FEATURE_SET_VERSION
    assert 0 < bundle.thresholds["review"] <= bundle.thresholds["decline"] <= 1
    assert set(bundle.feature_defaults) == set(features.STATIC_DEFAULTS)
    assert bundle.metadata["feature_names"] == list(features.FEATURE_NAMES)
    txn = features.Transaction("t", pd.Timestamp("2025-02-20T10:00:00Z").to_pydatetime(), "c", "t0", 25.0)
    scored = bundle.score_transaction(txn, None, None)  # feature store down: learnt defaults
    assert 0.0 <= scored["fraud_probability"] <= 1.0 and scored["decision"] in {
        "approve",
        "review",
        "decline",
    }
    # the pyfunc interface gives the same probability as the bundle
    vector = features.build_vector(txn, None, None, defaults=bundle.feature_defaults)
    out = bundle.model.predict(None, pd.DataFrame([vector], columns=list(features.FEATURE_NAMES)))
    assert out["fraud_probability"].iloc[0] == pytest.approx(scored["fraud_probability"])


def _holdout(store: Store) -> pd.DataFrame:
    """The last week: after the deployable model's training window and its gap."""
    train_end = pd.Timestamp(store.result.model.trained_on["train"].split("..")[1], tz="UTC") + pd.Timedelta(
        days=1
    )
    last_week = store.frame["event_time"] >= store.frame["event_time"].max().normalize() - pd.Timedelta(
        days=6
    )
    assert store.frame.loc[last_week, "event_time"].min() >= train_end
    return store.frame[last_week]


def test_a_worse_model_fails_gates_and_is_not_promoted(store: Store, small_frame: pd.DataFrame) -> None:
    weak = train(
        small_frame,
        ProtocolConfig(n_test_folds=1, n_val_folds=1, burn_in_days=14, models=("random",)),
        tracking_uri=store.uri,
        experiment="unit",
        register_as=NAME,
    )
    assert weak.registered_version is not None
    report = run_gates(weak.model, weak.evaluation)
    assert not report.passed
    assert not registry.set_challenger_if_gates_pass(
        NAME, weak.registered_version, report, tracking_uri=store.uri
    )
    assert registry.alias_version(NAME, "challenger", tracking_uri=store.uri) == store.versions["good"]
    tags = MlflowClient(store.uri).get_model_version(NAME, weak.registered_version).tags
    assert tags["gates_passed"] == "false"
    # even when forced to compare, it loses to the champion on the same hold-out period
    decision = registry.promote_if_better(
        NAME, _holdout(store), version=weak.registered_version, tracking_uri=store.uri
    )
    assert not decision["promoted"]
    assert decision["champion"]["ap"] > decision["challenger"]["ap"]
    assert registry.alias_version(NAME, "champion", tracking_uri=store.uri) == store.versions["good"]


@dataclass
class _Noisy:
    """A classifier whose score changes from call to call: what the casing gate must catch."""

    name: str = "noisy"
    params: dict[str, Any] = field(default_factory=dict)
    calls: int = 0

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Noisy:
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full(len(x), 0.01 * (self.calls % 7))

    def feature_importance(self) -> dict[str, float]:
        return {}


def test_behaviour_gates_can_fail(store: Store) -> None:
    noisy = FraudModel(
        _Noisy(), model_name="noisy", thresholds={"review": 0.5, "decline": 0.9}, feature_defaults={}
    )
    assert not merchant_casing_gate(noisy).passed
    strict = FraudModel(
        store.result.model.classifier,
        model_name="lightgbm",
        thresholds={"review": 1.0, "decline": 1.0},
        feature_defaults=store.result.model.feature_defaults,
    )
    result = card_testing_gate(strict)
    assert not result.passed and result.detail["large_amount_score"] < 1.0


def test_trained_model_flags_the_card_testing_burst_well_above_ordinary_spending(store: Store) -> None:
    result = card_testing_gate(store.result.model)
    assert result.passed
    assert result.detail["large_amount_score"] > result.detail["max_ordinary_score"]
    assert merchant_casing_gate(store.result.model).passed


def test_registry_needs_a_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="tracking URI"):
        registry.client()
