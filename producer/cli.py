"""``python -m producer``: simulated transactions, file replays and DLQ replays into Kafka.

    python -m producer run [--count N] [--tps R] [--seed S] [--inject-bad-rate X]
    python -m producer replay FILE
    python -m producer replay-dlq [--from-beginning]
    python -m producer register-schemas
    python -m producer simulate --out FILE [--days 182] [--seed 42]

Exit codes: 0 done and reconciled · 1 not reconciled (an event is unaccounted for, a DLQ write or
a re-send failed) · 2 cannot start (broker or registry unreachable, topic or file missing) ·
3 the registry refused a schema (the 409 detail is printed) · 130 interrupted twice.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from common.logs import setup_logging
from common.reports import REPORT_DIR, write_report
from common.schema_registry import RegistryUnavailableError, SchemaRegistrationError, SchemaRegistry
from common.settings import kafka_settings
from producer.pipeline import StartupError
from producer.service import Runtime, register_all, replay_dead_letters, replay_file, simulate, start
from producer.settings import get_settings
from producer.sources import ReplayFileError, estimate_days

log = logging.getLogger("producer")
console = Console(stderr=True)
app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)

EXIT_UNRECONCILED = 1
EXIT_STARTUP = 2
EXIT_SCHEMA = 3


def _setup_logging() -> None:
    setup_logging(console=console)


def _start(source: str, **kwargs: Any) -> Runtime:
    """Start-up with the error → exit-code mapping; nothing has been sent when this fails."""
    try:
        return start(source, **kwargs)
    except SchemaRegistrationError as exc:
        log.error("%s", exc)
        log.error("nothing was sent: fix the schema (or its compatibility) and retry")
        raise typer.Exit(EXIT_SCHEMA) from exc
    except (StartupError, RegistryUnavailableError) as exc:
        log.error("cannot start: %s", exc)
        raise typer.Exit(EXIT_STARTUP) from exc


def _serve_metrics(rt: Runtime, command: str, injected: Callable[[], dict[str, int]] = dict) -> None:
    """The run's metrics on /metrics (while it runs) and pushed to the Pushgateway (after it exits)."""
    from prometheus_client import REGISTRY, start_http_server

    from producer.metrics import ProducerCollector

    collector = ProducerCollector(
        rt.pipeline.counters,
        rt.pipeline.latency,
        rt.topics.target,
        injected=injected,
        in_flight=rt.pipeline.in_flight,
        schema_ids=lambda: {r.subject: r.schema_id for r in rt.registered.values()},
    )
    from common.pushgateway import Pusher, PushSettings

    if url := PushSettings().pushgateway_url:  # so the run's metrics outlive it
        Pusher(url, "producer", command, collector).start()
    port = rt.settings.metrics_port
    if not port:
        return
    REGISTRY.register(collector)
    try:
        start_http_server(port)
        log.info("metrics on http://0.0.0.0:%d/metrics", port)
    except OSError as exc:
        log.warning("metrics endpoint not started on port %d (%s); set PRODUCER_METRICS_PORT", port, exc)


