"""
### fraud_training

Weekly (and on demand): Gold → model → registry.

1. `build_training_set` — `fct_transaction_features` from Gold (Trino) to a Parquet snapshot.
2. `train_model` — LightGBM and its baselines under the time-ordered protocol, logged to MLflow
   (params, metrics, data fingerprint, FEATURE_SET_VERSION, signature) and registered.
3. `evaluate_model` — behaviour and quality gates on the new version.
4. `register_challenger` — alias `@challenger` only if every gate passed.
5. `promote_champion` — alias `@champion` only if the challenger beats the current champion on
   the same held-out period (serving picks the new champion up by itself).

Platform code runs in the platform virtualenv (ExternalPythonOperator).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from _common import DEFAULT_ARGS, PLATFORM_PYTHON
from airflow.sdk import dag, task


@dag(
    dag_id="fraud_training",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retries": 1},
    tags=["fraud", "ml", "training", "mlflow"],
    doc_md=__doc__,
)
def fraud_training() -> None:
    @task.external_python(task_id="build_training_set", python=PLATFORM_PYTHON)
    def build_training_set() -> str:
        from ml.tasks import build_training_set as run

        return run()

    @task.external_python(task_id="train_model", python=PLATFORM_PYTHON)
    def train_model(training_set: str) -> dict[str, Any]:
        from ml.tasks import train_model as run

        return run(training_set)

    @task.external_python(task_id="evaluate_model", python=PLATFORM_PYTHON)
    def evaluate_model(trained: dict[str, Any]) -> dict[str, Any]:
        from ml.tasks import evaluate_model as run

        return run(trained)

    @task.external_python(task_id="register_challenger", python=PLATFORM_PYTHON)
    def register_challenger(evaluated: dict[str, Any]) -> dict[str, Any]:
        from ml.tasks import register_challenger as run

        return run(evaluated)

    @task.external_python(task_id="promote_champion", python=PLATFORM_PYTHON)
    def promote_champion(challenger: dict[str, Any]) -> dict[str, Any]:
        from ml.tasks import promote_champion as run

        return run(challenger)

    promote_champion(register_challenger(evaluate_model(train_model(build_training_set()))))


fraud_training()
