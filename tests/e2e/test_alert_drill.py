"""Alert drill: a real symptom on the running stack, read from Alertmanager's API as it fires and
as it resolves. The producer dead-letters malformed events (``--inject-bad-rate``); its metrics
reach Prometheus through the Pushgateway; ``ProducerDeadLetters`` (monitoring/prometheus/rules/
producer.yml) fires and reaches Alertmanager. It resolves once 5 minutes pass without a new dead
letter: that check is marked ``after_traffic`` (tests/e2e/conftest.py), so the rest of the e2e
session runs while the window passes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.reports import report_path, write_report

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = f"http://127.0.0.1:{os.environ.get('ALERTMANAGER_PORT', '9093')}"
ALERT = "ProducerDeadLetters"
DRILL: dict[str, Any] = {}


def _active() -> list[dict[str, Any]]:
    r = httpx.get(
        f"{ALERTMANAGER}/api/v2/alerts",
        params={
            "active": "true",
            "silenced": "false",
            "inhibited": "false",
            "filter": f'alertname="{ALERT}"',
        },
        timeout=10,
    )
    r.raise_for_status()
    now = datetime.now(UTC)
    return [a for a in r.json() if _time(a["endsAt"]) > now]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wait(predicate: Any, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what} within {timeout_s:.0f} s; Alertmanager has: {_active()}")
        time.sleep(5)
    return time.monotonic() - started


def test_bad_events_fire_the_dead_letter_alert(tmp_path: Path) -> None:
    # a dead-letter alert from an earlier run (integration tests) must be over first: this drill's own
    _wait(lambda: not _active(), 420, f"an earlier {ALERT} did not resolve")
    started = datetime.now(UTC)
    proc = subprocess.run(
        [sys.executable, "-m", "producer", "run", "--count", "600", "--tps", "40", "--seed", "7",
         "--inject-bad-rate", "0.2", "--report", str(tmp_path / "drill.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    fired_after = _wait(lambda: bool(_active()), 180, f"{ALERT} did not reach Alertmanager")
    alerts = _active()
    assert all(datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) >= started for a in alerts), (
        alerts
    )
    assert {a["labels"]["stage"] for a in alerts} == {"producer.validate"}
    assert all(a["labels"]["severity"] == "warning" and a["annotations"]["summary"] for a in alerts)
    DRILL.update(
        ended=time.monotonic(),
        fired_after_s=fired_after,
        reasons=sorted(a["labels"]["reason"] for a in alerts),
    )


@pytest.mark.after_traffic
def test_the_dead_letter_alert_resolves() -> None:
    if not DRILL:
        pytest.fail("the drill did not fire (test_bad_events_fire_the_dead_letter_alert)", pytrace=False)
    # 5 minutes of window + a scrape, an evaluation and Alertmanager's notification of the resolution
    resolved_after = _wait(lambda: not _active(), 480, f"{ALERT} did not resolve")
    assert time.monotonic() - DRILL["ended"] >= 240, "resolved before its 5-minute window could have passed"
    DRILL["resolved_after_s"] = round(time.monotonic() - DRILL.pop("ended"), 1)
    DRILL["waited_at_end_s"] = round(resolved_after, 1)
    write_report(report_path("alert_drill"), {"alert": ALERT, **DRILL})
