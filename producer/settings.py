"""The producer's own knobs (``PRODUCER_*``), next to the shared Kafka settings of common.settings.

Endpoints and topic names come from :func:`common.settings.kafka_settings`; this class only holds
what is specific to the producer. Every field has a line in ``.env.example``.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

Compatibility = Literal[
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
]


class ProducerSettings(ServiceSettings):
    """``PRODUCER_*`` variables (environment, then .env, then .env.example)."""

    model_config = SettingsConfigDict(env_prefix="PRODUCER_")

    # Prometheus /metrics port (0 = no metrics endpoint).
    metrics_port: int = Field(default=8001, ge=0, le=65535)
    # librdkafka tuning (acks=all and enable.idempotence=true are fixed, not settings).
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = "lz4"
    linger_ms: int = Field(default=25, ge=0)
    batch_size: int = Field(default=1_000_000, ge=1)  # bytes per partition batch (librdkafka batch.size)
    batch_num_messages: int = Field(default=10_000, ge=1)
    queue_max_messages: int = Field(default=500_000, ge=1)  # local buffer before produce() back-pressures
    # How long librdkafka keeps retrying one record (broker down, leader change) before it is
    # reported undeliverable and dead-lettered. Idempotence makes these retries duplicate-free.
    delivery_timeout_ms: int = Field(default=120_000, ge=1_000)
    flush_timeout_s: float = Field(default=60.0, gt=0)
    # Start-up checks (broker metadata, registry) give up after this long: a clear error, no hang.
    connect_timeout_s: float = Field(default=10.0, gt=0)
    # Avro encoder (all byte-identical, see producer/encoders.py): "compiled" (generated from the schema,
    # fastest), "fastavro" (fastavro.schemaless_writer), "confluent" (confluent-kafka's AvroSerializer).
    serializer: Literal["compiled", "fastavro", "confluent"] = "compiled"
    # Compatibility level set on the producer's subjects before registering.
    subject_compatibility: Compatibility = "FULL_TRANSITIVE"
    # `make replay FILE=…`: currency of rows without one; label time of fraud rows without one.
    replay_default_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    replay_label_delay_s: int = Field(default=7 * 24 * 3600, ge=0)
    # `make replay-dlq`: the consumer group whose committed offsets mark handled DLQ records.
    dlq_replay_group: str = "producer-replay-dlq"


@cache
def get_settings() -> ProducerSettings:
    return ProducerSettings()
