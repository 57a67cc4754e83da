"""The batch-job metrics pusher never fails the job when the Pushgateway is away."""

from __future__ import annotations

import logging
import socket

import pytest
from prometheus_client import CollectorRegistry, Counter

from common.pushgateway import Pusher


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_gateway_is_logged_once_and_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    reg = CollectorRegistry()
    Counter("job_things", "things", registry=reg).inc()
    pusher = Pusher(f"http://127.0.0.1:{_free_port()}", "job", "run", reg, interval_s=0.05)
    with caplog.at_level(logging.WARNING):
        assert pusher.push() is False
        assert pusher.push() is False
        pusher.close()  # the final push fails the same way
    assert sum("not pushed" in r.message for r in caplog.records) == 1