@contextmanager
def _graceful_stop(request_stop: Callable[[str], None]) -> Iterator[None]:
    """First SIGINT/SIGTERM: stop taking events, flush, report. Second one: abort."""
    hits = {"n": 0}
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: FrameType | None) -> None:
        hits["n"] += 1
        name = signal.Signals(signum).name
        if hits["n"] > 1:
            raise KeyboardInterrupt
        log.warning("%s received: stopping, flushing what is in flight (again to abort)", name)
        request_stop(f"signal:{name}")

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _progress(total: int | None, rt: Runtime) -> tuple[Progress, Callable[[int, int], None]]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} ev/s · accepted {task.fields[acc]} · DLQ {task.fields[dlq]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
    task = progress.add_task("producing", total=total, rate="-", acc=0, dlq=0)
    state = {"last_n": 0, "last_t": 0.0, "last_log": 0.0}
    counters = rt.pipeline.counters

    def update(n: int, n_tx: int) -> None:
        import time

        now = time.monotonic()
        if state["last_t"]:
            dt = now - state["last_t"]
            rate = f"{(n - state['last_n']) / dt:,.0f}" if dt > 0 else "-"
        else:
            rate = "-"
        state["last_n"], state["last_t"] = n, now
        acc = sum(counters.accepted.values())
        dlq = sum(counters.dead_lettered_by_type().values())
        progress.update(task, completed=n_tx, rate=rate, acc=f"{acc:,}", dlq=f"{dlq:,}")
        if not console.is_terminal and now - state["last_log"] >= 10:
            state["last_log"] = now
            log.info("progress: %d events (%d transactions), accepted %d, DLQ %d", n, n_tx, acc, dlq)

    return progress, update


def _conclude(report: dict[str, Any], path: Path, ok: bool | None = None) -> None:
    write_report(path, report)
    rec = report["reconciliation"]
    line = (
        f"generated {rec['generated']:,} = accepted {rec['accepted']:,} + dead-lettered "
        f"{rec['dead_lettered']:,}"
        + (f" (+{rec['unaccounted']:,} unaccounted)" if rec["unaccounted"] else "")
        + f" · {report.get('msgs_per_s') or 0:,.0f} msgs/s · report {path}"
    )
    reconciled = bool(rec["ok"]) if ok is None else ok
    if reconciled:
        console.print(f"[green]reconciled[/green]: {line}")
        return
    console.print(f"[red]NOT reconciled[/red]: {line}")
    raise typer.Exit(EXIT_UNRECONCILED)


@app.command()
def run(
    tps: float = typer.Option(0.0, min=0, help="events per second (0 = as fast as possible)"),
    count: int = typer.Option(0, min=0, help="stop after this many transactions (0 = no limit)"),
    duration: float = typer.Option(0.0, min=0, help="stop after this many seconds (0 = no limit)"),
    seed: int = typer.Option(42, help="simulator seed (same seed, same events)"),
    days: int = typer.Option(0, min=0, help="simulated days (0 = enough for --count, else 30)"),
    inject_bad_rate: float = typer.Option(0.0, min=0.0, max=1.0, help="share of transactions to corrupt"),
    report: Path = typer.Option(REPORT_DIR / "producer.json", help="run report (JSON)"),
) -> None:
    """Simulated transactions and their later fraud labels → transactions.raw / transactions.labels."""
    _setup_logging()
    if not days:
        wanted = count or (int(tps * duration) if tps and duration else 0)
        days = estimate_days(wanted) if wanted else 30
    rt = _start(f"simulator(seed={seed},days={days})")
    _serve_metrics(rt, "run", injected=lambda: dict(rt.injector.injected) if rt.injector else {})
    progress, update = _progress(count or None, rt)
    limits = f"tps={tps or 'max'} count={count or 'all'} duration={duration or '-'}s"
    log.info("producing: seed=%d days=%d %s inject_bad_rate=%s", seed, days, limits, inject_bad_rate)
    with _graceful_stop(rt.pipeline.request_stop), progress:
        try:
            result = simulate(
                rt,
                seed=seed,
                days=days,
                tps=tps,
                count=count,
                duration_s=duration,
                inject_bad_rate=inject_bad_rate,
                on_progress=update,
            )
        except KeyboardInterrupt:
            log.error("aborted: in-flight records may be unaccounted for")
            raise typer.Exit(130) from None
    _conclude(result, report)


@app.command()
def replay(
    file: Path = typer.Argument(..., help="Parquet or CSV file of transactions (with is_fraud)"),
    tps: float = typer.Option(0.0, min=0, help="events per second (0 = as fast as possible)"),
    report: Path = typer.Option(REPORT_DIR / "replay.json", help="run report (JSON)"),
) -> None:
    """Stream a file's transactions through validation → Kafka, with its labels to transactions.labels."""
    _setup_logging()
    from producer.sources import open_replay_file

    try:
        open_replay_file(file)
    except ReplayFileError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_STARTUP) from exc
    rt = _start(f"replay:{file.name}")
    _serve_metrics(rt, "replay")
    progress, update = _progress(None, rt)
    with _graceful_stop(rt.pipeline.request_stop), progress:
        try:
            result = replay_file(rt, file, tps=tps, on_progress=update)
        except KeyboardInterrupt:
            log.error("aborted: in-flight records may be unaccounted for")
            raise typer.Exit(130) from None
    _conclude(result, report)


