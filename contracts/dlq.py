"""Dead-letter records: the original payload bytes plus headers saying what failed, where and why.

Every stage writes the same headers (UTF-8 strings), so ``make replay-dlq`` and one dashboard read
them all:

===================  ===============================================================================
``stage``            where it failed: ``producer.validate``, ``producer.serialize``,
                     ``producer.deliver``, ``streaming.decode``, ``streaming.quality``,
                     ``streaming.dedup``
``reason``           short code (``missing``, ``unknown_currency``, ``not_wire_format``…); metric label
``field``            first failing field ("" when the failure is not about one field)
``error``            the full human-readable message (at most :data:`MAX_ERROR_CHARS`)
``source``           where the event came from: ``simulator``, ``replay:<file>``, ``replay-dlq``, or
                     the topic the stream read it from
``error_time``       when it failed, ISO-8601 UTC with milliseconds
``event_type``       ``transaction`` or ``label``: tells ``replay-dlq`` which topic a fixed record goes to
``content_type``     :data:`CONTENT_JSON` (an invalid event, as JSON), :data:`CONTENT_AVRO` (Confluent
                     wire format) or :data:`CONTENT_BYTES` (bytes that are neither)
``source_topic``     the topic the record was meant for or read from
``source_partition`` } streaming stages: the identity of the original Kafka record (a micro-batch
``source_offset``    } replayed after a crash sends its DLQ records again, byte-identical, so
                     } consumers de-duplicate on topic, partition and offset)
``source_timestamp`` streaming stages: Kafka timestamp of the original record, epoch milliseconds
``schema_id``        the writer schema id of a wire-format payload
===================  ===============================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

STAGE_VALIDATE: Final = "producer.validate"
STAGE_SERIALIZE: Final = "producer.serialize"
STAGE_DELIVER: Final = "producer.deliver"
STAGE_DECODE: Final = "streaming.decode"
STAGE_QUALITY: Final = "streaming.quality"
STAGE_DEDUP: Final = "streaming.dedup"
STREAMING_STAGE_PREFIX: Final = "streaming."
#: stage streaming.dedup: another record of the same transaction_id is already in Bronze
DUPLICATE: Final = "duplicate"
CONTENT_JSON: Final = "application/json"
CONTENT_AVRO: Final = "application/vnd.confluent.avro"
CONTENT_BYTES: Final = "application/octet-stream"
MAX_ERROR_CHARS: Final = 2000

Headers = list[tuple[str, str | bytes | None]]


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
) -> Headers:
    """The headers of one dead letter written from Python (the stream builds the same in Spark)."""
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


def header_dict(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
) -> dict[str, str]:
    """Kafka headers as a dict of strings (the last value of a repeated key wins)."""
    out: dict[str, str] = {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for key, value in pairs:
        if value is None:
            out[key] = ""
        elif isinstance(value, bytes):
            out[key] = value.decode("utf-8", errors="replace")
        else:
            out[key] = value
    return out
