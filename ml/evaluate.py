"""``make evaluate DATA=path`` (``python -m ml evaluate``): every model on an external labelled file.

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

import logging
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

import features
from ml.data import load_labelled
from ml.pit import build_feature_frame, feature_matrix
from ml.protocol import ProtocolConfig, run_protocol
from ml.train import data_fingerprint, train

log = logging.getLogger(__name__)

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
