"""`make demo`: the platform end to end on the native local stack, then a summary.

1. simulate — a fresh history ending now (a new seed each run, so ids never collide with earlier runs);
   labels that would only arrive in the future are withheld, as a chargeback not yet filed is.
2. produce — the file through the producer's replay path (validation, Avro, Schema Registry, DLQ).
3. stream — wait until the streaming service has landed every accepted event in Bronze.
4. transform — `dbt build`: Silver and Gold with every data and unit test.
5. train — the fraud_training steps: Gold → model → gates → @challenger → @champion.
6. features — Gold snapshots → Redis (feature_writer).
7. serve — wait for the serving API to load the champion, then score a normal payment and a
   card-testing burst through `POST /predict`.
8. schedule — switch both Airflow DAGs on (Airflow creates them paused): from now on
   `fraud_pipeline` runs every 15 minutes and `fraud_training` weekly, by themselves.

Each stage's result is printed and written to var/reports/demo.json.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from common import trino_client
from common.logs import setup_logging
from common.reports import read_report, report_path, write_report
from common.settings import ROOT

log = logging.getLogger("demo")
console = Console(width=None if sys.stdout.isatty() else 132)
DATA = ROOT / "var" / "data" / "demo"


class DemoError(RuntimeError):
    """A stage failed; the message says which and why."""


def stack_status() -> dict[str, Any]:
    """The stack of this runtime (FRAUD_RUNTIME: local, the default, or compose) is healthy."""
    runtime = os.environ.get("FRAUD_RUNTIME", "local")
    script = {"local": "infra/local/stack.py", "compose": "infra/compose/compose_stack.py"}[runtime]
    proc = subprocess.run(
        [sys.executable, str(ROOT / script), "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DemoError(f"the {runtime} stack is not healthy (make status-{runtime}):\n{proc.stdout[-3000:]}")
    if runtime == "compose":
        data = read_report("compose-status") or {}
        total = data["total_memory_bytes"]
    else:
        data = read_report("status") or {}
        total = data["total_rss_bytes"]
    gib = round(total / 2**30, 2)
    return {"runtime": runtime, "services": len(data["services"]), "total_memory_gib": gib}


def simulate(days: int, customers: int, seed: int) -> dict[str, Any]:
    from producer.simulator import SimulatorConfig, simulate

    now = datetime.now(UTC).replace(microsecond=0)
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    cfg = SimulatorConfig(
        seed=seed, days=days, start=start, n_customers=customers, n_terminals=max(customers, 200),
        n_online_merchants=max(customers // 20, 20),
    )  # fmt: skip
    frame = simulate(cfg).to_pandas()
    frame = frame[frame["event_time"] < pd.Timestamp(now)].copy()
    not_yet = (frame["is_fraud"] == 1) & (frame["label_time"] >= pd.Timestamp(now))
    frame.loc[not_yet, ["is_fraud"]] = 0
    frame.loc[not_yet, ["label_time", "fraud_scenario"]] = None
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"transactions-{seed}.parquet"
    frame.to_parquet(path, index=False)
    return {
        "file": str(path.relative_to(ROOT)),
        "transactions": len(frame),
        "labels_arrived": int(frame["is_fraud"].sum()),
        "labels_not_yet_arrived": int(not_yet.sum()),
        "from": str(frame["event_time"].min()),
        "to": str(frame["event_time"].max()),
        "seed": seed,
    }


def produce(path: str) -> dict[str, Any]:
    report = report_path("demo-replay")
    proc = subprocess.run(
        [sys.executable, "-m", "producer", "replay", str(ROOT / path), "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise DemoError(f"producer replay failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def wait_for_bronze(seed: int, transactions: int, labels: int, timeout_s: float) -> dict[str, Any]:
    prefix = f"tx-{seed}-"
    started = time.monotonic()
    got_t = got_l = 0
    while time.monotonic() - started < timeout_s:
        like = (f"{prefix}%",)
        got_t = int(
            trino_client.scalar("SELECT count(*) FROM bronze.transactions WHERE transaction_id LIKE ?", like)
        )
        got_l = int(
            trino_client.scalar("SELECT count(*) FROM bronze.labels WHERE transaction_id LIKE ?", like)
        )
        if got_t >= transactions and got_l >= labels:
            return {"transactions": got_t, "labels": got_l, "waited_s": round(time.monotonic() - started, 1)}
        time.sleep(5)
    raise DemoError(
        f"Bronze holds {got_t}/{transactions} transactions and {got_l}/{labels} labels of this run after "
        f"{timeout_s:.0f}s; see var/log/streaming.log"
    )


def transform() -> dict[str, Any]:
    from common.dbt import run_dbt

    result = run_dbt(["build"])
    counts = {
        t: int(trino_client.scalar(f"SELECT count(*) FROM gold.{t}"))  # noqa: S608 (names from code)
        for t in ("fct_transaction_features", "card_features_latest", "terminal_features_latest",
                  "daily_fraud_metrics", "terminal_risk")
    }  # fmt: skip
    return {"dbt_build_s": round(result.seconds, 1), "result": result.statuses, **counts}


def train() -> dict[str, Any]:
    from common.settings import mlflow_settings
    from ml.registry import CHAMPION, alias_version
    from ml.tasks import (
        build_training_set,
        evaluate_model,
        promote_champion,
        register_challenger,
        train_model,
    )

    trained = train_model(build_training_set(), n_test_folds=2, n_val_folds=1)
    evaluated = evaluate_model(trained)
    challenger = register_challenger(evaluated)
    decision = promote_champion(challenger)
    models = trained["evaluation"]["models"]
    m = mlflow_settings()
    return {
        "version": trained["version"],
        # what serving will load: this version when promoted, else the champion already there
        "champion_version": alias_version(m.mlflow_model_name, CHAMPION, tracking_uri=m.mlflow_tracking_uri),
        "champion_family": trained["champion_family"],
        "train_s": trained["train_s"],
        "gates_passed": evaluated["gates"]["passed"],
        "promoted": decision.get("promoted"),
        "reason": decision.get("reason"),
        "test_folds": {
            name: {
                m: round(models[name][m]["mean"], 3) for m in ("auc", "ap", "cp_at_100") if m in models[name]
            }
            for name in models
        },
    }


def write_features() -> dict[str, Any]:
    from ml.feature_writer import write_online_features

    result = write_online_features()
    return {k: v for k, v in result.items() if isinstance(v, int | float | str)}


def serve(trained: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    from serving.settings import get_settings

    version = trained["champion_version"]
    if version is None:
        raise DemoError(
            f"no champion to serve: v{trained['version']} was not promoted ({trained['reason']}) and no "
            "earlier model is; run `make demo` again (a new simulation) or see the gates in MLflow"
        )
    s = get_settings()
    base = f"http://127.0.0.1:{s.port}"
    keys = s.keys()
    headers = {"X-API-Key": keys[0].decode()} if keys else {}
    started = time.monotonic()
    model: dict[str, Any] = {}
    with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
        while time.monotonic() - started < timeout_s:
            r = client.get("/model")
            model = r.json() if r.status_code == 200 else {}
            if str(model.get("version")) == str(version):
                break
            time.sleep(3)
        else:
            raise DemoError(f"serving did not load model version {version} within {timeout_s:.0f}s: {model}")
        # an active card at one of its usual terminals: an ordinary payment
        card, term = (
            str(v)
            for v in trino_client.scalar(
                "SELECT ARRAY[card_id, element_at(card_recent_terminal_ids, 1)] "
                "FROM gold.card_features_latest ORDER BY card_count_txn_30d DESC LIMIT 1"
            )
        )
        now = datetime.now(UTC)
        normal = {
            "transaction_id": f"demo-{int(now.timestamp())}-normal", "event_time": now.isoformat(),
            "card_id": card, "terminal_id": term, "amount": "23.40", "currency": "EUR",
            "channel": "card_present", "mcc": "5411",
        }  # fmt: skip
        results = {"normal": client.post("/predict", json=normal).json()}
        burst = []
        for i in range(8):
            burst.append(client.post("/predict", json={
                "transaction_id": f"demo-{int(now.timestamp())}-burst-{i}",
                "event_time": (now + timedelta(seconds=20 * i)).isoformat(), "card_id": card,
                "terminal_id": f"web-demo-{int(now.timestamp())}", "amount": "1.00" if i < 7 else "950.00",
                "currency": "EUR",
                "channel": "online", "mcc": "5816", "device_id": "dev-demo-new",
            }).json())  # fmt: skip
        results["card_testing_burst_last"] = burst[-1]
        burst_p = [round(b["fraud_probability"], 4) for b in burst]
    return {
        "model": {k: model.get(k) for k in ("name", "version", "family", "feature_set_version")},
        "card_testing_burst_probabilities": burst_p,
        **{
            name: {k: r.get(k) for k in ("fraud_probability", "decision", "feature_source", "latency_ms")}
            for name, r in results.items()
        },
    }


def switch_on_dags() -> dict[str, Any]:
    """PATCH each DAG `is_paused: false` through Airflow's REST API. Airflow's scheduler then
    creates the run of each DAG's latest schedule tick at once (`catchup=False`)."""
    from common.airflow_api import PLATFORM_DAGS, AirflowApi

    dags = {}
    with AirflowApi.connect() as api:
        for dag_id in PLATFORM_DAGS:
            dag = api.set_paused(dag_id, False)
            dags[dag_id] = {
                "on": not dag["is_paused"],
                "schedule": dag["timetable_summary"],
                "description": dag["timetable_description"],
            }
    return {"dags": dags}


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    days: int = typer.Option(75, help="days of simulated history"),
    customers: int = typer.Option(800, help="simulated cardholders"),
    seed: int = typer.Option(0, help="simulator seed (0 = a new one from the clock)"),
    stream_timeout: float = typer.Option(900, help="seconds to wait for Bronze"),
) -> None:
    setup_logging()
    seed = seed or int(time.time()) % 1_000_000
    started = time.monotonic()
    summary: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "stages": {}}

    def stage(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        console.rule(f"[bold cyan]{name}")
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            summary["stages"][name] = {"error": str(exc)}
            summary["failed_stage"] = name
            _write(summary)
            console.print(f"[red]demo stage '{name}' failed:[/] {exc}")
            raise typer.Exit(1) from None
        result["stage_s"] = round(time.monotonic() - t0, 1)
        summary["stages"][name] = result
        console.print_json(data=result)
        return result

    stage("stack", stack_status)
    sim = stage("simulate", lambda: simulate(days, customers, seed))
    prod = stage("produce", lambda: produce(sim["file"]))
    accepted = prod["accepted"]
    stage("stream", lambda: wait_for_bronze(seed, accepted["transaction"], accepted["label"], stream_timeout))
    stage("transform", transform)
    trained = stage("train", train)
    stage("features", write_features)
    stage("serve", lambda: serve(trained, 180))
    stage("schedule", switch_on_dags)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    _write(summary)
    _print_summary(summary)


def _write(summary: dict[str, Any]) -> None:
    write_report("demo", summary)


def _print_summary(summary: dict[str, Any]) -> None:
    st = summary["stages"]
    table = Table(title=f"demo summary ({summary['wall_s']:.0f}s) — var/reports/demo.json")
    table.add_column("stage")
    table.add_column("result")
    stack = st["stack"]
    table.add_row(
        "stack", f"{stack['services']} services ({stack['runtime']}), {stack['total_memory_gib']} GiB"
    )
    table.add_row("simulate", f"{st['simulate']['transactions']:,} transactions, "
                  f"{st['simulate']['labels_arrived']} fraud labels arrived")  # fmt: skip
    table.add_row("stream", f"{st['stream']['transactions']:,} in Bronze after {st['stream']['waited_s']}s")
    tr = st["transform"]
    table.add_row("transform", f"dbt build {tr['dbt_build_s']}s ({tr['result']}); Gold: "
                  f"{tr['fct_transaction_features']:,} training rows, {tr['card_features_latest']:,} cards, "
                  f"{tr['terminal_features_latest']:,} terminals")  # fmt: skip
    t = st["train"]
    metrics = ", ".join(f"{m} AUC {v.get('auc')} AP {v.get('ap')}" for m, v in t["test_folds"].items())
    gates = "passed" if t["gates_passed"] else "FAILED"
    table.add_row(
        "train",
        f"v{t['version']} ({t['champion_family']}), gates {gates}, promoted: {t['promoted']} "
        f"({t['reason']}), @champion v{t['champion_version']}; {metrics}",
    )
    fw = st["features"]
    table.add_row("features", f"online state {fw['namespace']}: {fw['transactions']:,} Gold transactions "
                  f"merged ({fw['transactions_new']:,} new: the online applier had the rest from Kafka), "
                  f"{fw['fraud_labels_applied']:,} fraud labels, in {fw['duration_s']}s")  # fmt: skip
    sv = st["serve"]

    def scored(r: dict[str, Any]) -> str:
        return (f"p={r['fraud_probability']:.4f} → {r['decision']} "
                f"(features {r['feature_source']}, {r['latency_ms']:.1f} ms)")  # fmt: skip

    table.add_row("serve", f"{sv['model']['name']} v{sv['model']['version']} ({sv['model']['family']}): "
                  f"normal payment {scored(sv['normal'])}; "
                  f"card-testing burst, last attempt {scored(sv['card_testing_burst_last'])}")  # fmt: skip
    dags = st["schedule"]["dags"]
    table.add_row("schedule", "Airflow DAGs switched on: " + ", ".join(
        f"{d} {'on' if v['on'] else 'OFF'} ({v['description']}: {v['schedule']})" for d, v in dags.items()
    ))  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    app()
