"""One way to write a report and to set up logging, for every command."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from common.logs import setup_logging
from common.reports import json_safe, read_report, write_report


def test_reports_are_strict_json_with_times_and_decimals_as_text(tmp_path: Path) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    data = {
        "nan": math.nan,
        "inf": [1.0, math.inf],
        "at": datetime(2026, 1, 1, tzinfo=UTC),
        "x": Decimal("1.10"),
    }
    path = write_report(tmp_path / "r.json", data)
    assert json.loads(path.read_text()) == {
        "nan": None,
        "inf": [1.0, None],
        "at": "2026-01-01 00:00:00+00:00",
        "x": "1.10",
    }
    assert read_report(path) == json.loads(path.read_text())
    assert read_report(tmp_path / "absent.json") is None
    assert json_safe({"a": (math.nan,)}) == {"a": [None]}


def test_logging_follows_log_level_and_quiets_chatty_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    try:
        assert setup_logging(rich=False) == "WARNING"
        assert logging.getLogger().level == logging.WARNING
        assert setup_logging("debug", rich=False) == "DEBUG"
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        setup_logging("INFO", rich=False)
