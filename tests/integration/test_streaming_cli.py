"""``python -m streaming run`` as the service runs it: killed with SIGKILL mid-run, restarted from
its checkpoint, and nothing is lost or duplicated."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from streaming_support import Env, assert_reconciles, bronze, produce_mixed

from common import object_store
from common.settings import ROOT
from streaming.settings import StreamingSettings

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow, pytest.mark.timeout(900)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def delta_commits(settings: StreamingSettings, table: str) -> int:
    return sum(
        1 for k in object_store.list_keys(settings.table_key(table) + "/_delta_log/") if k.endswith(".json")
    )


def cli(env: Env, *args: str, port: int = 0) -> list[str]:
    s = env.settings
    return [
        sys.executable, "-m", "streaming", "run",
        "--raw-topic", s.raw_topic_name, "--labels-topic", s.labels_topic_name,
        "--dlq-topic", s.dlq_topic_name,
        "--transactions-table", s.transactions_table, "--labels-table", s.labels_table,
        "--checkpoint-prefix", s.checkpoint_prefix, "--metrics-port", str(port),
        "--maintenance-interval", "0",
        *args,
    ]  # fmt: skip


def test_kill_9_mid_run_then_restart_loses_and_duplicates_nothing(
    spark: Any, env: Env, tmp_path: Path
) -> None:
    """The streaming driver (Python and its JVM) is killed with SIGKILL while micro-batches are in
    flight, restarted from its checkpoint, and the reconciliation still holds exactly."""
    produced = produce_mixed(env, n_good=600)
    log_path = tmp_path / "streaming.log"
    port = free_port()
    run_env = {**os.environ, "SPARK_LOG_LEVEL": "ERROR"}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cli(env, "--trigger-interval", "0", "--max-offsets-per-trigger", "100", port=port),
            cwd=ROOT,
            env=run_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the JVM dies with it
        )
        try:
            deadline = time.monotonic() + 420
            served = False
            while delta_commits(env.settings, env.settings.transactions_table) < 3:  # create + 2 batches
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, (
                    "no micro-batch committed in time\n" + log_path.read_text()[-3000:]
                )
                if not served:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                            served = b"fraud_streaming_query_active" in r.read()
                    except OSError:
                        pass
                time.sleep(0.5)
            assert served, "the metrics endpoint never answered"
            time.sleep(1.5)  # into the next micro-batch
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    before = bronze(spark, env.settings, env.settings.transactions_table).count()
    assert before < produced.count("bronze"), "the run finished before the kill: nothing was tested"

    # the batch planned before the kill is replayed with its offsets, the rest in one batch
    restart = subprocess.run(
        cli(env, "--available-now", "--max-offsets-per-trigger", "100000"),
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = restart.stdout + restart.stderr
    errors = [line for line in out.splitlines() if "ERROR" in line or "Exception" in line]
    assert restart.returncode == 0, "\n".join(errors[:20]) + "\n...\n" + out[-2000:]
    assert_reconciles(spark, env, produced)
