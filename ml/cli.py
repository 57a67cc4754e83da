"""``python -m ml``: training, evaluation and the online features, from the command line.

    python -m ml train --data FILE [--register NAME]      # protocol + deployable model (+ MLflow)
    python -m ml evaluate --data FILE [--out REPORT]      # every model on a labelled file
    python -m ml run-training                            # the fraud_training DAG in one process
    python -m ml write-features [--data FILE]            # Gold (or a file) → the Redis online state
    python -m ml apply-online                            # Kafka → the online state (a service)
    python -m ml rebuild-online                          # after Redis lost it: Gold, then Kafka

Exit codes: 0 done · 1 the feature writer found nothing to seed · 2 bad input (the message names the
column and the rows, or the option).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from common.logs import setup_logging
from common.reports import json_safe, report_path, write_report

log = logging.getLogger("ml")
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)
EVALUATE_REPORT: Final = report_path("evaluate")
FEATURE_WRITER_REPORT: Final = report_path("feature_writer")
REBUILD_REPORT: Final = report_path("rebuild_online")

# the time-ordered protocol's options, shared by train and evaluate (ml/protocol.py)
Data = Annotated[Path, typer.Option(..., exists=True, help="labelled transactions (.parquet or .csv)")]
TrainDays = Annotated[int, typer.Option(min=1, help="days of each training window")]
GapDays = Annotated[int, typer.Option(min=0, help="days between training and test (labels arrive)")]
TestDays = Annotated[int, typer.Option(min=1, help="days of each test window")]
TestFolds = Annotated[int, typer.Option(min=1, help="test folds, the most recent last")]
ValFolds = Annotated[int, typer.Option(min=1, help="validation folds per test fold")]
BurnInDays = Annotated[int, typer.Option(min=0, help="days of history before the first window")]
LabelDelayDays = Annotated[float, typer.Option(min=0, help="assumed label delay when label_time is absent")]
Seed = Annotated[int, typer.Option(help="random seed")]


#: CLI option → ProtocolConfig field, for the options train and evaluate share
PROTOCOL_OPTIONS: Final = {
    "train_days": "train_days",
    "gap_days": "gap_days",
    "test_days": "test_days",
    "test_folds": "n_test_folds",
    "val_folds": "n_val_folds",
    "burn_in_days": "burn_in_days",
    "seed": "seed",
}


def _protocol(options: dict[str, Any], **extra: Any) -> Any:
    """The ProtocolConfig of a command's shared options (its ``locals()``) and its own ``extra``."""
    from ml.protocol import ProtocolConfig

    return ProtocolConfig(**{field: options[name] for name, field in PROTOCOL_OPTIONS.items()}, **extra)


def _fail(exc: Exception) -> typer.Exit:
    """Bad input: the message on stderr, exit code 2."""
    Console(stderr=True).print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(2)


@app.callback()
def _main() -> None:
    setup_logging()


