"""``make bench`` (``python -m bench``): each part's benchmark → ``var/reports/bench.json`` and the
generated ``docs/benchmarks.md`` (plus the figures block of the README).

Each section is a module of this package with ``run(quick: bool = False) -> dict``; ``--section``
runs one and keeps the other sections of the earlier report. A whole run starts one process per
section, so no section measures what another left behind (a JVM, threads, caches). Figures are
measured here, never asserted in tests; each section records the machine's load beside them.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

import typer

from bench import render
from common.logs import setup_logging
from common.reports import read_report, report_path, write_report

log = logging.getLogger("bench")

#: section name → module providing run(quick) -> dict, in the order they run
SECTIONS: Final[dict[str, str]] = {
    "ml": "bench.ml",
    "producer": "bench.producer",
    "streaming": "bench.streaming",
    "transforms": "bench.transforms",
    "serving": "bench.serving",
    "online_state": "bench.online_state",
}

REPORT: Final = report_path("bench")
app = typer.Typer(add_completion=False, help=__doc__)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def run_section(name: str, quick: bool, report: dict[str, Any]) -> dict[str, Any]:
    """Run one section into ``report["sections"]``, with its wall time and date."""
    log.info("bench section %s (%s)", name, SECTIONS[name])
    started = time.time()
    result: dict[str, Any] = importlib.import_module(SECTIONS[name]).run(quick=quick)
    result["_wall_s"] = round(time.time() - started, 2)
    result["_measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["_quick"] = quick
    report.setdefault("sections", {})[name] = result
    report["machine"] = machine()
    return report


@app.command()
def main(
    section: str | None = typer.Option(None, help=f"run only this section ({', '.join(SECTIONS)})"),
    quick: bool = typer.Option(False, help="smaller inputs, for a smoke run"),
    out: Path = typer.Option(REPORT, help="report path"),
    docs_only: bool = typer.Option(False, help="only render docs/benchmarks.md from the report"),
) -> None:
    setup_logging()
    if section is not None and section not in SECTIONS:
        raise typer.BadParameter(f"unknown section {section!r} (known: {', '.join(SECTIONS)})")
    if section is None and not docs_only:  # each section in a process of its own
        failed = [name for name in SECTIONS if not _run_in_child(name, quick, out)]
        if failed:
            log.error("sections that failed: %s (the others are in %s)", ", ".join(failed), out)
            raise typer.Exit(1)
        return
    report: dict[str, Any] = read_report(out) or {}
    if section is not None:
        report = run_section(section, quick, report)
        write_report(out, report)
        log.info("report: %s", out)
    if not report.get("sections"):
        raise typer.BadParameter(f"{out} holds no section: run `make bench` first")
    for path in render.write_docs(report):
        log.info("rendered %s", path)


def _run_in_child(name: str, quick: bool, out: Path) -> bool:
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--section",
        name,
        "--out",
        str(out),
        *(["--quick"] if quick else []),
    ]
    return subprocess.run(cmd, check=False).returncode == 0
