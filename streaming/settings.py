"""The streaming job's own knobs (``STREAMING_*``), next to the shared settings of common.settings.

Endpoints (Kafka, registry, object store, Trino) come from :mod:`common.settings`; this class holds
what is specific to the Kafka → Bronze job. Topics left empty mean the platform's topics
(``KAFKA_TOPIC_*``). Tests build ``StreamingSettings(raw_topic=..., transactions_table=...)`` to
point the job at their own topics, tables and checkpoint. Every field has a line in ``.env.example``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ROOT, KafkaSettings, S3Settings, ServiceSettings, kafka_settings, s3_settings
from contracts.avro import schema_path

# Delta refuses VACUUM below 7 days unless told otherwise: a reader or a stream may still need
# files that a shorter retention would delete.
SAFE_VACUUM_RETENTION_HOURS = 168


class StreamingSettings(ServiceSettings):
    """``STREAMING_*`` variables (environment, then .env, then .env.example)."""

    model_config = SettingsConfigDict(env_prefix="STREAMING_")

    # --- Kafka: empty = the platform topics (KAFKA_TOPIC_RAW / _LABELS / _DLQ)
    raw_topic: str = ""
    labels_topic: str = ""
    dlq_topic: str = ""
    # Where a query without a checkpoint starts. Later runs resume from the checkpoint.
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    # Upper bound of records per micro-batch (all partitions of both topics together).
    max_offsets_per_trigger: int = Field(default=100_000, ge=1)
    # Micro-batch interval of the long-running transactions query; 0 = next batch as soon as one
    # ends. Labels (a trickle) have their own, longer interval: fewer fixed per-batch costs.
    trigger_interval_s: float = Field(default=5.0, ge=0)
    labels_trigger_interval_s: float = Field(default=30.0, ge=0)

    # --- Avro reader schemas (the contract's .avsc files: records are read into these)
    transaction_schema: Path = schema_path("transaction")
    label_schema: Path = schema_path("label")
    registry_timeout_s: float = Field(default=10.0, gt=0)

    # --- Lakehouse: tables live at s3a://<LAKEHOUSE_BUCKET>/<bronze_schema>/<table>, registered in
    # Trino as <TRINO_CATALOG>.<bronze_schema>.<table>
    bronze_schema: str = "bronze"
    transactions_table: str = "transactions"
    labels_table: str = "labels"
    register_in_trino: bool = True
    # Queries <query_prefix>_transactions and <query_prefix>_labels, each with its checkpoint at
    # s3a://<LAKEHOUSE_BUCKET>/<checkpoint_prefix>/<query name>
    checkpoint_prefix: str = "_checkpoints/streaming"
    query_prefix: str = "bronze"
    # Parquet files written per table per batch (fewer, larger files; OPTIMIZE compacts the rest).
    write_partitions: int = Field(default=2, ge=1)

    # --- Quality rules: the contract's (contracts.events), plus the stream's freshness rules.
    # An event may be stamped at most this far after the batch's ingest time (clock skew).
    max_future_skew_s: int = Field(default=300, ge=0)
    # ... and at most this old: generous, so replays of months of simulated history pass, while
    # epoch-zero or seconds-for-milliseconds timestamps do not.
    max_event_age_days: int = Field(default=1825, ge=1)
    # Duplicates (same transaction_id, another Kafka record) are looked up in Bronze among rows
    # ingested within this many hours; 0 = the whole table (exact; partition pruning and
    # data skipping on the event time keep it cheap).
    dedup_window_hours: float = Field(default=0.0, ge=0)

    # --- Metrics and maintenance
    metrics_port: int = Field(default=8002, ge=0, le=65535)  # 0 = no /metrics endpoint
    # The service compacts and vacuums its own tables this often (0 = never). Maintenance runs in
    # the streaming driver because Delta on S3 has no safe concurrent writers across drivers.
    maintenance_interval_minutes: int = Field(default=360, ge=0)
    vacuum_retention_hours: int = Field(default=SAFE_VACUUM_RETENTION_HOURS, ge=SAFE_VACUUM_RETENTION_HOURS)

    # --- Spark driver
    spark_master: str = "local[2]"
    driver_memory: str = "1g"

    @field_validator("transaction_schema", "label_schema")
    @classmethod
    def _relative_to_repo(cls, path: Path) -> Path:
        """A relative schema path (as in .env.example) is relative to the repository root."""
        return path if path.is_absolute() else ROOT / path

    # ------------------------------------------------------------------ derived names
    @property
    def kafka(self) -> KafkaSettings:
        return kafka_settings()

    @property
    def s3(self) -> S3Settings:
        return s3_settings()

    @property
    def raw_topic_name(self) -> str:
        return self.raw_topic or self.kafka.kafka_topic_raw

    @property
    def labels_topic_name(self) -> str:
        return self.labels_topic or self.kafka.kafka_topic_labels

    @property
    def dlq_topic_name(self) -> str:
        return self.dlq_topic or self.kafka.kafka_topic_dlq

    def table_key(self, table: str) -> str:
        """Object key prefix of a Bronze table (the same under s3a:// and s3://)."""
        return f"{self.bronze_schema}/{table}"

    def table_uri(self, table: str, scheme: str = "s3a") -> str:
        return f"{scheme}://{self.s3.lakehouse_bucket}/{self.table_key(table)}"

    def query_name(self, source: str) -> str:
        """``<query_prefix>_transactions`` or ``<query_prefix>_labels``."""
        return f"{self.query_prefix}_{source}s"

    def checkpoint_key(self, query_name: str) -> str:
        return f"{self.checkpoint_prefix.strip('/')}/{query_name}"

    def checkpoint_uri(self, query_name: str) -> str:
        return f"s3a://{self.s3.lakehouse_bucket}/{self.checkpoint_key(query_name)}"


@cache
def get_settings() -> StreamingSettings:
    return StreamingSettings()
