"""The native local stack: start, stop and inspect every service as a plain process.

    python infra/local/stack.py up | down | status | clean | restart <service> | stop <service>

`up` checks what the stack needs before starting anything (installed artifacts, JDKs, free
ports), starts process-compose detached, and waits until every service is ready. If a service
fails or never becomes ready, it names the service, the cause and the log to read, then stops
everything it started: nothing is left half-started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import typer
import yaml
from dotenv import dotenv_values
from rich.console import Console
from rich.live import Live
from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("FRAUD_VAR_DIR", ROOT / "var"))
CACHE = ROOT / ".cache"
PC_BIN = CACHE / "bin" / "process-compose"
PC_FILE = ROOT / "infra" / "local" / "process-compose.yaml"
SOCKET = VAR / "run" / "process-compose.sock"
REPORTS = VAR / "reports"
LOGS = VAR / "log"

console = Console(width=None if sys.stdout.isatty() else 132)
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


class StackError(RuntimeError):
    """Startup failed; the message names the service, the cause and the log to read."""


# --------------------------------------------------------------------------------------------
# environment


def load_env() -> dict[str, str]:
    """.env.example, overlaid by .env, overlaid by the process environment."""
    env: dict[str, str] = {}
    for f in (ROOT / ".env.example", ROOT / ".env", ROOT / "infra" / "versions.env"):
        if f.exists():
            env.update({k: v for k, v in dotenv_values(f).items() if v is not None})
    env.update(os.environ)
    env["FRAUD_VAR_DIR"] = str(VAR)
    return env


@dataclass(frozen=True)
class Endpoint:
    service: str
    port_var: str
    url: str  # shown by `status`; {port} is replaced


# Every port the stack binds, with the service that binds it (checked before starting).
ENDPOINTS = [
    Endpoint("object-store", "S3_PORT", "http://localhost:{port}"),
    Endpoint("kafka", "KAFKA_PORT", "localhost:{port}"),
    Endpoint("kafka", "KAFKA_CONTROLLER_PORT", ""),
    Endpoint("kafka", "KAFKA_METRICS_PORT", "http://localhost:{port}/metrics"),
    Endpoint("schema-registry", "SCHEMA_REGISTRY_PORT", "http://localhost:{port}/apis/ccompat/v7"),
    Endpoint("schema-registry", "SCHEMA_REGISTRY_MANAGEMENT_PORT", ""),
    Endpoint("postgres", "POSTGRES_PORT", "postgresql://localhost:{port}"),
    Endpoint("redis", "REDIS_PORT", "redis://localhost:{port}"),
    Endpoint("trino", "TRINO_PORT", "http://localhost:{port}"),
    Endpoint("trino", "TRINO_METRICS_PORT", ""),
    Endpoint("mlflow", "MLFLOW_PORT", "http://localhost:{port}"),
    Endpoint("airflow-api-server", "AIRFLOW_PORT", "http://localhost:{port}"),
    Endpoint("statsd-exporter", "STATSD_EXPORTER_PORT", ""),
    Endpoint("postgres-exporter", "POSTGRES_EXPORTER_PORT", ""),
    Endpoint("redis-exporter", "REDIS_EXPORTER_PORT", ""),
    Endpoint("prometheus", "PROMETHEUS_PORT", "http://localhost:{port}"),
    Endpoint("alertmanager", "ALERTMANAGER_PORT", "http://localhost:{port}"),
    Endpoint("serving", "SERVING_PORT", "http://localhost:{port}/docs"),
    Endpoint("streaming", "STREAMING_METRICS_PORT", "http://localhost:{port}/metrics"),
]


def urls(env: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in ENDPOINTS:
        if e.url and e.service not in out:
            out[e.service] = e.url.format(port=env[e.port_var])
    return out


# --------------------------------------------------------------------------------------------
# preflight


def required_artifacts(env: dict[str, str]) -> dict[str, Path]:
    v = env
    return {
        "process-compose": PC_BIN,
        "object-store (versitygw)": CACHE / "bin" / "versitygw",
        "statsd-exporter": CACHE / "bin" / "statsd_exporter",
        "kafka": CACHE / "jvm" / "kafka" / "libs" / f"kafka_{v['KAFKA_SCALA']}-{v['KAFKA_VERSION']}.jar",
        "trino": CACHE / "jvm" / f"trino-server-{v['TRINO_VERSION']}" / "bin" / "launcher",
        "jmx exporter": CACHE / "jvm" / f"jmx_prometheus_javaagent-{v['JMX_EXPORTER_VERSION']}.jar",
        "platform python env": ROOT / ".venv" / "bin" / "python",
        "mlflow python env": ROOT / ".venvs" / "mlflow" / "bin" / "mlflow",
        "airflow python env": ROOT / ".venvs" / "airflow" / "bin" / "airflow",
        "java 17": Path(v["JAVA17_HOME"]) / "bin" / "java",
        "java 25 (trino, schema registry)": Path(v["JAVA25_HOME"]) / "bin" / "java",
    }


def registry_installed() -> bool:
    return any((CACHE / "registry").glob("apicurio-registry-*/quarkus-run.jar"))


def port_holder(port: int) -> str:
    try:
        for c in psutil.net_connections(kind="inet"):
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
                p = psutil.Process(c.pid)
                return f"pid {c.pid} ({' '.join(p.cmdline()[:3])[:80]})"
    except (psutil.Error, PermissionError):
        pass
    return "another process"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def preflight(env: dict[str, str]) -> None:
    problems = []
    for what, path in required_artifacts(env).items():
        if not path.exists():
            problems.append(f"{what}: {path} is missing; run 'make setup'")
    if not registry_installed():
        problems.append("schema-registry: Apicurio Registry is not installed; run 'make setup'")
    for e in ENDPOINTS:
        raw = env.get(e.port_var)
        if not raw or not raw.isdigit():
            problems.append(f"{e.service}: setting {e.port_var} is missing or not a port (see .env.example)")
            continue
        if not port_free(int(raw)):
            problems.append(
                f"{e.service}: port {raw} ({e.port_var}) is already in use by {port_holder(int(raw))}; "
                f"stop it or change {e.port_var} in .env"
            )
    if problems:
        raise StackError("cannot start the local stack:\n  - " + "\n  - ".join(problems))


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
    REPORTS.mkdir(parents=True, exist_ok=True)
    path = REPORTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


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
