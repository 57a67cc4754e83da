"""The ML jobs' own knobs (``FEATURE_WRITER_*``, ``ONLINE_APPLIER_*``), next to the shared
settings of common.settings.

The online store's namespace is shared with serving (``FEATURE_NAMESPACE``, in
:class:`common.settings.RedisSettings`). Every field has a line in ``.env.example``.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class FeatureWriterSettings(ServiceSettings):
    """``FEATURE_WRITER_*`` variables (environment, then .env, then .env.example)."""

    model_config = SettingsConfigDict(env_prefix="FEATURE_WRITER_")

    #: Rows read from Trino per batch (applied to Redis in short script calls, ml.online_state).
    batch_size: int = Field(default=5000, ge=1)
    #: Gold transactions (with labels) the online state is seeded from, <schema>.<table>.
    source_table: str = "gold.fct_transaction_features"


class ApplierSettings(ServiceSettings):
    """``ONLINE_APPLIER_*``: the consumer of transactions.raw / transactions.labels that keeps the
    online state (``python -m ml apply-online``)."""

    model_config = SettingsConfigDict(env_prefix="ONLINE_APPLIER_")

    group_id: str = "online-applier"
    #: Prometheus metrics (freshness per source, apply delay, lag).
    metrics_port: int = Field(default=8003, ge=1, le=65535)
    #: Most records applied per Redis round trip.
    batch_max: int = Field(default=2000, ge=1)
    #: Longest wait for more records before applying what came (seconds).
    poll_timeout_s: float = Field(default=0.05, gt=0)
    #: Seconds of Kafka history `make rebuild-online` re-applies after seeding from Gold.
    rebuild_replay_s: int = Field(default=86_400, ge=0)


@cache
def get_settings() -> FeatureWriterSettings:
    return FeatureWriterSettings()


@cache
def applier_settings() -> ApplierSettings:
    return ApplierSettings()
