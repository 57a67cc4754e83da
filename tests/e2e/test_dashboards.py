"""Every panel of the Grafana dashboards shows data on the live stack: each query of
monitoring/grafana/dashboards/*.json, run on Prometheus over the last hour, returns at least one
series. It runs last (``after_traffic``, tests/e2e/conftest.py): the other e2e tests make the
traffic, the DAG run and the model load the panels show."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from common.dashboards import load_dashboards, queries, series_count
from common.settings import kafka_settings

pytestmark = [
    pytest.mark.usefixtures("running_stack"),
    pytest.mark.slow,
    pytest.mark.after_traffic,
    pytest.mark.native,
]

PROMETHEUS = f"http://127.0.0.1:{os.environ.get('PROMETHEUS_PORT', '9090')}"
WINDOW_MINUTES = 60


@pytest.fixture(scope="module")
def error_traffic() -> None:
    """What a healthy run never does, so that the error panels are checked too: one request the API
    rejects (422) and one record on the raw topic that is not in the wire format (the streaming job
    dead-letters it, the online applier skips it). Waits until Prometheus has scraped both."""
    from confluent_kafka import Producer

    from serving.settings import get_settings

    s = get_settings()
    keys = s.keys()
    headers = {"X-API-Key": keys[0].decode()} if keys else {}
    r = httpx.post(
        f"http://127.0.0.1:{s.port}/predict",
        json={"transaction_id": "dashboards-e2e"},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 422, r.text
    k = kafka_settings()
    producer = Producer({"bootstrap.servers": k.kafka_bootstrap_servers})
    producer.produce(k.kafka_topic_raw, key=b"card-dashboards-e2e", value=b"not the wire format")
    assert producer.flush(30) == 0
    scraped = (  # a rate needs two scrapes of the new series
        'sum(rate(fraud_api_requests_total{status="422"}[$__rate_interval]))',
        "sum(rate(fraud_streaming_dlq_rows_total[$__rate_interval]))",
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(series_count(PROMETHEUS, q, 5) for q in scraped):
        time.sleep(10)


@pytest.mark.usefixtures("error_traffic")
def test_every_panel_query_returns_data_on_the_live_prometheus() -> None:
    empty: list[str] = []
    with httpx.Client(timeout=30) as client:
        for query in queries(load_dashboards()):
            try:
                if series_count(PROMETHEUS, query.expr, WINDOW_MINUTES, client=client) == 0:
                    empty.append(str(query))
            except ValueError as e:  # Prometheus rejected the query
                empty.append(f"{query}\n    {e}")
    assert not empty, f"panel queries with no series over the last {WINDOW_MINUTES} min:\n" + "\n".join(empty)
