"""Fixtures of the integration tier (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kafka_support import test_topics
from streaming_support import Env, stream_env

from producer.pipeline import Topics


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
