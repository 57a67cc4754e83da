"""The ML jobs' own knobs (``FEATURE_WRITER_*``), next to the shared settings of common.settings.

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

    #: Rows read from Trino and written to Redis per pipelined round trip.
    batch_size: int = Field(default=5000, ge=1)
    #: Seconds an unpublished or superseded version stays readable before it expires.
    old_version_ttl_s: int = Field(default=3600, ge=1)
    #: A run holding the lock longer than this is presumed dead.
    lock_ttl_s: int = Field(default=3600, ge=1)
    #: Gold snapshots as <schema>.<table> in the TRINO_CATALOG catalog.
    card_table: str = "gold.card_features_latest"
    terminal_table: str = "gold.terminal_features_latest"


@cache
def get_settings() -> FeatureWriterSettings:
    return FeatureWriterSettings()
