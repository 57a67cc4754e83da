"""The DAGs run from Airflow's own UI, as a user runs them, in a real browser (chromium, headless):
sign in, open the DAG, switch it on, press Trigger, and the run that click created succeeds; then
MLflow's UI shows the model version that the training run registered.

Switching a DAG on makes its scheduler create the run of its latest schedule tick at once
(`catchup=False`), and `max_active_runs=1` runs it before or after ours: the test lets such runs
finish, switches the DAG back to what it found (paused, in a test session: see `running_stack`), and
drops the runs that the switch queued but never started. Screenshots: var/reports/screenshots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from common.airflow_api import AirflowApi
from common.settings import airflow_settings, mlflow_settings
from tests.browser_support import browser, screenshot

# after_traffic: after test_pipeline.py, whose history gives the DAGs fresh Bronze and enough labelled
# Gold to train on (a fresh machine has neither before it)
pytestmark = [
    pytest.mark.usefixtures("running_stack"),
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.after_traffic,
]

#: generous: the stack shares two CPUs with everything else on the machine
RUN_TIMEOUT_S = {"fraud_pipeline": 30 * 60, "fraud_training": 60 * 60}
ACTIVE = ("queued", "running")
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def api() -> Iterator[AirflowApi]:
    with AirflowApi.connect(timeout_s=60) as client:
        yield client


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)  # the UIs render slowly on a busy machine
    yield context.new_page()
    context.close()


def _sign_in(page: Page) -> str:
    a = airflow_settings()
    base = a.airflow_api_url.rstrip("/")
    page.goto(f"{base}/")
    page.get_by_label("Username").fill(a.airflow_admin_user)
    page.get_by_label("Password").fill(a.airflow_admin_password.get_secret_value())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("nav-dags-link")).to_be_visible()
    return base


def _is_on(page: Page) -> bool:
    return page.get_by_test_id("toggle-pause").locator("input").is_checked()


def _switch_on(page: Page) -> None:
    """The switch beside the DAG's name; a confirmation dialog when Airflow is set to ask."""
    page.get_by_test_id("toggle-pause").click()
    confirm = page.get_by_test_id("confirmation-confirm-button")
    if confirm.is_visible():
        confirm.click()
    expect(page.get_by_test_id("toggle-pause").locator("input")).to_be_checked()


def _trigger(page: Page, dag_id: str) -> str:
    """Trigger → the dialog's Trigger; the UI then opens the new run: its id is in the address."""
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(dag_id))).to_be_visible()
    dialog.get_by_test_id("trigger-dag-submit").click()
    page.wait_for_url(re.compile(rf"/dags/{dag_id}/runs/[^/?]+"))
    match = re.search(rf"/dags/{dag_id}/runs/([^/?]+)", page.url)
    assert match, page.url
    return unquote(match.group(1))


