"""Metrics of a batch job (the producer CLI) pushed to the Prometheus Pushgateway.

A job that exits between two scrapes leaves nothing for Prometheus to read: its counters are pushed
instead, under ``job=<job>, instance=<command>``, once at start (zeros, so ``increase()`` sees the
first change), every ``interval_s`` while it runs and once more at exit (the final counts). A push
that fails is logged once and never fails the job: metrics are not worth losing a run for.
"""

from __future__ import annotations

import atexit
import logging
import threading

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.registry import Collector

from common.settings import ServiceSettings

log = logging.getLogger(__name__)


class PushSettings(ServiceSettings):
    """``PUSHGATEWAY_URL`` (empty: batch jobs push nothing)."""

    pushgateway_url: str = ""


class Pusher:
    """Pushes one collector's metrics to ``url`` until :meth:`close` (registered at exit)."""

    def __init__(
        self, url: str, job: str, instance: str, collector: Collector, interval_s: float = 5.0
    ) -> None:
        self.url, self.job, self.grouping = url, job, {"instance": instance}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(collector)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name=f"pushgateway-{job}", daemon=True)

    def start(self) -> Pusher:
        self.push()
        self._thread.start()
        atexit.register(self.close)
        return self

    def push(self) -> bool:
        try:
            push_to_gateway(
                self.url, job=self.job, registry=self.registry, grouping_key=self.grouping, timeout=3
            )
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("metrics not pushed to %s (%s); set PUSHGATEWAY_URL, or empty it", self.url, exc)
            return False
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.push()

    def close(self) -> None:
        """Stop the loop and push the final counts (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_s + 5)
        self.push()


def push_gauges(
    job: str, instance: str, values: dict[str, tuple[str, float]], url: str | None = None
) -> bool:
    """One push of ``{name: (help, value)}`` gauges (a batch step's outcome, e.g. its last success)."""
    url = PushSettings().pushgateway_url if url is None else url
    if not url:
        return False
    registry = CollectorRegistry()
    for name, (doc, value) in values.items():
        Gauge(name, doc, registry=registry).set(value)
    return Pusher(url, job, instance, registry).push()
