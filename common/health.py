"""Readiness checks that need a real client (a plain HTTP probe is not enough for these).

``python -m common.health kafka | trino | airflow-component <name>``: exit 0 when ready,
1 with the reason on stderr otherwise. Used by infra/local/probe.sh.
"""

from __future__ import annotations

import json
import sys
import urllib.request

from common import trino_client
from common.settings import kafka_settings, trino_settings


def kafka_ready(timeout_s: float = 3.0) -> str:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka_settings().kafka_bootstrap_servers})
    md = admin.list_topics(timeout=timeout_s)
    if not md.brokers:
        raise RuntimeError("no broker in the cluster metadata")
    return f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)"


def trino_ready() -> str:

    t = trino_settings()
    with urllib.request.urlopen(f"http://{t.trino_host}:{t.trino_port}/v1/info", timeout=3) as r:
        info = json.load(r)
    if info.get("starting", True):
        raise RuntimeError("Trino is still starting")
    cur = trino_client.connect(request_timeout=5).cursor()
    # A query through the Delta catalog proves the catalog loaded and a worker is active.
    cur.execute(f"SHOW SCHEMAS FROM {t.trino_catalog}")
    schemas = [r[0] for r in cur.fetchall()]
    return f"Trino {info['nodeVersion']['version']}, {len(schemas)} schema(s) in {t.trino_catalog}"


def airflow_component_ready(component: str) -> str:
    from common.settings import airflow_settings

    url = f"{airflow_settings().airflow_api_url}/api/v2/monitor/health"
    with urllib.request.urlopen(url, timeout=3) as r:  # noqa: S310
        health = json.load(r)
    status = health.get(component, {}).get("status")
    if status != "healthy":
        raise RuntimeError(f"{component} is {status or 'not reporting'}")
    return f"{component} healthy"


def main(argv: list[str]) -> int:
    checks = {
        "kafka": lambda: kafka_ready(),
        "trino": lambda: trino_ready(),
        "airflow-component": lambda: airflow_component_ready(argv[2]),
    }
    if len(argv) < 2 or argv[1] not in checks:
        sys.stderr.write(f"usage: python -m common.health {{{'|'.join(checks)}}} [arg]\n")
        return 2
    try:
        sys.stdout.write(checks[argv[1]]() + "\n")
        return 0
    except Exception as exc:
        sys.stderr.write(f"{argv[1]} not ready: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
