"""Grafana dashboards as code, checked without Grafana.

The dashboards are JSON files under ``monitoring/grafana/dashboards/`` (provisioned by Grafana in
Docker Compose). This module reads them and runs their queries against Prometheus itself:
:func:`queries` yields every panel target's PromQL, :func:`substitute` replaces the Grafana
variables Prometheus does not know (``$__rate_interval``, ``$__interval``, ``$__range``), and
:func:`series_count` runs one query over the last minutes, as a panel would. Used by
``tests/unit/common/test_grafana_dashboards.py`` (structure) and ``tests/e2e/test_dashboards.py``
(every panel has data on the live stack).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from common.settings import ROOT

DASHBOARDS_DIR: Final = ROOT / "monitoring" / "grafana" / "dashboards"
# $__rate_interval is max(4 x scrape interval, $__interval + scrape interval): 1m at a 15s scrape.
RATE_INTERVAL: Final = "1m"
STEP_SECONDS: Final = 60
_VARIABLE = re.compile(r"\$(?:\{(__\w+)\}|(__\w+))")

Dashboard = dict[str, Any]
Panel = dict[str, Any]


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel: where it is shown and its PromQL as written in the dashboard."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref_id}]: {self.expr}"


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Dashboard]:
    """Every ``*.json`` dashboard of ``directory``, sorted by file name."""
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def panels(dashboard: Mapping[str, Any]) -> Iterator[Panel]:
    """The dashboard's panels, those nested in (collapsed) rows included; rows themselves not."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(dashboards: Iterable[Mapping[str, Any]]) -> Iterator[PanelQuery]:
    """(dashboard, panel, refId, expr) of every target of every panel."""
    for dashboard in dashboards:
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield PanelQuery(
                    dashboard=str(dashboard.get("title", "")),
                    panel=str(panel.get("title", "")),
                    ref_id=str(target.get("refId", "")),
                    expr=str(target.get("expr", "")),
                )


def substitute(expr: str, *, range_: str = "1h", interval: str = "30s") -> str:
    """``expr`` with Grafana's built-in variables replaced as Grafana would for a ``range_`` window.

    Unknown ``$__`` variables raise (a typo would otherwise reach Prometheus as a parse error far
    from its cause); other ``$`` text (``label_replace``'s ``$1``) is left alone, as Grafana does.
    """
    seconds = _seconds(range_)
    values = {
        "__rate_interval": RATE_INTERVAL,
        "__interval": interval,
        "__interval_ms": str(_seconds(interval) * 1000),
        "__range": range_,
        "__range_s": str(seconds),
        "__range_ms": str(seconds * 1000),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def series_count(
    prometheus_url: str,
    expr: str,
    minutes: int = 60,
    *,
    client: httpx.Client | None = None,
    now: float | None = None,
) -> int:
    """Number of series ``expr`` (Grafana variables substituted) returns over the last ``minutes``.

    Raises :class:`ValueError` when Prometheus rejects the query (a parse or execution error).
    """
    end = time.time() if now is None else now
    params = {
        "query": substitute(expr, range_=f"{minutes}m"),
        "start": f"{end - minutes * 60:.3f}",
        "end": f"{end:.3f}",
        "step": str(STEP_SECONDS),
    }
    url = f"{prometheus_url.rstrip('/')}/api/v1/query_range"
    if client is None:
        with httpx.Client(timeout=30) as own:
            response = own.get(url, params=params)
    else:
        response = client.get(url, params=params)
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(f"{body.get('errorType')}: {body.get('error')} (query {params['query']!r})")
    return len(body["data"]["result"])


def _seconds(duration: str) -> int:
    """``30s``, ``5m``, ``1h``, ``1d`` → seconds (the single-unit durations used here)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)([smhd])", duration)
    if match is None:
        raise ValueError(f"unsupported duration {duration!r}")
    return int(match.group(1)) * units[match.group(2)]
