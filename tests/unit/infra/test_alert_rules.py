"""The alert rules load, and their promtool unit tests pass (each alert fires when it should and
stays quiet when it should not): promtool is installed by `make setup` with Prometheus."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "monitoring" / "prometheus"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run 'make setup'", pytrace=False)
    return path


@pytest.mark.parametrize("kind", ["check", "test"])
def test_rules_load_and_their_unit_tests_pass(kind: str) -> None:
    files = sorted((PROM / ("rules" if kind == "check" else "tests")).glob("*.yml"))
    assert files
    proc = subprocess.run(
        [promtool(), kind, "rules", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_file_has_its_tests() -> None:
    rules = {p.stem for p in (PROM / "rules").glob("*.yml")}
    tested = {p.stem.removesuffix("_test") for p in (PROM / "tests").glob("*_test.yml")}
    assert rules <= tested, f"rule files without promtool tests: {sorted(rules - tested)}"
