"""The producer's settings: every variable is listed in .env.example and parses."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from producer.settings import ProducerSettings

ROOT = Path(__file__).resolve().parents[3]


def test_every_producer_setting_is_in_env_example() -> None:
    env = dotenv_values(ROOT / ".env.example")
    missing = [
        f"PRODUCER_{f.upper()}" for f in ProducerSettings.model_fields if f"PRODUCER_{f.upper()}" not in env
    ]
    assert not missing, f"absent from .env.example: {missing}"


def test_env_example_values_parse_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    s = ProducerSettings()
    assert s.compression == "lz4" and s.subject_compatibility == "FULL_TRANSITIVE"
    monkeypatch.setenv("PRODUCER_COMPRESSION", "zstd")
    assert ProducerSettings().compression == "zstd"
    monkeypatch.setenv("PRODUCER_COMPRESSION", "brotli")
    with pytest.raises(Exception, match="compression"):
        ProducerSettings()
