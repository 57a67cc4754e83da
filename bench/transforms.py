"""``make bench BENCH=transforms``: the dbt Silver + Gold build on Trino, full and incremental.

A scratch Bronze (``bronze_<suffix>``, see bench.scratch_bronze) receives the first 1 000 000
simulated transactions with the labels that had arrived by then; ``dbt build`` (every model and
data test) builds Silver and Gold from nothing: ``full_build_s``. Then the next 10 000
transactions and the labels that arrived meanwhile land in Bronze, and a second ``dbt build``
processes only them (incremental models merge on their keys): ``incremental_build_s``.

A ``dbt build`` with nothing new runs beside them in the same run (``noop_build_s``): the fixed
cost of dbt itself, the views and the tests, which bounds how fast an incremental run can be.
Figures only, nothing asserted; the scratch schemas and files are removed afterwards.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bench import scratch_bronze
from common.dbt import PROJECT, run_dbt, run_results

log = logging.getLogger(__name__)

FULL_ROWS: Final = 1_000_000
INCREMENT_ROWS: Final = 10_000
GOAL_FULL_S: Final = 180
GOAL_INCREMENTAL_S: Final = 60


def _slowest_models(run_id: str, top: int = 5) -> dict[str, float]:
    models = [r for r in run_results(run_id) if r["unique_id"].startswith("model.")]
    models.sort(key=lambda r: r["execution_time"], reverse=True)
    return {r["unique_id"].rsplit(".", 1)[-1]: round(r["execution_time"], 2) for r in models[:top]}


def _batches(full_rows: int, increment_rows: int) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(transactions, labels) of the first ``full_rows`` events and of the next ``increment_rows``.

    Each batch carries the labels that arrived up to its last event: a chargeback filed later lands
    with a later batch, as in production.
    """
    from producer.simulator import SimulatorConfig, labels_of, simulate, transactions_of

    customers = 5_000
    # ~1.6 transactions per customer-day; 10 % headroom
    days = max(int((full_rows + increment_rows) / (customers * 1.6) * 1.1), 7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    table = simulate(SimulatorConfig(seed=11, days=days, start=start, n_customers=customers))
    txn = transactions_of(table).to_pandas().sort_values("event_time", kind="stable")
    lab = labels_of(table).to_pandas()
    if len(txn) < full_rows + increment_rows:
        raise RuntimeError(f"the simulation gave {len(txn)} rows, fewer than {full_rows + increment_rows}")
    txn1 = txn.iloc[:full_rows]
    txn2 = txn.iloc[full_rows : full_rows + increment_rows]
    cut1, cut2 = txn1["event_time"].max(), txn2["event_time"].max()
    seen1 = lab["transaction_id"].isin(txn1["transaction_id"])
    seen2 = seen1 | lab["transaction_id"].isin(txn2["transaction_id"])
    lab1 = lab[seen1 & (lab["label_time"] <= cut1)]
    lab2 = lab[seen2 & (lab["label_time"] > cut1) & (lab["label_time"] <= cut2)]
    return (txn1, lab1), (txn2, lab2)


def run(quick: bool = False) -> dict[str, Any]:
    from streaming.session import build_spark

    full_rows = 100_000 if quick else FULL_ROWS
    suffix = f"bench{os.getpid()}"
    variables = {"bronze_schema": f"bronze_{suffix}", "schema_suffix": suffix}
    (txn1, lab1), (txn2, lab2) = _batches(full_rows, INCREMENT_ROWS)

    out: dict[str, Any] = {
        "full_rows": len(txn1),
        "full_labels": len(lab1),
        "increment_rows": len(txn2),
        "increment_labels": len(lab2),
        "dbt_project": str(PROJECT.name),
    }
    spark = build_spark("fraud-bench-transforms")
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    try:
        started = time.perf_counter()
        scratch_bronze.write_bronze(spark, suffix, txn1, lab1, datetime.now(UTC) - timedelta(hours=1))
        scratch_bronze.register_bronze(suffix)
        out["bronze_load_s"] = round(time.perf_counter() - started, 1)
        log.info("bronze_%s: %d transactions, %d labels", suffix, len(txn1), len(lab1))

        full = run_dbt(["build"], variables, run_id=suffix)
        out["full_build_s"] = round(full.seconds, 1)
        out["full_statuses"] = full.statuses
        out["full_slowest_models_s"] = _slowest_models(suffix)

        noop = run_dbt(["build"], variables, run_id=suffix)
        out["noop_build_s"] = round(noop.seconds, 1)

        scratch_bronze.write_bronze(spark, suffix, txn2, lab2, datetime.now(UTC))
        incremental = run_dbt(["build"], variables, run_id=suffix)
        out["incremental_build_s"] = round(incremental.seconds, 1)
        out["incremental_statuses"] = incremental.statuses
        out["incremental_slowest_models_s"] = _slowest_models(suffix)
    finally:
        spark.stop()
        scratch_bronze.drop_schemas(suffix)
        out["scratch_objects_removed"] = scratch_bronze.remove_bronze_files(suffix)

    out["full_rows_per_s"] = round(len(txn1) / out["full_build_s"], 1)
    out["incremental_over_noop"] = round(out["incremental_build_s"] / out["noop_build_s"], 2)
    out["goal_full_s"] = GOAL_FULL_S
    out["goal_incremental_s"] = GOAL_INCREMENTAL_S
    out["meets_goal"] = (
        out["full_build_s"] <= GOAL_FULL_S and out["incremental_build_s"] <= GOAL_INCREMENTAL_S
    )
    out["cpus"] = os.cpu_count()
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    return out
