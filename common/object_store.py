"""One way to reach the S3 object store from Python: a boto3 client built from ``S3_*`` settings,
and the two listings every throwaway resource needs (tests, benchmarks, bootstrap)."""

from __future__ import annotations

from typing import Any

from common.settings import s3_settings


def client() -> Any:
    """A boto3 S3 client on the platform's object store."""
    import boto3

    return boto3.client("s3", **s3_settings().boto3_kwargs())


def list_keys(prefix: str, bucket: str | None = None) -> list[str]:
    """Every key under ``prefix`` (default bucket: the lakehouse)."""
    bucket = bucket or s3_settings().lakehouse_bucket
    pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def delete_prefix(prefix: str, bucket: str | None = None) -> int:
    """Delete every object under ``prefix``; returns how many there were."""
    bucket = bucket or s3_settings().lakehouse_bucket
    s3 = client()
    keys = list_keys(prefix, bucket)
    for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]})
    return len(keys)
