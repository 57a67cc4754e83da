"""Shared fixtures. Integration and e2e tests talk to the real stack: the native one (`make
up-local`), or the compose one when FRAUD_RUNTIME=compose (`make test-compose`). Both publish the
same ports on loopback, so the tests are the same. They fail, not skip, when the stack is not
running: a test that silently skips cannot fail."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser: drives a web UI in Debian's chromium; native stack only (`make test`): the UIs are the "
        "same code in both runtimes, and `make test-compose` leaves these out to keep CI in budget",
    )
    config.addinivalue_line(
        "markers",
        "native: checks what the issue asks of the native stack only (left out by make test-compose)",
    )


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
def running_stack() -> Iterator[None]:
    """Asserts the stack of this run's runtime is up and every service ready, and keeps the
    platform's DAGs paused while the tests run."""
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
    with _platform_dags_paused():
        yield


SESSIONS_FILE = ROOT / "var" / "run" / "test-sessions-dags.json"


@contextmanager
def _test_sessions() -> Iterator[dict[str, Any]]:
    """The test sessions on this machine that hold the DAGs paused (live pids), and the paused
    state found before the first of them, under a file lock: two sessions at once (two shells)
    must not each restore what the other one set."""
    SESSIONS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(SESSIONS_FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(SESSIONS_FILE.read_text()) if SESSIONS_FILE.exists() else {"sessions": []}
        state["sessions"] = [pid for pid in state["sessions"] if _alive(pid)]
        yield state
        if state["sessions"]:
            SESSIONS_FILE.write_text(json.dumps(state))
        else:
            SESSIONS_FILE.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _platform_dags_paused(drain_s: float = 600) -> Iterator[None]:
    """Once `make demo` has switched the DAGs on, fraud_pipeline runs every 15 minutes and its dbt
    builds would race the tests' own. The first session pauses both DAGs (their runs schedule no
    more tasks) and gives the tasks already queued or running time to finish; the last one to end
    puts back the paused state found before (kept in var/run when a session dies)."""
    from common.airflow_api import PLATFORM_DAGS, AirflowApi

    with AirflowApi.connect(timeout_s=60) as api:
        with _test_sessions() as state:
            if not state["sessions"]:
                before = api.set_paused_states(dict.fromkeys(PLATFORM_DAGS, True))
                state.setdefault("before", before)
            state["sessions"].append(os.getpid())
        deadline = time.monotonic() + drain_s
        while (busy := api.busy_tasks()) and time.monotonic() < deadline:
            time.sleep(5)
        if busy:
            logging.getLogger(__name__).warning("%d Airflow task(s) still running after %.0fs", busy, drain_s)
    try:
        yield
    finally:
        with AirflowApi.connect(timeout_s=60) as api, _test_sessions() as state:
            state["sessions"] = [pid for pid in state["sessions"] if pid != os.getpid()]
            if not state["sessions"]:
                api.set_paused_states(state["before"])


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
