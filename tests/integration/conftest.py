"""Fixtures of the integration tier (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from kafka_support import test_topics
from mlflow import MlflowClient
from serving_support import SIM, Registry
from streaming_support import Env, stream_env

from common.settings import mlflow_settings, postgres_settings, redis_settings
from ml.data import validate_transactions
from ml.pit import build_feature_frame
from ml.protocol import ProtocolConfig
from ml.train import train
from producer.pipeline import Topics
from producer.simulator import simulate


@pytest.fixture
def env(unique: str) -> Iterator[Env]:
    """One streaming test's own topics, subjects, Delta tables and checkpoint (removed afterwards)."""
    with stream_env(unique) as e:
        yield e


@pytest.fixture
def topics(unique: str) -> Iterator[Topics]:
    """One producer test's raw, labels and DLQ topics and their subjects (deleted afterwards)."""
    with test_topics(unique) as t:
        yield t


@pytest.fixture(scope="session")
def registry(running_stack: None) -> Iterator[Registry]:
    """Two small models registered in the real MLflow under a unique name (LightGBM, RandomForest)."""
    uri = mlflow_settings().mlflow_tracking_uri
    name = f"fraud-detector-serving-test-{os.getpid()}-{int(time.time())}"
    history = validate_transactions(simulate(SIM).to_pandas())
    frame = build_feature_frame(history)
    versions = {}
    for family in ("lightgbm", "random_forest"):
        cfg = ProtocolConfig(n_test_folds=1, n_val_folds=1, burn_in_days=14, models=(family, "random"))
        result = train(frame, cfg, tracking_uri=uri, experiment="serving-integration-tests", register_as=name)
        assert result.registered_version is not None
        versions[family] = result.registered_version
    yield Registry(name, versions, history, frame)
    MlflowClient(uri, uri).delete_registered_model(name)


@pytest.fixture
def cleanup(unique: str) -> Iterator[None]:
    yield
    r = redis.Redis.from_url(redis_settings().redis_url)
    keys = list(r.scan_iter(match=f"test-serving-{unique}:*", count=10_000))
    if keys:
        r.delete(*keys)
    pg = postgres_settings()
    with psycopg.connect(pg.dsn(pg.predictions_db), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS test_prediction_log_{unique}")
