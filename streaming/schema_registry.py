"""Writer schemas of the stream's records: resolved by id, checked against the reader schema, cached.

Each schema id a micro-batch carries is asked of the registry once (:class:`SchemaRegistry`, the one
client in :mod:`common.schema_registry`), then judged: readable into the reader schema (its JSON is
what ``from_avro`` decodes with), or a failure reason for the DLQ (unknown id, not Avro,
incompatible). Verdicts are cached per reader schema; an id the registry did not know is asked
again after :data:`UNKNOWN_ID_TTL_S`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from common.schema_registry import SchemaRegistry
from contracts import wire

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# an id not resolved yet for this batch: the batch writer asks the registry and decodes again
UNRESOLVED = "_unresolved"
# ids the registry does not know are asked again after this long (a producer registers a schema
# before writing records with its id, so an unknown id is almost always garbage)
UNKNOWN_ID_TTL_S = 300.0
#: retries (exponential backoff up to 8 s) before a registry outage fails the micro-batch
OUTAGE_RETRIES = 4


def stream_registry(url: str, timeout_s: float) -> SchemaRegistry:
    """The registry client of the stream: rides out short outages before failing the batch."""
    return SchemaRegistry(url, timeout_s, outage_retries=OUTAGE_RETRIES)


@dataclass
class Resolution:
    """How the ids of one batch decode for one reader schema."""

    readable: dict[int, str] = field(default_factory=dict)  # id → writer schema JSON
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)  # id → (reason, message)


class WriterSchemas:
    """Resolves schema ids to writer schemas readable as a given reader schema (cached)."""

    def __init__(self, spark: SparkSession, registry: SchemaRegistry) -> None:
        self._spark = spark
        self._registry = registry
        self._verdicts: dict[tuple[str, int], tuple[str, str] | str] = {}
        self._unknown: dict[int, float] = {}  # id → monotonic time the registry said 404

    def known(self, reader_schema: str) -> Resolution:
        """Every id resolved so far for ``reader_schema`` (no registry call)."""
        out = Resolution()
        now = time.monotonic()
        for (reader, schema_id), verdict in self._verdicts.items():
            if reader == reader_schema:
                self._put(out, schema_id, verdict)
        for schema_id, at in list(self._unknown.items()):
            if now - at < UNKNOWN_ID_TTL_S:
                out.failed[schema_id] = self._unknown_verdict(schema_id)
            else:
                del self._unknown[schema_id]
        return out

    def resolve(self, reader_schema: str, ids: set[int]) -> Resolution:
        """:meth:`known` plus ``ids``, asking the registry for the new ones."""
        out = self.known(reader_schema)
        for schema_id in sorted(ids):
            self._put(out, schema_id, self._verdict(reader_schema, schema_id))
        return out

    @staticmethod
    def _put(out: Resolution, schema_id: int, verdict: tuple[str, str] | str) -> None:
        if isinstance(verdict, tuple):
            out.failed[schema_id] = verdict
            out.readable.pop(schema_id, None)
        else:
            out.readable[schema_id] = verdict

    @staticmethod
    def _unknown_verdict(schema_id: int) -> tuple[str, str]:
        return (wire.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")

    def _verdict(self, reader_schema: str, schema_id: int) -> tuple[str, str] | str:
        key = (reader_schema, schema_id)
        if key in self._verdicts:
            return self._verdicts[key]
        writer = self._registry.writer_schema(schema_id)
        if writer is None:
            self._unknown[schema_id] = time.monotonic()
            return self._unknown_verdict(schema_id)
        self._unknown.pop(schema_id, None)
        verdict: tuple[str, str] | str
        if not writer.is_avro:
            verdict = (wire.NOT_AVRO, f"schema id {schema_id} is a {writer.schema_type} schema, not Avro")
        else:
            problem = self._incompatibility(reader_schema, writer.schema_str)
            if problem:
                verdict = (wire.INCOMPATIBLE_SCHEMA, f"schema id {schema_id}: {problem}")
                log.warning("writer schema id %d cannot be read as the reader schema: %s", schema_id, problem)
            else:
                verdict = writer.schema_str
        self._verdicts[key] = verdict
        return verdict

    def _incompatibility(self, reader_schema: str, writer_schema: str) -> str:
        """Empty when Avro can read ``writer_schema`` data as ``reader_schema``, else why not.

        Avro's Java ``SchemaCompatibility``: the same library that decodes, so the verdict is exact.
        """
        jvm = self._spark.sparkContext._jvm
        if jvm is None:
            raise RuntimeError("no JVM behind the Spark session")
        avro = jvm.org.apache.avro
        try:
            reader = avro.Schema.Parser().parse(reader_schema)
            writer = avro.Schema.Parser().parse(writer_schema)
        except Exception as exc:
            return f"schema does not parse: {str(exc).splitlines()[0][:300]}"
        result = avro.SchemaCompatibility.checkReaderWriterCompatibility(reader, writer)
        if str(result.getType().toString()) == "COMPATIBLE":
            return ""
        incompat = result.getResult().getIncompatibilities()
        details = [
            f"{i.getType().toString()} at {i.getLocation()}: {i.getMessage()}" for i in list(incompat)[:3]
        ]
        return "; ".join(details) or "incompatible with the reader schema"
