"""Dead-letter records: the original payload bytes plus headers saying what failed, where and why.

Headers (UTF-8 strings) written by the producer:

==============  ==================================================================================
``stage``       where it failed: ``producer.validate``, ``producer.serialize``, ``producer.deliver``
                (later stages use their own prefix, e.g. ``streaming.decode``)
``reason``      short code (``missing``, ``unknown_currency``, ``msg_timed_out``…); metric label
``field``       first failing field ("" when the failure is not about one field)
``error``       the full human-readable message (every failing field for a validation error)
``source``      where the event came from: ``simulator``, ``replay:<file>``, ``replay-dlq``
``error_time``  when it failed, ISO-8601 UTC with milliseconds
``event_type``  ``transaction`` or ``label``: tells ``replay-dlq`` which topic a fixed record goes to
``content_type`` ``application/json`` (an invalid event, as JSON) or
                ``application/vnd.confluent.avro`` (Confluent wire format: magic byte + schema id)
``source_topic`` the topic the record was produced to (delivery failures)
``schema_id``   the writer schema id of a wire-format payload
==============  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

STAGE_VALIDATE: Final = "producer.validate"
STAGE_SERIALIZE: Final = "producer.serialize"
STAGE_DELIVER: Final = "producer.deliver"
CONTENT_JSON: Final = "application/json"
CONTENT_AVRO: Final = "application/vnd.confluent.avro"
MAX_ERROR_CHARS: Final = 2000


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dlq_headers(
    *,
    stage: str,
    reason: str,
    field: str,
    error: str,
    source: str,
    event_type: str,
    content_type: str,
    source_topic: str | None = None,
    schema_id: int | None = None,
    error_time: str | None = None,
) -> list[tuple[str, str | bytes | None]]:
    headers = {
        "stage": stage,
        "reason": reason,
        "field": field,
        "error": error[:MAX_ERROR_CHARS],
        "source": source,
        "error_time": error_time or utc_now_iso(),
        "event_type": event_type,
        "content_type": content_type,
    }
    if source_topic is not None:
        headers["source_topic"] = source_topic
    if schema_id is not None:
        headers["schema_id"] = str(schema_id)
    return [(k, v.encode()) for k, v in headers.items()]


def header_dict(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Kafka headers as a dict of strings (the last value of a repeated key wins)."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        if value is None:
            out[key] = ""
        elif isinstance(value, bytes):
            out[key] = value.decode("utf-8", errors="replace")
        else:
            out[key] = value
    return out
