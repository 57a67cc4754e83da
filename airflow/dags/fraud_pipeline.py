"""
### fraud_pipeline

Every 15 minutes (and on demand): Bronze → Silver → Gold → Redis.

1. `wait_for_fresh_bronze` — `dbt source freshness` on the Bronze tables until they are fresh.
2. `build_silver` — `dbt build` of the staging and intermediate models (with their tests).
3. `build_gold` — `dbt build` of the marts: training features, card/terminal snapshots, metrics, risk.
4. `write_online_features` — Gold's transactions merged into the Redis online state (ml.feature_writer).
5. Once a day (the run in the 02:00 UTC slot), `maintain_bronze` makes sure Bronze was compacted
   and vacuumed in the last 24 h (by the streaming service, or else here).

dbt runs in its own virtualenv; platform code runs in the platform virtualenv.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from _common import DEFAULT_ARGS, PLATFORM_PYTHON, dbt_build, dbt_command
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.bash import BashSensor
from airflow.sdk import dag, task

MAINTENANCE_HOUR_UTC = 2


@dag(
    dag_id="fraud_pipeline",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["fraud", "transforms", "dbt", "features"],
    doc_md=__doc__,
)
def fraud_pipeline() -> None:
    wait_for_fresh_bronze = BashSensor(
        task_id="wait_for_fresh_bronze",
        bash_command=dbt_command("source freshness --select source:bronze"),
        poke_interval=60,
        timeout=15 * 60,
        mode="reschedule",
    )
    build_silver = BashOperator(task_id="build_silver", bash_command=dbt_build("staging intermediate"))
    build_gold = BashOperator(task_id="build_gold", bash_command=dbt_build("marts"))

    @task.external_python(task_id="write_online_features", python=PLATFORM_PYTHON)
    def write_online_features() -> dict[str, Any]:
        from ml.feature_writer import write_online_features as run

        return run()

    @task.short_circuit(task_id="is_maintenance_window")
    def is_maintenance_window(data_interval_end: datetime | None = None) -> bool:
        return (
            data_interval_end is not None
            and data_interval_end.hour == MAINTENANCE_HOUR_UTC
            and (data_interval_end.minute < 15)
        )

    @task.external_python(task_id="maintain_bronze", python=PLATFORM_PYTHON)
    def maintain_bronze() -> dict[str, Any]:
        from streaming.maintenance import maintain_bronze as run

        return run()

    wait_for_fresh_bronze >> build_silver >> build_gold
    build_gold >> write_online_features()
    build_gold >> is_maintenance_window() >> maintain_bronze()


fraud_pipeline()
