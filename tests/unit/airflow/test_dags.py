"""Every DAG loads in Airflow's own environment without import errors and follows the house rules:
DAG id = file name, owner, retries, tags, catchup=False, doc_md, verb_object task ids."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from common.dbt import run_dbt

ROOT = Path(__file__).resolve().parents[3]
AIRFLOW_PY = ROOT / ".venvs" / "airflow" / "bin" / "python"
DAGS = ROOT / "airflow" / "dags"

PROBE = """
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(%r)
out = {"errors": {k: v[-800:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "fileloc": dag.fileloc,
        "catchup": dag.catchup,
        "tags": sorted(dag.tags),
        "doc_md": bool(dag.doc_md and dag.doc_md.strip()),
        "schedule": str(getattr(dag.timetable, "description", "")),
        "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries,
                              "upstream": sorted(t.upstream_task_ids),
                              "bash_command": getattr(t, "bash_command", None)}
                  for t in dag.tasks},
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not AIRFLOW_PY.exists():
        pytest.fail(f"{AIRFLOW_PY} is missing: run 'make setup'", pytrace=False)
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(DAGS),
    }
    proc = subprocess.run(
        [str(AIRFLOW_PY), "-c", PROBE % str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def test_dags_load_without_import_errors(dagbag: dict[str, Any]) -> None:
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {"fraud_pipeline", "fraud_training"}


def test_dag_id_is_the_file_name_and_house_rules_hold(dagbag: dict[str, Any]) -> None:
    for dag_id, dag in dagbag["dags"].items():
        assert Path(dag["fileloc"]).stem == dag_id
        assert dag["catchup"] is False, dag_id
        assert dag["tags"], dag_id
        assert dag["doc_md"], dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] == "fraud-platform", (dag_id, task_id)
            assert task["retries"] >= 1, (dag_id, task_id)
            assert re.fullmatch(r"[a-z]+(_[a-z]+)+", task_id), f"{dag_id}.{task_id} is not verb_object"


def test_pipeline_order(dagbag: dict[str, Any]) -> None:
    tasks = dagbag["dags"]["fraud_pipeline"]["tasks"]
    assert tasks["build_silver"]["upstream"] == ["wait_for_fresh_bronze"]
    assert tasks["build_gold"]["upstream"] == ["build_silver"]
    assert tasks["write_online_features"]["upstream"] == ["build_gold"]
    assert tasks["maintain_bronze"]["upstream"] == ["is_maintenance_window"]
    training = dagbag["dags"]["fraud_training"]["tasks"]
    assert training["promote_champion"]["upstream"] == ["register_challenger"]
    assert training["register_challenger"]["upstream"] == ["evaluate_model"]


def _listed(selection: list[str], resource_type: str) -> list[dict[str, Any]]:
    out = run_dbt(["ls", *selection, "--resource-type", resource_type, "--output", "json",
                   "--output-keys", "unique_id depends_on", "--quiet"], run_id="test-dags")  # fmt: skip
    return [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("task_id", ["build_silver", "build_gold"])
def test_layer_builds_only_test_what_they_build(dagbag: dict[str, Any], task_id: str) -> None:
    """A layer's `dbt build` (the DAG's own command line, listed by dbt) runs no test that reads a
    model outside the layer and its parents: on a fresh warehouse such a test would read a table
    that does not exist yet (the Silver build once ran the marts' relationship tests)."""
    command = dagbag["dags"]["fraud_pipeline"]["tasks"][task_id]["bash_command"]
    args = command.split(" && ", 1)[1].split()
    selection = args[args.index("--select") : args.index("--project-dir")]
    built = {n["unique_id"] for n in _listed(selection, "model")}
    assert built, f"{task_id} selects no model: {selection}"
    parents = ["--select", *(f"+{model.split('.')[-1]}" for model in built)]
    upstream = {n["unique_id"] for n in _listed(parents, "model")}
    tests = _listed(selection, "test")
    assert tests, f"{task_id} runs no data test: {selection}"
    for test in tests:
        outside = [d for d in test["depends_on"]["nodes"] if d.startswith("model.") and d not in upstream]
        assert not outside, f"{task_id} would run {test['unique_id']}, which reads {outside}"
