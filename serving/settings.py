"""The serving API's own knobs (``SERVING_*``), next to the shared endpoints of common.settings.

Endpoint fields left empty mean the platform's (``REDIS_URL``, ``MLFLOW_TRACKING_URI``, the
``PREDICTIONS_DB`` database on ``POSTGRES_*``, ``FEATURE_NAMESPACE``); tests build
``ServingSettings(redis_url=..., model_name=...)`` to point one app at their own resources.
Every field has a line in ``.env.example``.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import (
    FraudEnv,
    ServiceSettings,
    SettingsError,
    mlflow_settings,
    postgres_settings,
    redis_settings,
)


class ServingSettings(ServiceSettings):
    """``SERVING_*`` variables (environment, then .env, then .env.example)."""

    model_config = SettingsConfigDict(env_prefix="SERVING_")

    # --- HTTP
    host: str = "0.0.0.0"  # noqa: S104 - a service inside a container listens on every interface
    port: int = Field(default=8000, ge=1, le=65535)
    #: Comma-separated API keys; empty = no authentication (refused outside FRAUD_ENV=dev).
    api_keys: SecretStr = SecretStr("")
    #: Largest request body in bytes (413 beyond).
    max_body_bytes: int = Field(default=262_144, ge=1024)
    #: Most transactions in one POST /predict/batch.
    batch_max: int = Field(default=100, ge=1, le=10_000)
    #: Reasons (largest feature contributions) returned per prediction.
    top_reasons: int = Field(default=3, ge=0, le=32)
    access_log: bool = False

    # --- model (MLflow registry)
    #: Registered model to serve; empty = MLFLOW_MODEL_NAME (the name training registers).
    model_name: str = ""
    model_alias: str = "champion"
    #: Seconds between two looks at the alias; a moved alias loads and swaps the new version.
    model_poll_interval_s: float = Field(default=30.0, gt=0)
    #: Rows scored together at most (concurrent requests are micro-batched).
    score_batch_max: int = Field(default=64, ge=1)
    #: Score inline on the event loop (default: no GIL handoffs) or in a worker thread (the loop
    #: stays free while a batch scores, but each handoff waits on the GIL; docs/design/serving.md).
    scoring_thread: bool = False
    mlflow_tracking_uri: str = ""

    # --- online features (Redis) behind the circuit breaker
    redis_url: str = ""
    feature_namespace: str = ""
    #: Budget of one feature lookup (pool wait + round trip), milliseconds.
    redis_timeout_ms: float = Field(default=50.0, gt=0)
    redis_connect_timeout_ms: float = Field(default=200.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=5.0, ge=0)
    breaker_half_open_max_calls: int = Field(default=1, ge=1)

    # --- one history: scored transactions new to the online state → transactions.raw (Kafka)
    publish_scored: bool = True
    #: Topic of the scored transactions; empty = KAFKA_TOPIC_RAW.
    publish_topic: str = ""
    #: Scored transactions held while Kafka or the schema registry is unavailable; beyond, dropped.
    publish_buffer_size: int = Field(default=100_000, ge=1)

    # --- prediction log (Postgres), written off the request path
    prediction_log_enabled: bool = True
    prediction_log_dsn: SecretStr = SecretStr("")
    prediction_log_table: str = Field(default="prediction_log", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    prediction_log_batch_size: int = Field(default=500, ge=1)
    prediction_log_flush_interval_s: float = Field(default=1.0, gt=0)
    #: Predictions held in memory while Postgres is slow or down; beyond it they are dropped.
    prediction_log_buffer_size: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _model_name_defaults_to_the_trained_one(self) -> ServingSettings:
        if not self.model_name:
            self.model_name = mlflow_settings().mlflow_model_name
        return self

    @model_validator(mode="after")
    def _auth_required_outside_dev(self) -> ServingSettings:
        env = FraudEnv().fraud_env
        if env != "dev" and not self.keys():
            raise SettingsError(f"SERVING_API_KEYS is empty: the API would be open (FRAUD_ENV={env})")
        return self

    def keys(self) -> tuple[bytes, ...]:
        return tuple(k.strip().encode() for k in self.api_keys.get_secret_value().split(",") if k.strip())

    def resolved_redis_url(self) -> str:
        return self.redis_url or redis_settings().redis_url

    def resolved_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or mlflow_settings().mlflow_tracking_uri

    def resolved_namespace(self) -> str:
        return self.feature_namespace or redis_settings().feature_namespace

    def resolved_log_dsn(self) -> str:
        dsn = self.prediction_log_dsn.get_secret_value()
        if dsn:
            return dsn
        pg = postgres_settings()
        return pg.dsn(pg.predictions_db)


@cache
def get_settings() -> ServingSettings:
    return ServingSettings()
