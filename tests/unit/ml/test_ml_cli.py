"""`python -m ml evaluate` on an external file: bad input is refused naming column and rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from ml.cli import app

GOOD = {
    "transaction_id": ["a", "b", "c"],
    "event_time": ["2025-01-01 10:00:00", "2025-01-01 11:00:00", "2025-01-02 09:30:00"],
    "card_id": ["c1", "c1", "c2"],
    "terminal_id": ["t1", "t2", "t1"],
    "amount": ["10.5", "20", "7.25"],
    "is_fraud": ["0", "1", "0"],
}


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["evaluate", *args])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"drop": "terminal_id"}, "'terminal_id': required column is missing"),
        ({"event_time": ["2025-01-01 10:00:00", "soon", "2025-02-30 09:00:00"]}, "'event_time'"),
        ({"is_fraud": ["0", "2", "-1"]}, "'is_fraud': label must be 0 or 1 at 2 row(s): 1, 2"),
    ],
)
def test_bad_input_fails_with_column_and_rows(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    df = pd.DataFrame(GOOD)
    df = df.drop(columns=[change["drop"]]) if "drop" in change else df.assign(**change)
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "report.json"
    result = run("--data", str(path), "--out", str(out))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert expected in text
    if "event_time" in change:
        assert "at 2 row(s): 1, 2" in text
    assert not out.exists()


def test_too_short_history_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    pd.DataFrame(GOOD).to_csv(path, index=False)
    result = run("--data", str(path), "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 2
    assert "not enough history" in result.output


def test_external_file_with_required_columns_only(
    tmp_path: Path, handbook_generate: Callable[..., Any]
) -> None:
    df = handbook_generate(n_customers=800, n_terminals=1600, days=70, seed=1)
    assert list(df.columns) == [
        "transaction_id",
        "event_time",
        "card_id",
        "terminal_id",
        "amount",
        "is_fraud",
    ]
    path = tmp_path / "handbook.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "report.json"
    result = run(
        "--data", str(path), "--out", str(out),
        "--test-folds", "2", "--val-folds", "1", "--burn-in-days", "14",
        "--models", "lightgbm,random_forest,rules,random",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["champion"] in report["models"]
    assert report["data"]["rows"] == len(df)  # nothing dropped
    assert report["data"]["optional_columns_present"] == []
    for entry in report["models"].values():
        for metric in ("auc", "ap", "cp_at_100", "recall_at_1pct_fpr", "fraud_amount_caught", "brier"):
            assert set(entry[metric]) == {"mean", "std"}
    auc = {m: e["auc"]["mean"] for m, e in report["models"].items()}
    ap = {m: e["ap"]["mean"] for m, e in report["models"].items()}
    assert auc["lightgbm"] > 0.75 and auc["random_forest"] > 0.75
    assert ap["lightgbm"] > 5 * ap["random"] and ap["lightgbm"] > ap["rules"]
