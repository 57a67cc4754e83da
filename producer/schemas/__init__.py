"""The Avro contracts of ``transactions.raw`` and ``transactions.labels`` and their registration.

Files: ``transaction.avsc`` and ``label.avsc`` are the current versions; ``history/<name>.v<N>.avsc``
keeps every version that was ever registered (the newest equals the current file, a unit test
holds them together), so compatibility can be checked against all of them.

Subjects follow the TopicNameStrategy (``<topic>-value``). Before registering, the producer sets
each subject's compatibility to ``PRODUCER_SUBJECT_COMPATIBILITY`` (default FULL_TRANSITIVE:
stricter than the registry's global BACKWARD). Under FULL_TRANSITIVE a new version must be
readable by, and able to read, every earlier version: adding or removing a field *with a default*
registers; changing a type or adding/removing a field without a default is refused with HTTP 409,
and :func:`ensure_subject` turns that into a :class:`SchemaRegistrationError` carrying the
registry's message (which names the field and its path), before anything is sent.

``python -m producer.schemas register`` runs the same registration on its own.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

SCHEMA_DIR: Final = Path(__file__).resolve().parent
HISTORY_DIR: Final = SCHEMA_DIR / "history"
#: event type → schema file stem
SCHEMA_NAMES: Final[dict[str, str]] = {"transaction": "transaction", "label": "label"}
#: fully qualified Avro record name → event type
RECORD_EVENT_TYPES: Final[dict[str, str]] = {
    "com.fraudplatform.Transaction": "transaction",
    "com.fraudplatform.Label": "label",
}


class SchemaRegistrationError(RuntimeError):
    """The registry refused a schema (HTTP 409 incompatible, 422 invalid, ...)."""

    def __init__(self, subject: str, status: int | None, detail: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.status = status
        self.detail = detail


class RegistryUnavailableError(RuntimeError):
    """The schema registry cannot be reached (or answers with a server error)."""


@dataclass(frozen=True)
class RegisteredSubject:
    subject: str
    schema_id: int
    version: int
    compatibility: str
    schema_str: str


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value subject of ``topic``."""
    return f"{topic}-value"


def schema_path(event_type: str) -> Path:
    return SCHEMA_DIR / f"{SCHEMA_NAMES[event_type]}.avsc"


def load_schema_str(event_type: str) -> str:
    """The current schema of ``event_type`` as compact JSON text (what gets registered)."""
    return json.dumps(json.loads(schema_path(event_type).read_text()), separators=(",", ":"))


def history(event_type: str) -> list[tuple[int, Path]]:
    """Every registered version of ``event_type``'s schema, oldest first."""
    name = SCHEMA_NAMES[event_type]
    found = []
    for path in HISTORY_DIR.glob(f"{name}.v*.avsc"):
        m = re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.avsc", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


@dataclass(frozen=True)
class Registry:
    """A SchemaRegistryClient and the URL it talks to (for error messages)."""

    url: str
    client: Any

    @classmethod
    def connect(cls, url: str, timeout_s: float = 10.0) -> Registry:
        """A client that fails fast when the registry is down (1 retry). Connects lazily."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        client = SchemaRegistryClient(
            {
                "url": url,
                "timeout": max(1, round(timeout_s)),
                "max.retries": 1,
                "retries.wait.ms": 200,
                "retries.max.wait.ms": 1000,
                "cache.latest.ttl.sec": 30,
            }
        )
        return cls(url, client)


def _registry_call(url: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return fn(*args, **kwargs)
    except SchemaRegistryError:
        raise
    except Exception as exc:
        raise RegistryUnavailableError(
            f"schema registry unreachable at {url} ({what}): {type(exc).__name__}: {exc}"
        ) from exc


def ensure_subject(
    registry: Registry, subject: str, schema_str: str, compatibility: str
) -> RegisteredSubject:
    """Set ``subject``'s compatibility, register ``schema_str`` (idempotent) and return its id.

    Raises :class:`SchemaRegistrationError` when the registry refuses the schema, with the
    registry's own message (for a 409 it names the incompatible field and path).
    """
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    url, client = registry.url, registry.client
    schema = Schema(schema_str, "AVRO")
    try:
        _registry_call(url, "set compatibility", client.set_compatibility, subject, compatibility)
        schema_id = _registry_call(url, "register", client.register_schema, subject, schema)
        registered = _registry_call(url, "lookup", client.lookup_schema, subject, schema)
    except SchemaRegistryError as exc:
        status = exc.http_status_code
        if status is not None and status >= 500:
            raise RegistryUnavailableError(
                f"schema registry at {url} failed on subject {subject}: HTTP {status}: {exc.error_message}"
            ) from exc
        kind = {409: "incompatible with the registered versions", 422: "invalid"}.get(status or 0, "refused")
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


def register_all(
    registry: Registry, topics: dict[str, str], compatibility: str, schemas: dict[str, str] | None = None
) -> dict[str, RegisteredSubject]:
    """Register the schema of each event type under its topic's value subject.

    ``topics`` maps event type → topic; ``schemas`` overrides the schema text (tests).
    All subjects are checked before the caller sends anything; the first refusal raises.
    """
    out = {}
    for event_type, topic in topics.items():
        text = (schemas or {}).get(event_type) or load_schema_str(event_type)
        out[event_type] = ensure_subject(registry, subject_for(topic), text, compatibility)
    return out
