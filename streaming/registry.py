"""Writer schemas by id from the Schema Registry (Confluent REST API), cached for the process.

Ids are immutable in a registry, so a found schema is cached forever; an unknown id is asked
again in the next micro-batch (it may have been registered meanwhile). A registry that does not
answer is an outage, not bad data: after a few retries the error propagates, the micro-batch fails
and the query restarts from its checkpoint — records are never dead-lettered because the registry
was briefly down.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)


class RegistryUnavailableError(RuntimeError):
    """The registry did not answer (connection error, timeout, 5xx)."""


@dataclass(frozen=True)
class WriterSchema:
    schema_id: int
    schema_type: str  # AVRO, JSON, PROTOBUF
    schema_str: str

    @property
    def is_avro(self) -> bool:
        return self.schema_type.upper() == "AVRO"


class SchemaRegistry:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._found: dict[int, WriterSchema] = {}

    def writer_schema(self, schema_id: int) -> WriterSchema | None:
        """The schema registered under ``schema_id``, or None when the registry does not know it."""
        if schema_id in self._found:
            return self._found[schema_id]
        body = self._get(f"/schemas/ids/{schema_id}")
        if body is None:
            return None
        schema = WriterSchema(schema_id, str(body.get("schemaType") or "AVRO"), str(body["schema"]))
        self._found[schema_id] = schema
        log.info("writer schema id %d fetched (%s)", schema_id, schema.schema_type)
        return schema

    @retry(
        retry=retry_if_exception_type(RegistryUnavailableError),
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def _get(self, path: str) -> dict[str, Any] | None:
        try:
            r = self._session.get(self.url + path, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise RegistryUnavailableError(f"schema registry {self.url} unreachable: {exc}") from exc
        if r.status_code == 404:
            return None
        if r.status_code >= 500:
            raise RegistryUnavailableError(
                f"schema registry {self.url}{path}: HTTP {r.status_code} {r.text[:200]}"
            )
        r.raise_for_status()
        data: dict[str, Any] = json.loads(r.text)
        return data
