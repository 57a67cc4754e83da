"""What the job reads and where each kind of event lands: one :class:`SourceSpec` per topic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming.quality import Rule, label_rules, transaction_rules
from streaming.settings import StreamingSettings


@dataclass(frozen=True)
class SourceSpec:
    """One Kafka topic → one Bronze table, with the reader schema and rules in between."""

    event_type: str  # "transaction" | "label": the DLQ header replay-dlq routes by
    topic: str
    reader_schema: str  # Avro JSON: records of any compatible writer version are read into it
    table: str  # table name in the Bronze schema (Trino: <catalog>.<bronze_schema>.<table>)
    table_uri: str  # s3a:// location of the Delta table
    table_uri_s3: str  # the same location as Trino names it (s3://)
    time_column: str  # event time of the row; the partition date derives from it
    date_column: str
    key_column: str  # duplicates share this key
    rules: tuple[Rule, ...]
    query_name: str  # the streaming query of this topic (also its checkpoint folder)
    trigger_interval_s: float

    @property
    def reader_fields(self) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = json.loads(self.reader_schema)["fields"]
        return fields

    @property
    def required_fields(self) -> list[str]:
        """Fields the reader schema declares non-nullable: a decoded record always has them."""
        out = []
        for f in self.reader_fields:
            t = f["type"]
            if not (isinstance(t, list) and "null" in t):
                out.append(str(f["name"]))
        return out or [str(f["name"]) for f in self.reader_fields]


def load_schema(path: Path) -> str:
    """The reader schema as canonical-ish JSON (parsed and re-serialised: a clear error if broken)."""
    try:
        schema = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"reader schema {path} not found (STREAMING_*_SCHEMA)") from exc
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ValueError(f"reader schema {path} is not an Avro record schema")
    return json.dumps(schema)


def source_specs(s: StreamingSettings) -> list[SourceSpec]:
    return [
        SourceSpec(
            event_type="transaction",
            topic=s.raw_topic_name,
            reader_schema=load_schema(s.transaction_schema),
            table=s.transactions_table,
            table_uri=s.table_uri(s.transactions_table),
            table_uri_s3=s.table_uri(s.transactions_table, scheme="s3"),
            time_column="event_time",
            date_column="event_date",
            key_column="transaction_id",
            rules=transaction_rules(s),
            query_name=s.query_name("transaction"),
            trigger_interval_s=s.trigger_interval_s,
        ),
        SourceSpec(
            event_type="label",
            topic=s.labels_topic_name,
            reader_schema=load_schema(s.label_schema),
            table=s.labels_table,
            table_uri=s.table_uri(s.labels_table),
            table_uri_s3=s.table_uri(s.labels_table, scheme="s3"),
            time_column="label_time",
            date_column="label_date",
            key_column="transaction_id",
            rules=label_rules(s),
            query_name=s.query_name("label"),
            trigger_interval_s=s.labels_trigger_interval_s,
        ),
    ]
