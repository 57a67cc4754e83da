"""Feeding a source's events through the pipeline: pacing, limits, progress, stop requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from producer.inject import BadEventInjector
from producer.pipeline import Pipeline


@dataclass
class StreamResult:
    stopped_by: str
    events: int
    transactions: int
    seconds: float  # from the call (includes the source's start-up, e.g. building the simulation)
    first_event_s: float = 0.0  # when the first event arrived, relative to the call


def run_stream(
    pipeline: Pipeline,
    events: Iterable[tuple[str, Any]],
    *,
    tps: float = 0.0,
    count: int = 0,
    duration_s: float = 0.0,
    injector: BadEventInjector | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    progress_every_s: float = 0.25,
) -> StreamResult:
    """Feed ``(event_type, raw)`` pairs through the pipeline (not flushed: call ``flush``).

    ``count`` limits the number of *transactions* (labels in between pass through), ``duration_s``
    the wall time, ``tps`` the rate (events per second, 0 = as fast as possible). Stops early when
    :meth:`Pipeline.request_stop` was called (signal) or a fatal client error happened.
    """
    t0 = started = time.monotonic()
    next_progress = started + progress_every_s
    n = n_tx = 0
    stopped_by = "end_of_stream"
    submit = pipeline.submit
    corrupt = injector.maybe_corrupt if injector is not None and injector.rate > 0 else None
    monotonic = time.monotonic
    first_event = 0.0
    for event_type, raw in events:
        if not n:
            first_event = monotonic()
            if tps or duration_s:
                started = first_event  # pace and time from the first event, not the source's start-up
        if pipeline.stop_reason is not None:
            stopped_by = pipeline.stop_reason
            break
        if event_type == "transaction":
            if count and n_tx >= count:
                stopped_by = "count"
                break
            n_tx += 1
            if corrupt is not None:
                raw, _ = corrupt(raw)
        submit(event_type, raw)
        n += 1
        if tps or duration_s or on_progress is not None:
            now = monotonic()
            if duration_s and now - started >= duration_s:
                stopped_by = "duration"
                break
            if tps:
                while (delay := started + n / tps - monotonic()) > 0:
                    pipeline.poll(min(delay, 0.2))
            if on_progress is not None and now >= next_progress:
                next_progress = now + progress_every_s
                on_progress(n, n_tx)
    else:
        if pipeline.stop_reason is not None:
            stopped_by = pipeline.stop_reason
    if on_progress is not None:
        on_progress(n, n_tx)
    return StreamResult(stopped_by, n, n_tx, monotonic() - t0, (first_event - t0) if n else 0.0)
