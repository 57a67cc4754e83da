"""The Docker Compose stack: build, start, inspect and stop it, with figures.

    python infra/compose/compose_stack.py build | up | status | down | clean | logs <service>

`up` builds the platform image (cached: a rebuild only redoes what changed), starts every service
and waits until each is healthy, then reports how long that took and how much memory the stack
uses (var/reports/compose-up.json). A service that fails is named with the end of its log, and
the stack is left running for inspection (`make down` stops it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from common.reports import write_report

ROOT = Path(__file__).resolve().parents[2]
console = Console(width=None if sys.stdout.isatty() else 132)
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


def compose_cmd() -> list[str]:
    """`docker compose` with the versions (image tag, base image) and the settings files:
    infra/versions.env, .env.example, then .env where present."""
    files = ["--env-file", "infra/versions.env", "--env-file", ".env.example"]
    files += ["--env-file", ".env"] if (ROOT / ".env").exists() else []
    return ["docker", "compose", *files]


def compose(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*compose_cmd(), *args], cwd=ROOT, check=check, text=True, capture_output=capture)


def engine_ready() -> None:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        console.print("[red]no Docker engine answers:[/] run 'make setup-compose' (or start Docker)")
        raise typer.Exit(1)


def containers() -> list[dict[str, Any]]:
    out = compose("ps", "--all", "--format", "json", capture=True).stdout
    # one JSON object per line (compose v2.21+)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def memory_bytes() -> dict[str, int]:
    """Each running container's memory use (docker stats, one sample), by service."""
    ids = {c["ID"]: c["Service"] for c in containers() if c.get("State") == "running"}
    if not ids:
        return {}
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}}", *ids],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    units = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
    mem: dict[str, int] = {}
    for line in out.splitlines():
        cid, usage = line.split(" ", 1)
        value = usage.split("/")[0].strip()
        number = value.rstrip("KMGiBk")
        unit = value[len(number) :]
        service = next(s for i, s in ids.items() if i.startswith(cid) or cid.startswith(i))
        mem[service] = int(float(number) * units[unit])
    return mem


def rows() -> list[dict[str, Any]]:
    mem = memory_bytes()
    out = []
    for c in sorted(containers(), key=lambda c: str(c["Service"])):
        done = c.get("State") == "exited" and c.get("ExitCode") == 0
        health = c.get("Health") or ("done" if done else c.get("State"))
        published = c.get("Publishers") or []
        ports = sorted({f"127.0.0.1:{p['PublishedPort']}" for p in published if p.get("PublishedPort")})
        out.append(
            {
                "service": c["Service"],
                "state": c.get("State"),
                "health": health,
                "memory_bytes": mem.get(c["Service"], 0),
                "ports": ports,
            }
        )
    return out


def print_rows(table_rows: list[dict[str, Any]]) -> None:
    table = Table(title="compose stack")
    for col in ("service", "state", "health", "memory", "published"):
        table.add_column(col)
    for r in table_rows:
        color = {"healthy": "green", "done": "green", "starting": "yellow"}.get(r["health"], "red")
        mem = f"{r['memory_bytes'] / 2**20:.0f} MiB" if r["memory_bytes"] else ""
        table.add_row(r["service"], str(r["state"]), f"[{color}]{r['health']}[/]", mem, " ".join(r["ports"]))
    console.print(table)
    total = sum(r["memory_bytes"] for r in table_rows)
    console.print(f"total memory: {total / 2**30:.2f} GiB")


@app.command()
def build() -> None:
    """Build the platform image (the `image` service); layers are cached between builds."""
    engine_ready()
    started = time.monotonic()
    compose("--profile", "build", "build", "image")
    console.print(f"image built in {time.monotonic() - started:.0f} s")


@app.command()
def up(timeout: int = typer.Option(900, help="seconds to wait for every service to be healthy")) -> None:
    """Build (cached), start every service and wait until all are healthy; report the figures."""
    engine_ready()
    started = time.monotonic()
    compose("--profile", "build", "build", "image")
    built = time.monotonic() - started
    proc = compose("up", "--detach", "--wait", "--wait-timeout", str(timeout), check=False)
    healthy = time.monotonic() - started
    table_rows = rows()
    print_rows(table_rows)
    bad = [r for r in table_rows if r["health"] not in ("healthy", "done")]
    if proc.returncode != 0 or bad:
        for r in bad:
            console.print(f"[red]{r['service']}[/]: {r['health']}; its last log lines:")
            compose("logs", "--no-color", "--tail", "15", r["service"], check=False)
        console.print("[red]the compose stack did not come up[/] (left running: 'make down' stops it)")
        raise typer.Exit(1)
    report = {
        "build_s": round(built, 1),
        "up_to_healthy_s": round(healthy, 1),
        "total_memory_bytes": sum(r["memory_bytes"] for r in table_rows),
        "services": table_rows,
    }
    path = write_report("compose-up", report)
    console.print(f"[green]every service healthy[/] in {healthy:.0f} s (build {built:.0f} s); report: {path}")


@app.command()
def status() -> None:
    """Each service: state, health, memory, published ports (also var/reports/compose-status.json).
    Exits 1 unless every service is healthy (one-shot ones: done)."""
    engine_ready()
    table_rows = rows()
    print_rows(table_rows)
    total = sum(r["memory_bytes"] for r in table_rows)
    write_report("compose-status", {"total_memory_bytes": total, "services": table_rows})
    if not table_rows or any(r["health"] not in ("healthy", "done") for r in table_rows):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop and remove the containers (volumes, i.e. data, are kept)."""
    engine_ready()
    compose("--profile", "grafana", "down", "--remove-orphans")


@app.command()
def clean() -> None:
    """Stop the containers and delete their volumes (all data of the compose stack)."""
    engine_ready()
    compose("--profile", "grafana", "down", "--remove-orphans", "--volumes")


@app.command()
def logs(service: str, lines: int = 100) -> None:
    """The last lines of one service's log."""
    compose("logs", "--no-color", "--tail", str(lines), service, check=False)


if __name__ == "__main__":
    app()