def _wait_for(api: AirflowApi, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        run = api.dag_run(dag_id, run_id)
        if run["state"] not in ACTIVE or time.monotonic() > deadline:
            return run
        time.sleep(3)


def _task_states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {t["task_id"]: t["state"] for t in api.task_instances(dag_id, run_id)}


def _others_active(api: AirflowApi, dag_id: str, since: datetime, ours: str) -> list[dict[str, Any]]:
    """Runs of the DAG, other than ours, created during the test and not finished."""
    return [
        r
        for r in api.dag_runs(dag_id, limit=20)
        if r["dag_run_id"] != ours
        and r["state"] in ACTIVE
        and datetime.fromisoformat(r["queued_at"] or r["run_after"]) >= since
    ]


def _leave_as_found(api: AirflowApi, dag_id: str, since: datetime, ours: str, timeout_s: float) -> None:
    """Let the runs that switching the DAG on started finish, pause it again, and delete the runs it
    queued that never started (a paused DAG never would)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(r["start_date"] for r in _others_active(api, dag_id, since, ours)):
            api.set_paused(dag_id, True)
            # a queued run may have started between the look and the pause: then let it finish
            if not any(r["start_date"] for r in _others_active(api, dag_id, since, ours)):
                break
            api.set_paused(dag_id, False)
        time.sleep(10)
    api.set_paused(dag_id, True)
    for r in _others_active(api, dag_id, since, ours):
        if r["start_date"] is None:
            api.delete_dag_run(dag_id, r["dag_run_id"])


def _run_from_ui(page: Page, api: AirflowApi, dag_id: str) -> dict[str, Any]:
    """Sign in, open the DAG, switch it on, trigger it, wait for that run; the DAG is left as found."""
    was_paused = api.dag(dag_id)["is_paused"]
    since = datetime.now(UTC)
    before = {r["dag_run_id"] for r in api.dag_runs(dag_id, limit=50)}
    base = _sign_in(page)
    page.goto(f"{base}/dags/{dag_id}")
    expect(page.get_by_role("heading", name=dag_id, exact=True)).to_be_visible()
    run_id = ""
    try:
        if not _is_on(page):
            _switch_on(page)
        # the switch flips at once, the request behind it may take a moment
        deadline = time.monotonic() + 60
        while api.dag(dag_id)["is_paused"] and time.monotonic() < deadline:
            time.sleep(1)
        assert api.dag(dag_id)["is_paused"] is False
        run_id = _trigger(page, dag_id)
        assert run_id not in before
        run = api.dag_run(dag_id, run_id)
        assert (run["run_type"], run["triggered_by"]) == ("manual", "ui"), run
        run_url = page.url
        page.goto("about:blank")  # an open Airflow page polls the API: spare the CPU while we wait
        run = _wait_for(api, dag_id, run_id, RUN_TIMEOUT_S[dag_id])
    finally:
        if was_paused:  # at once: the next scheduled run may be about to start
            _leave_as_found(api, dag_id, since, run_id, RUN_TIMEOUT_S[dag_id])
        assert api.dag(dag_id)["is_paused"] is was_paused
    assert run["state"] == "success", (run, _task_states(api, dag_id, run_id))
    page.goto(run_url)
    expect(page.get_by_role("heading", name=run_id)).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    screenshot(page, f"airflow-{dag_id}")
    return run


def test_fraud_pipeline_runs_from_the_ui(page: Page, api: AirflowApi) -> None:
    run = _run_from_ui(page, api, "fraud_pipeline")
    states = _task_states(api, "fraud_pipeline", run["dag_run_id"])
    for task in ("wait_for_fresh_bronze", "build_silver", "build_gold", "write_online_features"):
        assert states[task] == "success", states


def _versions(model: str) -> dict[str, dict[str, Any]]:
    """The registry's versions of a model, from MLflow's REST API."""
    r = httpx.get(
        f"{mlflow_settings().mlflow_tracking_uri}/api/2.0/mlflow/model-versions/search",
        params={"filter": f"name='{model}'", "max_results": 1000},
        timeout=30,
    )
    r.raise_for_status()
    return {v["version"]: v for v in r.json().get("model_versions", [])}


def test_fraud_training_runs_from_the_ui_and_registers_a_version(page: Page, api: AirflowApi) -> None:
    """Every training run registers a new version (ml.train.train), promoted or not: the gates and
    the champion comparison only decide its aliases (`@challenger`, `@champion`)."""
    m = mlflow_settings()
    before = _versions(m.mlflow_model_name)
    run = _run_from_ui(page, api, "fraud_training")
    run_id = run["dag_run_id"]
    trained = api.xcom("fraud_training", run_id, "train_model")
    decision = api.xcom("fraud_training", run_id, "promote_champion")
    version = str(trained["version"])
    after = _versions(m.mlflow_model_name)
    assert version not in before, (version, sorted(before))
    assert after[version]["run_id"] == trained["run_id"]
    assert after[version]["status"] == "READY"
    aliases = set(after[version].get("aliases", []))
    assert ("champion" in aliases) == bool(decision.get("promoted")), (aliases, decision)

    page.goto(f"{m.mlflow_tracking_uri}/#/models")
    promo = page.get_by_role("dialog", name=re.compile("Model Registry UI"))  # MLflow's what's-new
    page.add_locator_handler(promo, lambda: promo.get_by_role("button", name="Close").click())
    page.get_by_role("link", name=m.mlflow_model_name, exact=True).click()
    expect(page.get_by_role("heading", name=m.mlflow_model_name)).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"Version {version}", exact=True))
    expect(row).to_be_visible()
    expect(row).to_contain_text(trained["run_id"])  # the version's run_id tag
    screenshot(page, "mlflow-model")
    row.get_by_role("link", name=f"Version {version}", exact=True).click()
    page.wait_for_url(re.compile(rf"#/models/{m.mlflow_model_name}/versions/{version}$"))
    expect(page.get_by_role("heading", name=f"Version {version}")).to_be_visible()
    expect(page.get_by_role("row", name=f"run_id {trained['run_id']}")).to_be_visible()
