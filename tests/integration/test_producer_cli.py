"""``python -m producer`` as users run it: exit codes, reports, SIGTERM, metrics, clear start-up errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kafka_support import end_offsets, registry, v1_schema

from common.settings import ROOT
from contracts.avro import subject_for
from producer.pipeline import Topics

pytestmark = pytest.mark.usefixtures("running_stack")


def cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=ROOT,
        env={**os.environ, "PRODUCER_METRICS_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def topic_env(t: Topics) -> dict[str, str]:
    return {"KAFKA_TOPIC_RAW": t.raw, "KAFKA_TOPIC_LABELS": t.labels, "KAFKA_TOPIC_DLQ": t.dlq}


def test_cli_run_reconciles_and_matches_the_topics(topics: Topics, tmp_path: Path) -> None:
    report_path = tmp_path / "producer.json"
    args = ["run", "--count", "400", "--days", "1", "--inject-bad-rate", "0.2", "--seed", "5"]
    proc = cli([*args, "--report", str(report_path)], topic_env(topics))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reconciled" in proc.stderr
    report = json.loads(report_path.read_text())
    rec = report["reconciliation"]
    assert rec["ok"] and report["generated"]["transaction"] == 400
    assert sum(report["injected"].values()) == report["dead_lettered"]["transaction"] > 40
    assert end_offsets(topics.raw) == report["accepted"]["transaction"]
    assert end_offsets(topics.dlq) == rec["dead_lettered"]


def test_cli_sigterm_flushes_reports_and_exports_metrics(topics: Topics, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report_path = tmp_path / "producer.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producer",
            "run",
            "--tps",
            "400",
            "--days",
            "1",
            "--report",
            str(report_path),
        ],
        cwd=ROOT,
        env={**os.environ, **topic_env(topics), "PRODUCER_METRICS_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    metrics = r.read().decode()
            except OSError:
                metrics = ""
            produced = re.search(
                r'fraud_producer_produced_total\{[^}]*event_type="transaction"[^}]*\} ([0-9.e+]+)', metrics
            )
            if produced and float(produced.group(1)) >= 20:
                break
            time.sleep(0.5)
        assert "fraud_producer_delivery_latency_seconds_bucket" in metrics
        assert 'fraud_producer_schema_id{subject="' + subject_for(topics.raw) in metrics
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(report_path.read_text())
    assert report["stopped_by"] == "signal:SIGTERM" and report["reconciliation"]["ok"]
    assert report["reconciliation"]["in_flight_at_exit"] == 0
    assert end_offsets(topics.raw) == report["accepted"]["transaction"] > 0


def test_cli_stops_before_sending_when_the_registry_refuses_the_schema(topics: Topics) -> None:
    # The subject already holds a schema the current one is incompatible with (amount as double).
    old = v1_schema()
    old["fields"][6]["type"] = "double"
    registry().ensure_subject(subject_for(topics.raw), json.dumps(old), "FULL_TRANSITIVE")
    proc = cli(["run", "--count", "10", "--days", "1"], topic_env(topics))
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "409" in proc.stderr and "/fields/6/type" in proc.stderr and subject_for(topics.raw) in proc.stderr
    assert "nothing was sent" in proc.stderr
    assert end_offsets(topics.raw) == end_offsets(topics.labels) == end_offsets(topics.dlq) == 0


def test_cli_unreachable_broker_is_a_clear_quick_error() -> None:
    started = time.monotonic()
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "PRODUCER_CONNECT_TIMEOUT_S": "3"}
    proc = cli(["run", "--count", "1", "--days", "1"], env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Kafka broker unreachable at 127.0.0.1:1" in proc.stderr
    assert time.monotonic() - started < 45


def test_cli_unreachable_registry_is_a_clear_quick_error(topics: Topics) -> None:
    url = "http://127.0.0.1:1/apis/ccompat/v7"
    started = time.monotonic()
    env = {**topic_env(topics), "SCHEMA_REGISTRY_URL": url, "PRODUCER_CONNECT_TIMEOUT_S": "3"}
    proc = cli(["run", "--count", "1", "--days", "1"], env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"schema registry unreachable at {url}" in proc.stderr
    assert time.monotonic() - started < 45
    assert end_offsets(topics.raw) == 0


def test_cli_replay_refuses_a_file_without_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("transaction_id,amount\n1,2\n")
    proc = cli(["replay", str(path)], {})
    assert proc.returncode == 2 and "lacks required column" in proc.stderr
