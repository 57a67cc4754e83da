"""The native stack's services, each used for real: round trips through every one of them."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from typing import Any

import pytest

from common import trino_client
from common.bootstrap import TRINO_SCHEMAS, topic_specs
from common.settings import (
    airflow_settings,
    kafka_settings,
    mlflow_settings,
    postgres_settings,
    redis_settings,
    s3_settings,
    trino_settings,
)

pytestmark = pytest.mark.usefixtures("running_stack")


def http_json(url: str, data: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Any:
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.load(r)


def s3_client() -> Any:
    import boto3

    return boto3.client("s3", **s3_settings().boto3_kwargs())


# ---------------------------------------------------------------------------------------------
# Kafka + schema registry


def test_bootstrap_created_topics_with_their_partitions() -> None:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": kafka_settings().kafka_bootstrap_servers}).list_topics(timeout=10)
    for name, (partitions, _) in topic_specs().items():
        assert name in md.topics, f"topic {name} missing"
        assert len(md.topics[name].partitions) >= partitions
    assert len(md.topics[kafka_settings().kafka_topic_raw].partitions) >= 6


def test_kafka_produce_consume_round_trip(unique: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = kafka_settings().kafka_bootstrap_servers
    topic = f"test.roundtrip.{unique}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    try:
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        sent = {f"card-{i}": f"payload-{i}".encode() for i in range(20)}
        for key, value in sent.items():
            producer.produce(topic, key=key.encode(), value=value)
        assert producer.flush(30) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{unique}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            got[msg.key().decode()] = msg.value()
        consumer.close()
        assert got == sent
    finally:
        admin.delete_topics([topic])


def test_schema_registry_register_and_fetch_avro(unique: str) -> None:
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    client = SchemaRegistryClient({"url": kafka_settings().schema_registry_url})
    subject = f"test-{unique}-value"
    v1 = {"type": "record", "name": "Probe", "fields": [{"name": "id", "type": "string"}]}
    try:
        schema_id = client.register_schema(subject, Schema(json.dumps(v1), "AVRO"))
        fetched = client.get_schema(schema_id)
        assert json.loads(fetched.schema_str)["fields"][0]["name"] == "id"
        assert client.get_latest_version(subject).schema_id == schema_id
        client.set_compatibility(subject, "BACKWARD")
        # a type change is not backward compatible: the registry refuses it with HTTP 409
        broken = {"type": "record", "name": "Probe", "fields": [{"name": "id", "type": "long"}]}
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, Schema(json.dumps(broken), "AVRO"))
        assert refused.value.http_status_code == 409
    finally:
        client.delete_subject(subject, permanent=False)
        client.delete_subject(subject, permanent=True)


# ---------------------------------------------------------------------------------------------
# object store, Spark, Trino


def test_object_store_put_get(unique: str) -> None:
    s3 = s3_client()
    bucket = s3_settings().lakehouse_bucket
    key = f"tests/{unique}/hello.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB
    s3.upload_fileobj(io.BytesIO(payload), bucket, key)
    try:
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == payload
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"tests/{unique}/")["Contents"]
        assert [o["Key"] for o in listed] == [key]
    finally:
        s3.delete_object(Bucket=bucket, Key=key)


def test_bootstrap_created_buckets_and_trino_schemas() -> None:
    s3 = s3_settings()
    buckets = {b["Name"] for b in s3_client().list_buckets()["Buckets"]}
    assert {s3.lakehouse_bucket, s3.mlflow_bucket} <= buckets
    schemas = {r[0] for r in trino_client.rows(f"SHOW SCHEMAS FROM {trino_settings().trino_catalog}")}
    assert set(TRINO_SCHEMAS) <= schemas


@pytest.mark.slow
def test_delta_written_by_spark_is_read_by_trino(spark: Any, unique: str) -> None:
    from streaming.session import s3_uri, s3a_uri

    table = f"it_spark_{unique}"
    key = f"bronze/_tests/{table}"
    df = spark.range(0, 500).selectExpr(  # type: ignore[attr-defined]
        "id",
        "cast(id % 5 as string) as card_id",
        "cast(id * 1.25 as decimal(18,2)) as amount",
        "date'2026-11-01' + cast(id % 3 as int) as event_date",
    )
    df.write.format("delta").partitionBy("event_date").save(s3a_uri(key))
    cat = trino_settings().trino_catalog
    try:
        trino_client.rows(
            f"CALL {cat}.system.register_table(schema_name => 'bronze', table_name => '{table}', "
            f"table_location => '{s3_uri(key)}')"
        )
        rows = trino_client.rows(
            "SELECT count(*), count(DISTINCT card_id), sum(amount), count(DISTINCT event_date) "
            f"FROM {cat}.bronze.{table}"
        )
        assert rows[0][0] == 500
        assert rows[0][1] == 5
        assert float(rows[0][2]) == pytest.approx(sum(i * 1.25 for i in range(500)))
        assert rows[0][3] == 3
    finally:
        trino_client.rows(
            f"CALL {cat}.system.unregister_table(schema_name => 'bronze', table_name => '{table}')"
        )


@pytest.mark.slow
def test_delta_created_by_trino_is_read_by_spark(spark: Any, unique: str) -> None:
    from streaming.session import s3a_uri

    cat = trino_settings().trino_catalog
    table = f"it_trino_{unique}"
    key = f"silver/_tests/{table}"
    bucket = s3_settings().lakehouse_bucket
    trino_client.rows(
        f"CREATE TABLE {cat}.silver.{table} (id bigint, label varchar, amount decimal(18,2)) "
        f"WITH (location = 's3://{bucket}/{key}')"
    )
    try:
        trino_client.rows(
            f"INSERT INTO {cat}.silver.{table} VALUES (1, 'a', 10.50), (2, 'b', 0.25), (3, 'c', 7.00)"
        )
        got = spark.read.format("delta").load(s3a_uri(key)).orderBy("id").collect()  # type: ignore[attr-defined]
        assert [(r.id, r.label, float(r.amount)) for r in got] == [
            (1, "a", 10.5),
            (2, "b", 0.25),
            (3, "c", 7.0),
        ]
    finally:
        trino_client.rows(f"DROP TABLE {cat}.silver.{table}")


# ---------------------------------------------------------------------------------------------
# Redis, Postgres, MLflow, Airflow, Prometheus


def test_redis_round_trip(unique: str) -> None:
    import redis

    r = redis.Redis.from_url(redis_settings().redis_url)
    key = f"test:{unique}"
    r.hset(key, mapping={"count_txn_24h": 3, "sum_amount_24h": "12.5"})
    r.expire(key, 60)
    assert r.hgetall(key) == {b"count_txn_24h": b"3", b"sum_amount_24h": b"12.5"}
    assert 0 < r.ttl(key) <= 60
    r.delete(key)


def test_postgres_round_trip_and_databases(unique: str) -> None:
    import psycopg

    p = postgres_settings()
    with psycopg.connect(p.dsn(p.predictions_db), autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE t_{unique} (id int primary key, note text)")
        conn.execute(f"INSERT INTO t_{unique} VALUES (1, 'x'), (2, 'y')")
        assert conn.execute(f"SELECT count(*), string_agg(note, '') FROM t_{unique}").fetchone() == (2, "xy")
        dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert {p.mlflow_db, p.airflow_db, p.superset_db, p.predictions_db, p.schema_registry_db} <= dbs


def test_mlflow_artifact_lands_in_object_store(tmp_path: Any, unique: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(mlflow_settings().mlflow_tracking_uri)
    mlflow.set_experiment(f"stack-test-{unique}")
    note = tmp_path / "note.txt"
    note.write_text(f"hello {unique}")
    with mlflow.start_run() as run:
        mlflow.log_param("probe", unique)
        mlflow.log_metric("m", 1.0)
        mlflow.log_artifact(str(note))
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["note.txt"]
    # the artifact is in the mlflow bucket of the object store, proxied by the tracking server
    s3 = s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_settings().mlflow_bucket).get("Contents", [])]
    hits = [k for k in keys if k.endswith(f"{run.info.run_id}/artifacts/note.txt")]
    assert hits, f"note.txt of run {run.info.run_id} not found in the object store"
    assert (
        s3.get_object(Bucket=s3_settings().mlflow_bucket, Key=hits[0])["Body"].read()
        == f"hello {unique}".encode()
    )
    client.delete_experiment(run.info.experiment_id)


def test_airflow_api_healthy_and_authenticated() -> None:
    a = airflow_settings()
    health = http_json(f"{a.airflow_api_url}/api/v2/monitor/health")
    for component in ("metadatabase", "scheduler", "dag_processor"):
        assert health[component]["status"] == "healthy", health
    token = http_json(
        f"{a.airflow_api_url}/auth/token",
        {"username": a.airflow_admin_user, "password": a.airflow_admin_password.get_secret_value()},
    )["access_token"]
    dags = http_json(f"{a.airflow_api_url}/api/v2/dags", headers={"Authorization": f"Bearer {token}"})
    assert "dags" in dags
    # without a token the API refuses
    with pytest.raises(urllib.error.HTTPError) as refused:
        http_json(f"{a.airflow_api_url}/api/v2/dags")
    assert refused.value.code == 401


def test_prometheus_scrapes_every_target_up() -> None:
    import os

    url = f"http://localhost:{os.environ.get('PROMETHEUS_PORT', '9090')}/api/v1/targets"
    deadline = time.monotonic() + 60  # the first scrape of a fresh stack takes one interval
    while True:
        targets = http_json(url)["data"]["activeTargets"]
        down = [(t["labels"]["job"], t["lastError"]) for t in targets if t["health"] != "up"]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(3)
    jobs = {t["labels"]["job"] for t in targets}
    assert {
        "prometheus",
        "alertmanager",
        "kafka",
        "schema-registry",
        "trino",
        "postgres",
        "redis",
        "mlflow",
        "airflow",
    } <= jobs
    assert down == []
