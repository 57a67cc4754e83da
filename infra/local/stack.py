"""The native local stack: start, stop and inspect every service as a plain process.

    python infra/local/stack.py up | down | status | clean | restart <service> | stop <service>

`up` checks what the stack needs before starting anything (installed artifacts, JDKs, free
ports), starts process-compose detached, and waits until every service is ready. If a service
fails or never becomes ready, it names the service, the cause and the log to read, then stops
everything it started: nothing is left half-started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import typer
import yaml
from preflight import PC_BIN, ROOT, VAR, StackError, load_env, preflight, urls
from rich.console import Console
from rich.live import Live
from rich.table import Table

from common.reports import write_report as write_json

PC_FILE = ROOT / "infra" / "local" / "process-compose.yaml"
SOCKET = VAR / "run" / "process-compose.sock"
REPORTS = VAR / "reports"
LOGS = VAR / "log"

console = Console(width=None if sys.stdout.isatty() else 132)
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


# --------------------------------------------------------------------------------------------
# process-compose


def pc(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(PC_BIN), *args, "-U", "-u", str(SOCKET), "-L", str(LOGS / "process-compose-client.log")]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=check, timeout=60)


def running() -> bool:
    if not SOCKET.exists():
        return False
    return pc("project", "state", check=False).returncode == 0


def processes() -> list[dict[str, Any]]:
    out = pc("process", "list", "-o", "json").stdout
    data = json.loads(out) if out.strip() else []
    return list(data)


def declared_processes() -> dict[str, dict[str, Any]]:
    procs: dict[str, dict[str, Any]] = yaml.safe_load(PC_FILE.read_text())["processes"]
    return procs


def is_oneshot(spec: dict[str, Any]) -> bool:
    return bool(spec.get("availability", {}).get("restart") == "no")


def log_tail(name: str, lines: int = 12) -> str:
    path = LOGS / f"{name}.log"
    if not path.exists():
        return "    (no log yet)"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line[:200]}" for line in text)


def failure(name: str, cause: str) -> StackError:
    return StackError(
        f"service '{name}' failed: {cause}\n"
        f"  log: {LOGS / (name + '.log')} (last lines below)\n{log_tail(name)}"
    )


def check_progress(
    procs: list[dict[str, Any]], specs: dict[str, dict[str, Any]]
) -> tuple[set[str], list[str]]:
    """Returns (ready names, pending names); raises StackError on a failed process."""
    ready, pending = set(), []
    for p in procs:
        name, status = p["name"], p.get("status", "")
        spec = specs.get(name, {})
        if is_oneshot(spec):
            if status == "Completed":
                if p.get("exit_code", 0) != 0:
                    raise failure(name, f"exited with code {p.get('exit_code')}")
                ready.add(name)
            elif status in ("Error", "Skipped"):
                raise failure(name, f"status {status}")
            else:
                pending.append(name)
            continue
        if status in ("Completed", "Error", "Skipped") or p.get("restarts", 0) >= 3:
            raise failure(
                name,
                f"exited (status {status}, exit code {p.get('exit_code')}, restarts {p.get('restarts', 0)})",
            )
        if status == "Running" and p.get("is_ready") == "Ready":
            ready.add(name)
        else:
            pending.append(name)
    return ready, pending


def wait_ready(specs: dict[str, dict[str, Any]], timeout_s: float) -> float:
    started = time.monotonic()
    with Live(console=console, refresh_per_second=2, transient=True) as live:
        while True:
            elapsed = time.monotonic() - started
            ready, pending = check_progress(processes(), specs)
            live.update(
                f"[cyan]starting the local stack[/] {len(ready)}/{len(specs)} ready "
                f"({elapsed:.0f}s) — waiting for: {', '.join(sorted(pending)) or '-'}"
            )
            if not pending and len(ready) == len(specs):
                return elapsed
            if elapsed > timeout_s:
                waiting = sorted(pending)
                raise StackError(
                    f"services never became ready within {timeout_s:.0f}s: {', '.join(waiting)}\n"
                    + "\n".join(f"  {n}: log {LOGS / (n + '.log')}\n{log_tail(n, 6)}" for n in waiting)
                )
            time.sleep(1)


# --------------------------------------------------------------------------------------------
# memory


def rss_tree(pid: int) -> int:
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def status_rows(env: dict[str, str]) -> list[dict[str, Any]]:
    specs = declared_processes()
    u = urls(env)
    rows = []
    for p in sorted(processes(), key=lambda p: p["name"]):
        name = p["name"]
        oneshot = is_oneshot(specs.get(name, {}))
        if oneshot:
            health = (
                "done" if p.get("status") == "Completed" and p.get("exit_code", 0) == 0 else p.get("status")
            )
        else:
            health = "ready" if p.get("is_ready") == "Ready" else (p.get("is_ready") or "-").lower()
        pid = int(p.get("pid") or 0)
        rows.append(
            {
                "service": name,
                "status": p.get("status"),
                "health": health,
                "url": u.get(name, ""),
                "pid": pid,
                "rss_bytes": rss_tree(pid) if pid and p.get("status") == "Running" else 0,
                "restarts": p.get("restarts", 0),
                "oneshot": oneshot,
            }
        )
    return rows


def write_report(name: str, data: dict[str, Any]) -> Path:
    return write_json(REPORTS / f"{name}.json", data)


def stop_all(reason: str = "") -> None:
    if running():
        if reason:
            console.print(f"[yellow]stopping the local stack[/] {reason}")
        pc("down", "--ordered-shutdown", check=False)
        deadline = time.monotonic() + 60
        while SOCKET.exists() and running() and time.monotonic() < deadline:
            time.sleep(0.5)
    SOCKET.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# commands


@app.command()
def up(timeout: float = typer.Option(420, help="seconds to wait for every service to be ready")) -> None:
    """Start every service and wait until all are ready."""
    env = load_env()
    if running():
        # a service may be restarting (make restart-..., a crash being retried): wait for it
        console.print("[green]the local stack is already running[/]; waiting until every service is ready")
        try:
            wait_ready(declared_processes(), timeout)
        except StackError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
        status()
        return
    for d in (VAR / "run", LOGS, VAR / "data", REPORTS):
        d.mkdir(parents=True, exist_ok=True)
    SOCKET.unlink(missing_ok=True)
    try:
        preflight(env)
    except StackError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    specs = declared_processes()
    t0 = time.monotonic()
    cmd = [
        str(PC_BIN),
        "up",
        "-f",
        str(PC_FILE),
        "-D",
        "-U",
        "-u",
        str(SOCKET),
        "--disable-dotenv",
        "--ordered-shutdown",
        "-t=false",
        "-L",
        str(LOGS / "process-compose.log"),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        console.print(f"[red]process-compose did not start:[/] {proc.stderr.strip()[-800:]}")
        raise typer.Exit(1)
    deadline = time.monotonic() + 30
    while not running():
        if time.monotonic() > deadline:
            console.print(
                f"[red]process-compose never answered on {SOCKET}[/]; log: {LOGS / 'process-compose.log'}"
            )
            raise typer.Exit(1)
        time.sleep(0.3)
    try:
        waited = wait_ready(specs, timeout)
    except (StackError, KeyboardInterrupt) as exc:
        console.print(f"[red]{exc}[/]" if isinstance(exc, StackError) else "[red]interrupted[/]")
        stop_all("(nothing is left half-started)")
        raise typer.Exit(1) from None
    rows = status_rows(env)
    total = sum(r["rss_bytes"] for r in rows)
    report = write_report(
        "up-local",
        {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "up_seconds": round(time.monotonic() - t0, 1),
            "ready_wait_seconds": round(waited, 1),
            "total_rss_bytes": total,
            "services": rows,
        },
    )
    console.print(
        f"[green]local stack ready in {time.monotonic() - t0:.0f}s[/] "
        f"({len(specs)} processes, {total / 2**30:.2f} GiB RSS) — report: {report.relative_to(ROOT)}"
    )
    print_status(rows)


def print_status(rows: list[dict[str, Any]]) -> None:
    table = Table(title="native local stack")
    for col in ("service", "status", "health", "memory", "url"):
        table.add_column(col)
    for r in rows:
        color = "green" if r["health"] in ("ready", "done") else "red"
        mem = f"{r['rss_bytes'] / 2**20:,.0f} MiB" if r["rss_bytes"] else ""
        table.add_row(r["service"], str(r["status"]), f"[{color}]{r['health']}[/]", mem, r["url"])
    total = sum(r["rss_bytes"] for r in rows)
    table.add_row("[bold]total[/]", "", "", f"[bold]{total / 2**30:.2f} GiB[/]", "")
    console.print(table)


@app.command()
def status() -> None:
    """Each service, its health, URL and memory (also var/reports/status.json)."""
    env = load_env()
    if not running():
        console.print("the local stack is [yellow]not running[/] (start it with 'make up-local')")
        raise typer.Exit(3)
    rows = status_rows(env)
    print_status(rows)
    write_report("status", {"total_rss_bytes": sum(r["rss_bytes"] for r in rows), "services": rows})
    if any(r["health"] not in ("ready", "done") for r in rows):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop every service (data under var/data is kept)."""
    if not running():
        console.print("the local stack is not running")
        return
    stop_all()
    console.print("[green]local stack stopped[/] (data kept in var/data)")


@app.command()
def clean() -> None:
    """Stop the stack and delete its data, logs, generated config and dbt's build artifacts
    (var/data, var/log, var/run, var/dbt): what a fresh machine starts from."""
    stop_all()
    for d in ("data", "log", "run", "dbt"):
        shutil.rmtree(VAR / d, ignore_errors=True)
    console.print("[green]local stack data removed[/]")


@app.command("stop")
def stop_service(service: str) -> None:
    """Stop one service (for failure drills)."""
    pc("process", "stop", service)
    console.print(f"stopped {service}")


@app.command("start")
def start_service(service: str) -> None:
    """Start one stopped service (for failure drills)."""
    pc("process", "start", service)
    console.print(f"started {service}")


@app.command("restart")
def restart_service(service: str) -> None:
    """Restart one service."""
    pc("process", "restart", service)
    console.print(f"restarted {service}")


if __name__ == "__main__":
    sys.exit(app())
