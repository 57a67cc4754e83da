"""`make demo`: the platform end to end on the native local stack, then a summary.

Runs after `make up-local`. Each stage the platform has so far runs in order and reports what
it did; the summary is printed and written to var/reports/demo.json.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from common.settings import ROOT

console = Console()
REPORT = ROOT / "var" / "reports" / "demo.json"


def stack_status() -> dict[str, Any]:
    subprocess.run([sys.executable, str(ROOT / "infra/local/stack.py"), "status"], check=True)
    data: dict[str, Any] = json.loads((ROOT / "var/reports/status.json").read_text())
    return data


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.time()
    summary: dict[str, Any] = {"stages": {}}
    summary["stages"]["stack"] = stack_status()
    summary["wall_s"] = round(time.time() - started, 1)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n")
    table = Table(title="demo summary")
    table.add_column("stage")
    table.add_column("result")
    svc = summary["stages"]["stack"]["services"]
    table.add_row(
        "stack", f"{sum(1 for s in svc if s['health'] in ('ready', 'done'))}/{len(svc)} services ready"
    )
    console.print(table)
    console.print(f"report: {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
