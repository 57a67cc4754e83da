"""Shared fixtures of the ml-core unit tests: one small simulated dataset per session."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pytest

from ml.data import validate_transactions
from ml.pit import build_feature_frame
from producer.simulator import SimulatorConfig, simulate

SMALL = SimulatorConfig(
    seed=7, days=60, n_customers=400, n_terminals=300, n_online_merchants=40, fraud_rate=0.02
)


@pytest.fixture(scope="session")
def small_sim() -> pd.DataFrame:
    """~40k simulated transactions with ground truth (2 % fraud so every scenario shows up)."""
    return simulate(SMALL).to_pandas()


@pytest.fixture(scope="session")
def small_frame(small_sim: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time feature frame of ``small_sim``."""
    return build_feature_frame(validate_transactions(small_sim))


@pytest.fixture(scope="session")
def small_config() -> SimulatorConfig:
    return SMALL


def _load_handbook_sim() -> ModuleType:
    path = Path(__file__).parent / "ml" / "handbook_sim.py"
    spec = importlib.util.spec_from_file_location("handbook_sim", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def handbook_generate() -> Callable[..., Any]:
    """``generate(...)`` of the independent handbook-style simulator."""
    generate: Callable[..., Any] = _load_handbook_sim().generate
    return generate
