"""Run reports: one JSON file per command under ``var/reports/`` (``<name>.json``).

Every command that produces figures writes them here with :func:`write_report` (the demo, the
bench, the producer's runs, the stream's maintenance and DLQ summary, the feature writer, the
evaluation), so a reader finds them in one place and in one format: indented JSON, times and
decimals as strings, NaN and infinities as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from common.settings import ROOT

REPORT_DIR: Final = ROOT / "var" / "reports"


def report_path(name: str) -> Path:
    """``var/reports/<name>.json``."""
    return REPORT_DIR / f"{name}.json"


def json_safe(obj: Any) -> Any:
    """NaN / inf → None, recursively (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def to_json(data: Any) -> str:
    return json.dumps(json_safe(data), indent=2, default=str) + "\n"


def write_report(target: str | Path, data: Any) -> Path:
    """Write ``data`` to ``var/reports/<target>.json`` (a name) or to ``target`` (a path)."""
    path = report_path(target) if isinstance(target, str) else target
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(data))
    return path


def read_report(target: str | Path) -> dict[str, Any] | None:
    """The report written under that name or path, None when there is none."""
    path = report_path(target) if isinstance(target, str) else target
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
