"""Shared fixtures. Integration and e2e tests talk to the real native stack (`make up-local`);
they fail, not skip, when it is not running: a test that silently skips cannot fail."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under tests/integration and tests/e2e get their tier's marker automatically."""
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in path.parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def local_stack() -> None:
    """Asserts the native stack is up and every service ready."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infra/local/stack.py"), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(
            "the native local stack is not running or not healthy; start it with 'make up-local'\n"
            + proc.stdout[-2000:]
            + proc.stderr[-2000:],
            pytrace=False,
        )


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names a test creates (topics, subjects, tables)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def spark(local_stack: None) -> Iterator[object]:
    """One local Spark session for the whole run (Delta + S3A + Kafka jars)."""
    from streaming.session import build_spark

    session = build_spark("fraud-tests")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A CLI under test configures the root logger (common.logs.setup_logging): put it back, or
    later tests log to a capture stream pytest has closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
