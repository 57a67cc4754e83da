"""`make bench`: runs the benchmark of each part of the platform, writes var/reports/bench.json.

Each section is a module with ``run(quick: bool = False) -> dict``; ``--section`` runs one and
keeps the other sections of an earlier report. Figures are measured here, never asserted in tests.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import typer

from common.settings import ROOT

REPORT = ROOT / "var" / "reports" / "bench.json"

# section name → module providing run(quick) -> dict
SECTIONS: dict[str, str] = {
    "ml": "ml.bench",
    "producer": "producer.bench",
    "streaming": "streaming.bench",
    "transforms": "common.transforms_bench",
    "serving": "serving.bench",
}

log = logging.getLogger("bench")
app = typer.Typer(add_completion=False, help=__doc__)


def available() -> dict[str, str]:
    """Sections whose module exists in this checkout."""
    out = {}
    for name, module in SECTIONS.items():
        if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
            continue
        try:
            if importlib.util.find_spec(module) is not None:
                out[name] = module
        except ModuleNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


@app.command()
def main(
    section: str = typer.Option(None, help="run only this section"),
    quick: bool = typer.Option(False, help="smaller inputs, for a smoke run"),
    out: Path = typer.Option(REPORT, help="report path"),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sections = available()
    if section is not None and section not in sections:
        known = ", ".join(sections) or "none yet"
        raise typer.BadParameter(f"unknown or unavailable section {section!r} (available: {known})")
    report: dict[str, Any] = json.loads(out.read_text()) if (section and out.exists()) else {}
    report.setdefault("sections", {})
    for name, module in sections.items():
        if section and name != section:
            continue
        log.info("bench section %s (%s)", name, module)
        started = time.time()
        result = importlib.import_module(module).run(quick=quick)
        result["_wall_s"] = round(time.time() - started, 2)
        result["_measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        report["sections"][name] = result
    report["machine"] = machine()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    typer.echo(json.dumps(report["sections"], indent=2))
    typer.echo(f"report: {out}")


if __name__ == "__main__":
    app()
