"""Typed settings for the platform's shared endpoints, read from the environment.

Every variable lives in ``.env.example`` (the one list of endpoints and secrets). Values are read,
highest priority first, from: the process environment, ``.env`` (a user's overrides), and
``.env.example`` (the development defaults), so a command run outside ``make`` still finds them.

Each service composes the connection classes it needs into its own settings class (with its own
``env_prefix`` for its own knobs) and hands it out through a cached ``get_settings()``.
Secrets equal to the development defaults of ``.env.example`` are refused unless FRAUD_ENV=dev.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dotenv import dotenv_values
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.online_store import DEFAULT_NAMESPACE

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
ENV_FILES = (ENV_EXAMPLE, ROOT / ".env")


class SettingsError(RuntimeError):
    """A setting is missing, malformed or unsafe for the environment."""


@cache
def dev_defaults() -> dict[str, str]:
    """The development defaults of .env.example (empty when the file is not shipped)."""
    if not ENV_EXAMPLE.exists():
        return {}
    return {k: v for k, v in dotenv_values(ENV_EXAMPLE).items() if v is not None}


class _Base(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILES, env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> _Base:
        env = FraudEnv().fraud_env
        if env == "dev":
            return self
        defaults = dev_defaults()
        for name, value in self:
            if isinstance(value, SecretStr):
                var = name.upper()
                if value.get_secret_value() and value.get_secret_value() == defaults.get(var):
                    raise SettingsError(
                        f"{var} still has its development default from .env.example; "
                        f"set a real secret (FRAUD_ENV={env})"
                    )
        return self


class ServiceSettings(BaseSettings):
    """Base of a service's own settings class: its knobs under its ``env_prefix``
    (``model_config = SettingsConfigDict(env_prefix="STREAMING_")`` in the subclass), read from the
    same sources as the shared settings; an empty variable means "use the default"."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILES, env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )


class FraudEnv(BaseSettings):
    model_config = SettingsConfigDict(env_file=ENV_FILES, extra="ignore")
    fraud_env: str = "dev"
    log_level: str = "INFO"


class KafkaSettings(_Base):
    kafka_bootstrap_servers: str
    kafka_topic_raw: str
    kafka_topic_dlq: str
    kafka_topic_labels: str
    kafka_raw_partitions: int = 6
    schema_registry_url: str


class S3Settings(_Base):
    s3_endpoint_url: str
    s3_region: str
    s3_access_key: str
    s3_secret_key: SecretStr
    lakehouse_bucket: str
    mlflow_bucket: str

    def boto3_kwargs(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.s3_endpoint_url,
            "aws_access_key_id": self.s3_access_key,
            "aws_secret_access_key": self.s3_secret_key.get_secret_value(),
            "region_name": self.s3_region,
        }


class TrinoSettings(_Base):
    trino_host: str
    trino_port: int
    trino_user: str
    trino_catalog: str


class PostgresSettings(_Base):
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: SecretStr
    mlflow_db: str
    airflow_db: str
    superset_db: str
    predictions_db: str
    schema_registry_db: str

    def dsn(self, database: str) -> str:
        pw = quote(self.postgres_password.get_secret_value(), safe="")
        return f"postgresql://{self.postgres_user}:{pw}@{self.postgres_host}:{self.postgres_port}/{database}"


class RedisSettings(_Base):
    redis_url: str
    #: key prefix of the online feature store (the feature writer publishes, serving reads)
    feature_namespace: str = DEFAULT_NAMESPACE


class MlflowSettings(_Base):
    mlflow_tracking_uri: str
    mlflow_model_name: str
    mlflow_experiment: str


class AirflowSettings(_Base):
    airflow_api_url: str
    airflow_admin_user: str
    airflow_admin_password: SecretStr
    airflow_jwt_secret: SecretStr
    airflow_fernet_key: SecretStr


class SupersetSettings(_Base):
    superset_url: str
    superset_admin_user: str
    superset_admin_password: SecretStr
    superset_secret_key: SecretStr


class ObservabilitySettings(_Base):
    prometheus_port: int
    alertmanager_port: int


@cache
def kafka_settings() -> KafkaSettings:
    return KafkaSettings()  # type: ignore[call-arg]


@cache
def s3_settings() -> S3Settings:
    return S3Settings()  # type: ignore[call-arg]


@cache
def trino_settings() -> TrinoSettings:
    return TrinoSettings()  # type: ignore[call-arg]


@cache
def postgres_settings() -> PostgresSettings:
    return PostgresSettings()  # type: ignore[call-arg]


@cache
def redis_settings() -> RedisSettings:
    return RedisSettings()  # type: ignore[call-arg]


@cache
def mlflow_settings() -> MlflowSettings:
    return MlflowSettings()  # type: ignore[call-arg]


@cache
def airflow_settings() -> AirflowSettings:
    return AirflowSettings()  # type: ignore[call-arg]


@cache
def superset_settings() -> SupersetSettings:
    return SupersetSettings()  # type: ignore[call-arg]
