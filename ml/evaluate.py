"""``make evaluate DATA=path``: train and evaluate every model on an external labelled file.

Input: Parquet or CSV with ``transaction_id, event_time, card_id, terminal_id, amount, is_fraud``
(any of ``customer_id, merchant_name, currency, mcc, channel, device_id, latitude, longitude,
country, fraud_scenario, label_time`` optional). Without ``label_time`` frauds are assumed labelled
``--label-delay-days`` after the transaction. Bad input stops with exit code 2 and a message naming
the column and the rows.

Output (``--out``, default ``var/reports/evaluate.json``)::

    {"champion": NAME,
     "models": {NAME: {"auc": {"mean": x, "std": x}, "ap": {...}, "cp_at_100": {...},
                       "recall_at_1pct_fpr": {...}, "fraud_amount_caught": {...}, "brier": {...},
                       "alert_rate": {...}, "alert_precision": {...}, "validation_ap": {...},
                       "folds": [...]}},
     "protocol": {...}, "data": {...}, "feature_set_version": "...", "seconds": {...}}

With ``--mlflow`` (and ``MLFLOW_TRACKING_URI``) the run, including the deployable champion, is also
logged to MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import typer
from rich.console import Console
from rich.table import Table

import features
from ml.data import DataValidationError, load_labelled
from ml.pit import build_feature_frame, feature_matrix
from ml.protocol import DEFAULT_MODELS, ProtocolConfig, run_protocol
from ml.train import data_fingerprint, json_safe, train

log = logging.getLogger(__name__)

ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_OUT: Final = ROOT / "var" / "reports" / "evaluate.json"
TABLE_METRICS: Final = ("auc", "ap", "cp_at_100", "recall_at_1pct_fpr", "fraud_amount_caught", "brier")


def evaluate(
    path: Path,
    cfg: ProtocolConfig,
    *,
    label_delay: timedelta = timedelta(days=7),
    log_mlflow: bool = False,
) -> dict[str, Any]:
    """Validate, build point-in-time features, run the protocol; the report as a dict."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data = load_labelled(path, assumed_label_delay=label_delay)
    seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = build_feature_frame(data)
    seconds["features"] = time.perf_counter() - t0
    if log_mlflow:
        result = train(frame, cfg)
        report = dict(result.evaluation)
        report["mlflow"] = {"run_id": result.run_id, "model_uri": result.model_uri}
        seconds.update({f"train_{k}": v for k, v in result.seconds.items()})
    else:
        t0 = time.perf_counter()
        report = run_protocol(frame, feature_matrix(frame), cfg).summary()
        seconds["protocol"] = time.perf_counter() - t0
    report["data"] = {
        **data_fingerprint(frame),
        "source": str(path),
        "assumed_label_delay_days": label_delay.days,
    }
    optional = ("channel", "mcc", "device_id", "latitude", "longitude", "country", "currency")
    report["data"]["optional_columns_present"] = [c for c in optional if data[c].notna().any()]
    report["feature_set_version"] = features.FEATURE_SET_VERSION
    report["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return report


def _fmt(entry: dict[str, float]) -> str:
    mean, std = entry["mean"], entry["std"]
    return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"test folds: mean ± std (champion: {report['champion']})")
    table.add_column("model")
    for m in TABLE_METRICS:
        table.add_column(m, justify="right")
    for name, entry in report["models"].items():
        table.add_row(name, *(_fmt(entry[m]) for m in TABLE_METRICS))
    console.print(table)


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def cli(
    data: Path = typer.Option(
        ..., exists=True, dir_okay=True, help="labelled transactions (.parquet or .csv)"
    ),
    out: Path = typer.Option(DEFAULT_OUT, help="JSON report path"),
    train_days: int = typer.Option(7, min=1),
    gap_days: int = typer.Option(7, min=0),
    test_days: int = typer.Option(7, min=1),
    test_folds: int = typer.Option(4, min=1),
    val_folds: int = typer.Option(2, min=1),
    burn_in_days: int = typer.Option(30, min=0),
    label_delay_days: int = typer.Option(7, min=0, help="assumed label delay when label_time is absent"),
    review_budget: float = typer.Option(0.01, help="share of transactions alerted (review + decline)"),
    models: str = typer.Option(",".join(DEFAULT_MODELS), help="comma-separated model families"),
    seed: int = typer.Option(42),
    mlflow: bool = typer.Option(False, "--mlflow", help="also log to MLflow ($MLFLOW_TRACKING_URI)"),
) -> None:
    """Evaluate LightGBM against the baselines on DATA under the time-ordered protocol."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    try:
        cfg = ProtocolConfig(
            train_days=train_days,
            gap_days=gap_days,
            test_days=test_days,
            n_test_folds=test_folds,
            n_val_folds=val_folds,
            burn_in_days=burn_in_days,
            review_budget=review_budget,
            decline_budget=min(review_budget, 0.001),
            seed=seed,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
        )
        report = evaluate(data, cfg, label_delay=timedelta(days=label_delay_days), log_mlflow=mlflow)
    except DataValidationError as exc:
        console.print(f"[red]error:[/red] {data}: {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(report), indent=2, default=str))
    render(report, Console())
    typer.echo(f"report written to {out}")


if __name__ == "__main__":  # pragma: no cover
    app()
