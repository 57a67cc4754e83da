"""Creates what the platform expects to exist, idempotently: buckets, topics, databases, schemas.

Both runtimes run the same code: the native stack as one-shot processes of process-compose,
Docker Compose as an init container. ``python -m common.bootstrap s3 kafka postgres trino``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import typer

from common import object_store, trino_client
from common.logs import setup_logging
from common.settings import kafka_settings, postgres_settings, s3_settings, trino_settings

log = logging.getLogger("bootstrap")

TRINO_SCHEMAS = ("bronze", "silver", "gold")


def topic_specs() -> dict[str, tuple[int, dict[str, str]]]:
    """Topic name → (partitions, configs). Raw is keyed by card id: partitions bound parallelism."""
    k = kafka_settings()
    week = str(7 * 24 * 3600 * 1000)
    month = str(30 * 24 * 3600 * 1000)
    return {
        k.kafka_topic_raw: (k.kafka_raw_partitions, {"retention.ms": week, "compression.type": "producer"}),
        # The DLQ keeps its records longer: they wait for a fix and `make replay-dlq`.
        k.kafka_topic_dlq: (3, {"retention.ms": month}),
        k.kafka_topic_labels: (3, {"retention.ms": month}),
    }


def ensure_buckets() -> list[str]:
    from botocore.exceptions import ClientError

    s = s3_settings()
    client = object_store.client()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in (s.lakehouse_bucket, s.mlflow_bucket):
        if bucket in existing:
            continue
        try:
            client.create_bucket(Bucket=bucket)
            created.append(bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
    return created


def ensure_topics() -> list[str]:
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_settings().kafka_bootstrap_servers})
    metadata = admin.list_topics(timeout=15)
    wanted = topic_specs()
    new = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=cfg)
        for name, (parts, cfg) in wanted.items()
        if name not in metadata.topics
    ]
    created: list[str] = []
    for name, fut in (admin.create_topics(new) if new else {}).items():
        fut.result(timeout=30)
        created.append(name)
    # A topic created earlier with fewer partitions is grown (never shrunk: Kafka cannot).
    grow = [
        NewPartitions(name, parts)
        for name, (parts, _) in wanted.items()
        if name in metadata.topics and len(metadata.topics[name].partitions) < parts
    ]
    for name, fut in (admin.create_partitions(grow) if grow else {}).items():
        fut.result(timeout=30)
        created.append(f"{name} (partitions grown)")
    return created


def ensure_databases() -> list[str]:
    import psycopg
    from psycopg import sql

    p = postgres_settings()
    created = []
    with psycopg.connect(p.dsn("postgres"), autocommit=True, connect_timeout=10) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        for db in (p.mlflow_db, p.airflow_db, p.superset_db, p.predictions_db, p.schema_registry_db):
            if db not in have:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
                created.append(db)
    return created


def ensure_trino_schemas() -> list[str]:

    t = trino_settings()
    bucket = s3_settings().lakehouse_bucket
    cur = trino_client.connect().cursor()
    cur.execute(f"SHOW SCHEMAS FROM {t.trino_catalog}")
    have = {r[0] for r in cur.fetchall()}
    created = []
    for schema in TRINO_SCHEMAS:
        if schema not in have:
            cur.execute(
                f"CREATE SCHEMA IF NOT EXISTS {t.trino_catalog}.{schema} "
                f"WITH (location = 's3://{bucket}/{schema}/')"
            )
            cur.fetchall()
            created.append(schema)
    return created


TASKS: dict[str, Callable[[], list[str]]] = {
    "s3": ensure_buckets,
    "kafka": ensure_topics,
    "postgres": ensure_databases,
    "trino": ensure_trino_schemas,
}


def run(task: str, attempts: int = 5, delay_s: float = 3.0) -> list[str]:
    """Run one task; transient failures (a service still warming up) are retried."""
    for attempt in range(1, attempts + 1):
        try:
            return TASKS[task]()
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s: attempt %d failed (%s); retrying in %.0fs", task, attempt, exc, delay_s)
            time.sleep(delay_s)
    raise AssertionError("unreachable")


app = typer.Typer(add_completion=False, help=__doc__)


TASKS_HELP = f"any of {', '.join(TASKS)} (default: all)"


@app.command()
def main(tasks: list[str] = typer.Argument(None, help=TASKS_HELP)) -> None:
    setup_logging()
    for task in tasks or list(TASKS):
        if task not in TASKS:
            log.error("unknown task %r; known: %s", task, ", ".join(TASKS))
            sys.exit(2)
        try:
            created = run(task)
        except Exception as exc:
            log.error("%s: FAILED: %s", task, exc)
            sys.exit(1)
        log.info(
            "%s: ready%s", task, f" (created: {', '.join(created)})" if created else " (nothing to create)"
        )


if __name__ == "__main__":
    app()
