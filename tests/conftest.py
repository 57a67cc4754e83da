"""Shared fixtures. Integration and e2e tests talk to the real stack: the native one (`make
up-local`), or the compose one when FRAUD_RUNTIME=compose (`make test-compose`). Both publish the
same ports on loopback, so the tests are the same. They fail, not skip, when the stack is not
running: a test that silently skips cannot fail."""

from __future__ import annotations

import logging
import os
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


RUNTIME = os.environ.get("FRAUD_RUNTIME", "local")
STACK_SCRIPTS = {"local": "infra/local/stack.py", "compose": "infra/compose/compose_stack.py"}


@pytest.fixture(scope="session")
def running_stack() -> None:
    """Asserts the stack of this run's runtime is up and every service ready."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / STACK_SCRIPTS[RUNTIME]), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"the {RUNTIME} stack is not running or not healthy; start it with 'make up-{RUNTIME}'\n"
            + proc.stdout[-2000:]
            + proc.stderr[-2000:],
            pytrace=False,
        )


@pytest.fixture
def unique() -> str:
    """A short unique suffix for names a test creates (topics, subjects, tables)."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def spark(running_stack: None) -> Iterator[object]:
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