@app.command()
def train(
    data: Data,
    register: str | None = typer.Option(None, help="register the model under this name"),
    experiment: str = typer.Option("fraud-detection", help="MLflow experiment"),
    tracking_uri: str | None = typer.Option(None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"),
    train_days: TrainDays = 7,
    gap_days: GapDays = 7,
    test_days: TestDays = 7,
    test_folds: TestFolds = 4,
    val_folds: ValFolds = 2,
    burn_in_days: BurnInDays = 30,
    label_delay_days: LabelDelayDays = 7.0,
    seed: Seed = 42,
) -> None:
    """Train on a labelled file; print the evaluation summary as JSON."""
    from ml.train import prepare
    from ml.train import train as run_training

    try:
        cfg = _protocol(locals())
        frame = prepare(data, assumed_label_delay=timedelta(days=label_delay_days))
        result = run_training(
            frame, cfg, tracking_uri=tracking_uri, experiment=experiment, register_as=register
        )
    except ValueError as exc:  # DataValidationError included: names the column and rows
        raise _fail(exc) from exc
    summary = {
        "champion": result.champion,
        "run_id": result.run_id,
        "model_uri": result.model_uri,
        "registered_version": result.registered_version,
        "thresholds": result.model.thresholds,
        "seconds": result.seconds,
        "models": {
            m: {k: v for k, v in e.items() if k != "folds"} for m, e in result.evaluation["models"].items()
        },
    }
    typer.echo(json.dumps(json_safe(summary), indent=2, default=str))


@app.command()
def evaluate(
    data: Data,
    out: Path = typer.Option(EVALUATE_REPORT, help="JSON report path"),
    train_days: TrainDays = 7,
    gap_days: GapDays = 7,
    test_days: TestDays = 7,
    test_folds: TestFolds = 4,
    val_folds: ValFolds = 2,
    burn_in_days: BurnInDays = 30,
    label_delay_days: LabelDelayDays = 7.0,
    review_budget: float = typer.Option(0.01, help="share of transactions alerted (review + decline)"),
    models: str | None = typer.Option(None, help="comma-separated model families (default: all)"),
    seed: Seed = 42,
    mlflow: bool = typer.Option(False, "--mlflow", help="also log to MLflow ($MLFLOW_TRACKING_URI)"),
) -> None:
    """Evaluate LightGBM against the baselines on DATA under the time-ordered protocol."""
    from ml.evaluate import evaluate as run_evaluation
    from ml.evaluate import render
    from ml.protocol import DEFAULT_MODELS

    families = tuple(m.strip() for m in (models or ",".join(DEFAULT_MODELS)).split(",") if m.strip())
    try:
        budgets = {"review_budget": review_budget, "decline_budget": min(review_budget, 0.001)}
        cfg = _protocol(locals(), models=families, **budgets)
        report = run_evaluation(data, cfg, label_delay=timedelta(days=label_delay_days), log_mlflow=mlflow)
    except ValueError as exc:  # DataValidationError included: names the column and rows
        raise _fail(exc) from exc
    write_report(out, report)
    render(report, Console())
    typer.echo(f"report written to {out}")


@app.command("run-training")
def run_training_dag() -> None:
    """The fraud_training DAG's steps in one process: Gold → model → gates → @challenger → @champion."""
    from ml.tasks import run_all

    typer.echo(json.dumps(run_all(), indent=2, default=str))


@app.command("write-features")
def write_features(
    data: Path | None = typer.Option(None, exists=True, help="seed from this labelled file instead of Gold"),
    table: str | None = typer.Option(None, help="[catalog.]schema.table (FEATURE_WRITER_SOURCE_TABLE)"),
    report: Path = typer.Option(FEATURE_WRITER_REPORT, help="JSON report path"),
) -> None:
    """Gold transactions (or a file) → the Redis online state, merged (what Airflow runs)."""
    from ml.feature_writer import FeatureWriterError, seed_frame, write_online_features

    try:
        if data is None:
            result: dict[str, Any] = write_online_features(table=table)
        else:
            from ml.data import load_labelled

            result = seed_frame(load_labelled(data))
    except FeatureWriterError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from exc
    log.info("report: %s", write_report(report, result))
    _push_freshness(result)


def _push_freshness(result: dict[str, Any]) -> None:
    """The merge's time and size to the Pushgateway: the feature freshness alert reads them."""
    import time

    from common.pushgateway import push_gauges

    rows = result.get("transactions", 0)
    push_gauges(
        "feature_writer",
        "write-features",
        {
            "fraud_feature_writer_last_success_timestamp_seconds": (
                "When Gold (or a file) was last merged into the online state",
                time.time(),
            ),
            "fraud_feature_writer_transactions": ("Transactions the last merge wrote", float(rows or 0)),
        },
    )


@app.command("apply-online")
def apply_online() -> None:
    """transactions.raw + transactions.labels → the online state (the online-applier service)."""
    from ml.online_applier import run

    run()


@app.command("rebuild-online")
def rebuild_online(
    replay_s: int | None = typer.Option(
        None, help="seconds of Kafka to re-apply (ONLINE_APPLIER_REBUILD_REPLAY_S)"
    ),
    report: Path = typer.Option(REBUILD_REPORT, help="JSON report path"),
) -> None:
    """After Redis lost its data: seed the online state from Gold, then replay Kafka."""
    from ml.feature_writer import FeatureWriterError, rebuild

    try:
        result = rebuild(replay_s=replay_s)
    except FeatureWriterError as exc:
        log.error("%s", exc)
        raise typer.Exit(1) from exc
    log.info("report: %s", write_report(report, result))
