"""Shared defaults of the platform's DAGs (a module, not a DAG: the leading underscore keeps the
dag-processor from treating it as one). DAGs stay thin: dbt runs in its own virtualenv through a
bash command; platform code (ml/, streaming/) runs in the platform virtualenv through
ExternalPythonOperator, so Airflow's environment never imports it."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

ROOT = Path(os.environ.get("FRAUD_ROOT", Path(__file__).resolve().parents[2]))
PLATFORM_PYTHON = os.environ.get("FRAUD_PLATFORM_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
DBT_BIN = os.environ.get("FRAUD_DBT_BIN", str(ROOT / ".venvs" / "dbt" / "bin" / "dbt"))
DBT_DIR = ROOT / "dbt"

DEFAULT_ARGS = {
    "owner": "fraud-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def dbt_command(args: str) -> str:
    """A dbt invocation in the dbt virtualenv, on the project of this repository."""
    return (
        f"cd {DBT_DIR} && {DBT_BIN} {args} --project-dir {DBT_DIR} --profiles-dir {DBT_DIR} "
        f"--target-path {ROOT}/var/dbt/target --log-path {ROOT}/var/log/dbt"
    )


def dbt_build(select: str) -> str:
    """`dbt build` of one layer. Indirect selection is `buildable`: a test is picked only when all
    the models it reads are selected or upstream of them. dbt's default (`eager`) would also run,
    in the Silver build, the marts' relationship tests that merely point at a Silver model, which
    read a Gold table not built yet (and fail outright on a fresh warehouse)."""
    return dbt_command(f"build --select {select} --indirect-selection buildable")
