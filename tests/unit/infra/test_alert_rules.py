"""The alert rules load and pass their promtool unit tests, and every alert has a test where it
fires and one where it stays quiet (run by `make test`, so CI runs them)."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "monitoring" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
TESTS = sorted((PROM / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: `make setup` installs Debian's prometheus package", pytrace=False)
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_rules_are_valid() -> None:
    proc = _promtool("check", "rules", *map(str, RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rule_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", *map(str, TESTS))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    seen: dict[str, set[str]] = defaultdict(set)
    for path in TESTS:
        for case in yaml.safe_load(path.read_text()).get("tests", []):
            for check in case.get("alert_rule_test", []):
                seen[check["alertname"]].add("fires" if check.get("exp_alerts") else "quiet")
    missing = {
        a: sorted({"fires", "quiet"} - seen[a]) for a in sorted(alerts) if seen[a] != {"fires", "quiet"}
    }
    assert not missing, f"alerts without a firing and a quiet promtool test: {missing}"
    assert not set(seen) - alerts, f"tests of alerts that do not exist: {sorted(set(seen) - alerts)}"


def test_every_rule_file_has_its_tests() -> None:
    tested = {p.stem.removesuffix("_test") for p in TESTS}
    assert {p.stem for p in RULES} <= tested, (
        f"rule files without promtool tests: {sorted({p.stem for p in RULES} - tested)}"
    )
