"""Runs dbt (in its own virtualenv, .venvs/dbt) on the project in dbt/, with the platform's
settings in its environment (dbt's profile reads TRINO_* through env_var).

Used by `make dbt-build`, the demo, the transforms benchmark and the tests; Airflow runs the same
command line through a BashOperator.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from common.logs import setup_logging
from common.settings import ENV_FILES, ROOT

DBT_BIN = Path(os.environ.get("FRAUD_DBT_BIN", ROOT / ".venvs" / "dbt" / "bin" / "dbt"))
PROJECT = ROOT / "dbt"
log = logging.getLogger(__name__)


class DbtError(RuntimeError):
    """dbt exited non-zero; the message carries the end of its output."""


@dataclass(frozen=True)
class DbtResult:
    args: list[str]
    seconds: float
    output: str
    #: status -> count over the nodes dbt ran (models, tests, unit tests), from run_results.json
    statuses: dict[str, int]


def run_results(run_id: str) -> list[dict[str, Any]]:
    """The nodes of the last dbt command of ``run_id`` (its run_results.json), [] before any."""
    path = ROOT / "var" / "dbt" / f"target-{run_id}" / "run_results.json"
    if not path.exists():
        return []
    results: list[dict[str, Any]] = json.loads(path.read_text()).get("results", [])
    return results


def _statuses(run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in run_results(run_id):
        counts[node["status"]] = counts.get(node["status"], 0) + 1
    return counts


def dbt_env() -> dict[str, str]:
    """.env.example, overlaid by .env, overlaid by the process environment."""
    env: dict[str, str] = {}
    for f in ENV_FILES:
        if f.exists():
            env.update({k: v for k, v in dotenv_values(f).items() if v is not None})
    env.update(os.environ)
    return env


def dbt_command(args: list[str], variables: dict[str, Any] | None = None, run_id: str = "main") -> list[str]:
    if not DBT_BIN.exists():
        raise DbtError(f"{DBT_BIN} is missing: run 'make setup'")
    cmd = [
        str(DBT_BIN),
        *args,
        "--project-dir", str(PROJECT),
        "--profiles-dir", str(PROJECT),
        "--target-path", str(ROOT / "var" / "dbt" / f"target-{run_id}"),
        "--log-path", str(ROOT / "var" / "log" / "dbt"),
    ]  # fmt: skip
    if variables:
        cmd += ["--vars", json.dumps(variables)]
    return cmd


def run_dbt(args: list[str], variables: dict[str, Any] | None = None, run_id: str = "main") -> DbtResult:
    """Run one dbt command; raises DbtError (with the end of dbt's output) when it fails."""
    cmd = dbt_command(args, variables, run_id)
    log.info("dbt %s", " ".join(args))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PROJECT, env=dbt_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise DbtError(
            f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-5000:]}{proc.stderr[-2000:]}"
        )
    return DbtResult(args=args, seconds=seconds, output=proc.stdout, statuses=_statuses(run_id))


if __name__ == "__main__":
    setup_logging()
    try:
        result = run_dbt(sys.argv[1:] or ["build"])
    except DbtError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
    sys.stdout.write(result.output)
