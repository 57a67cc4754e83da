"""The one Schema Registry client (Confluent REST API), over confluent-kafka's ``SchemaRegistryClient``.

* :meth:`SchemaRegistry.writer_schema` — the schema registered under an id (ids are immutable, so a
  found schema is cached for the process; an unknown id is None and asked again next time). A
  registry that does not answer is an outage, not bad data: after ``outage_retries`` retries with
  exponential backoff it raises :class:`RegistryUnavailableError` (the stream then fails the
  micro-batch and restarts from its checkpoint; records are never dead-lettered because the
  registry was briefly down).
* :meth:`SchemaRegistry.ensure_subject` — set a subject's compatibility and register a schema
  (idempotent). A refusal raises :class:`SchemaRegistrationError` carrying the registry's message,
  which for HTTP 409 names the incompatible field and its path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)


class RegistryUnavailableError(RuntimeError):
    """The registry cannot be reached (connection error, timeout) or answers with a server error."""


class SchemaRegistrationError(RuntimeError):
    """The registry refused a schema (HTTP 409 incompatible, 422 invalid, ...)."""

    def __init__(self, subject: str, status: int | None, detail: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class WriterSchema:
    schema_id: int
    schema_type: str  # AVRO, JSON, PROTOBUF
    schema_str: str

    @property
    def is_avro(self) -> bool:
        return self.schema_type.upper() == "AVRO"


@dataclass(frozen=True)
class RegisteredSubject:
    subject: str
    schema_id: int
    version: int
    compatibility: str
    schema_str: str


class SchemaRegistry:
    """A client that fails fast (one HTTP retry) unless told to ride out outages; connects lazily."""

    def __init__(self, url: str, timeout_s: float = 10.0, *, outage_retries: int = 0) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url.rstrip("/")
        #: confluent-kafka's client, for its serialisers (``AvroSerializer`` takes one); a
        #: ``mock://`` URL gives its in-memory registry (unit tests of decision logic)
        self.client = SchemaRegistryClient.new_client(
            {
                "url": self.url,
                "timeout": max(1, round(timeout_s)),
                "max.retries": 1,
                "retries.wait.ms": 200,
                "retries.max.wait.ms": 1000,
                "cache.latest.ttl.sec": 30,
            }
        )
        self._found: dict[int, WriterSchema] = {}
        self._lookup = retry(
            retry=retry_if_exception_type(RegistryUnavailableError),
            stop=stop_after_attempt(outage_retries + 1),
            wait=wait_exponential(multiplier=0.5, max=8),
            reraise=True,
        )(self._get_schema)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)``; transport failures and 5xx become :class:`RegistryUnavailableError`."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            return fn(*args)
        except SchemaRegistryError as exc:
            if exc.http_status_code is not None and exc.http_status_code >= 500:
                raise RegistryUnavailableError(
                    f"schema registry at {self.url} failed ({what}): HTTP {exc.http_status_code}: "
                    f"{exc.error_message}"
                ) from exc
            raise
        except Exception as exc:
            raise RegistryUnavailableError(
                f"schema registry unreachable at {self.url} ({what}): {type(exc).__name__}: {exc}"
            ) from exc

    def _get_schema(self, schema_id: int) -> WriterSchema | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._call(f"schema id {schema_id}", self.client.get_schema, schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise
        return WriterSchema(schema_id, str(schema.schema_type or "AVRO"), str(schema.schema_str))

    def writer_schema(self, schema_id: int) -> WriterSchema | None:
        """The schema registered under ``schema_id``, or None when the registry does not know it."""
        if schema_id in self._found:
            return self._found[schema_id]
        schema = self._lookup(schema_id)
        if schema is not None:
            self._found[schema_id] = schema
            log.info("writer schema id %d fetched (%s)", schema_id, schema.schema_type)
        return schema

    def ensure_subject(self, subject: str, schema_str: str, compatibility: str) -> RegisteredSubject:
        """Set ``subject``'s compatibility, register ``schema_str`` (idempotent) and return its id."""
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        schema = Schema(schema_str, "AVRO")
        try:
            self._call("set compatibility", self.client.set_compatibility, subject, compatibility)
            schema_id = self._call("register", self.client.register_schema, subject, schema)
            registered = self._call("lookup", self.client.lookup_schema, subject, schema)
        except SchemaRegistryError as exc:
            status = exc.http_status_code
            kind = {409: "incompatible with the registered versions", 422: "invalid"}.get(
                status or 0, "refused"
            )
            raise SchemaRegistrationError(
                subject,
                status,
                exc.error_message,
                f"schema registry refused the schema for subject {subject!r}: {kind} "
                f"(HTTP {status}, compatibility {compatibility}): {exc.error_message}",
            ) from exc
        log.info(
            "subject %s: schema id %s (version %s, compatibility %s)",
            subject,
            schema_id,
            registered.version,
            compatibility,
        )
        return RegisteredSubject(subject, int(schema_id), int(registered.version), compatibility, schema_str)

    def delete_subject(self, subject: str) -> None:
        """Soft then hard delete (throwaway subjects of tests and benchmarks); absent is fine."""
        for permanent in (False, True):
            try:
                self.client.delete_subject(subject, permanent=permanent)
            except Exception as exc:  # already gone, or never registered
                log.debug("delete subject %s (permanent=%s): %s", subject, permanent, exc)
