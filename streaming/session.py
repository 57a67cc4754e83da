"""One way to build a SparkSession for the platform: Delta Lake, the Kafka source and S3A on the
object store, with the connector jars that `make setup` resolved from Maven Central."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from common.settings import ROOT, S3Settings, s3_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from streaming.settings import StreamingSettings

SPARK_JARS_DIR = Path(os.environ.get("SPARK_EXTRA_JARS_DIR", ROOT / ".cache" / "jvm" / "spark-jars"))


def spark_jars() -> list[str]:
    jars = sorted(str(p) for p in SPARK_JARS_DIR.glob("*.jar"))
    if not jars:
        raise FileNotFoundError(f"no Spark connector jars in {SPARK_JARS_DIR}: run 'make setup'")
    return jars


def s3a_uri(key: str, bucket: str | None = None) -> str:
    """Spark reads the object store through S3A (s3a://); Trino's catalog names the same object s3://."""
    return f"s3a://{bucket or s3_settings().lakehouse_bucket}/{key.lstrip('/')}"


def s3_uri(key: str, bucket: str | None = None) -> str:
    return f"s3://{bucket or s3_settings().lakehouse_bucket}/{key.lstrip('/')}"


def build_spark(
    app_name: str, master: str = "local[2]", s3: S3Settings | None = None, **conf: str
) -> SparkSession:
    """A local SparkSession configured for Delta on the object store. Extra ``conf`` wins."""
    from pyspark.sql import SparkSession

    s3 = s3 or s3_settings()
    java_home = os.environ.get("JAVA17_HOME")
    if java_home and not os.environ.get("JAVA_HOME"):
        os.environ["JAVA_HOME"] = java_home
    base = {
        "spark.jars": ",".join(spark_jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": s3.s3_endpoint_url,
        "spark.hadoop.fs.s3a.endpoint.region": s3.s3_region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s3.s3_endpoint_url.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.access.key": s3.s3_access_key,
        "spark.hadoop.fs.s3a.secret.key": s3.s3_secret_key.get_secret_value(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        ),
        # a laptop: few cores, small shuffles, no UI port to collide with other services
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "1g",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.databricks.delta.properties.defaults.enableChangeDataFeed": "false",
        # VACUUM START/END commits in the Delta log: when a table was last maintained is read there
        "spark.databricks.delta.vacuum.logging.enabled": "true",
    }
    base.update(conf)
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in base.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("SPARK_LOG_LEVEL", "WARN"))
    return spark


def streaming_spark(settings: StreamingSettings, app_name: str) -> SparkSession:
    """A session sized by the ``STREAMING_*`` settings (master, driver memory): the service, its
    CLI commands and the scheduled maintenance."""
    return build_spark(
        app_name, settings.spark_master, None, **{"spark.driver.memory": settings.driver_memory}
    )