@app.command("replay-dlq")
def replay_dlq_cmd(
    max_records: int = typer.Option(0, min=0, help="stop after this many DLQ records (0 = all)"),
    from_beginning: bool = typer.Option(
        False, help="re-read the whole DLQ, not only records after the group's committed offsets"
    ),
    group: str = typer.Option(None, help="consumer group (default PRODUCER_DLQ_REPLAY_GROUP)"),
    report: Path = typer.Option(REPORT_DIR / "replay-dlq.json", help="report (JSON)"),
) -> None:
    """Re-validate DLQ records; re-send those that now pass, leave (and count) the others."""
    _setup_logging()
    rt = _start("replay-dlq", dead_letter_undeliverable=False)
    _serve_metrics(rt, "replay-dlq")
    with _graceful_stop(rt.pipeline.request_stop):
        try:
            result = replay_dead_letters(
                rt,
                max_records=max_records,
                from_beginning=from_beginning,
                group=group,
                should_stop=lambda: rt.pipeline.stop_reason is not None,
            )
        except (StartupError, RegistryUnavailableError) as exc:
            log.error("cannot go on: %s (the offsets of the batch in hand are not committed)", exc)
            raise typer.Exit(EXIT_STARTUP) from exc
        except KeyboardInterrupt:
            log.error("aborted")
            raise typer.Exit(130) from None
    d = result["dlq"]
    console.print(
        f"DLQ replay: read {d['read']:,} · re-sent {d['resent']:,} · left invalid {d['left_invalid']:,} "
        f"{d['left_invalid_by_reason'] or ''} · left undecodable {d['left_undecodable']:,} "
        f"{d['left_undecodable_by_reason'] or ''}"
    )
    _conclude(result, report, ok=bool(result["ok"]))


@app.command("register-schemas")
def register_schemas() -> None:
    """Set compatibility, register transaction.avsc and label.avsc under <topic>-value (3: refused)."""
    _setup_logging()
    k, s = kafka_settings(), get_settings()
    registry = SchemaRegistry(k.schema_registry_url, s.connect_timeout_s)
    topics = {"transaction": k.kafka_topic_raw, "label": k.kafka_topic_labels}
    try:
        done = register_all(registry, topics, s.subject_compatibility)
    except SchemaRegistrationError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_SCHEMA) from exc
    except RegistryUnavailableError as exc:
        log.error("%s", exc)
        raise typer.Exit(EXIT_STARTUP) from exc
    for reg in done.values():
        typer.echo(f"{reg.subject}: id {reg.schema_id}, version {reg.version}, {reg.compatibility}")


@app.command("simulate")
def simulate_file(
    out: Path = typer.Option(..., help="Parquet file to write (transactions + ground truth)"),
    days: int = typer.Option(182, min=1, help="number of simulated days"),
    seed: int = typer.Option(42, help="random seed (same seed, same data)"),
    customers: int = typer.Option(5_000, min=10, help="number of cardholders"),
    terminals: int = typer.Option(4_000, min=1, help="number of card-present terminals"),
    online_merchants: int = typer.Option(300, min=10, help="number of online merchants"),
    fraud_rate: float = typer.Option(0.007, min=0.0, max=0.49, help="share of fraudulent transactions"),
    start_day: datetime = typer.Option(
        "2025-01-01", "--start", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="first simulated day (UTC)"
    ),
    labels_out: Path | None = typer.Option(None, help="also write the label events (frauds) here"),
) -> None:
    """A simulated labelled dataset to Parquet (no Kafka); prints a JSON summary."""
    _setup_logging()
    from producer.simulator import SimulatorConfig, write_parquet

    try:
        cfg = SimulatorConfig(
            seed=seed,
            days=days,
            start=start_day.replace(tzinfo=UTC),
            n_customers=customers,
            n_terminals=terminals,
            n_online_merchants=online_merchants,
            fraud_rate=fraud_rate,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(json.dumps(write_parquet(cfg, out, labels_out), indent=2))


def main() -> None:
    get_settings()  # a malformed PRODUCER_* variable fails here, before anything connects
    app()
