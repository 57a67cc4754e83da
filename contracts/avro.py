"""The Avro contracts of ``transactions.raw`` and ``transactions.labels``: files and subjects.

``schemas/transaction.avsc`` and ``schemas/label.avsc`` are the current versions;
``schemas/history/<name>.v<N>.avsc`` keeps every version that was ever registered (the newest
equals the current file, a unit test holds them together), so compatibility can be checked
against all of them. Subjects follow the TopicNameStrategy (``<topic>-value``).

Fields carry a ``pii`` property when they identify or locate a person (``pseudonymous_id`` for
card, customer and device ids, ``location`` for coordinates): :func:`pii_fields` lists them, so
a consumer that exports or logs events knows what to mask. Avro ignores unknown properties, and a
property-only change is compatible under every compatibility level.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

SCHEMA_DIR: Final = Path(__file__).resolve().parent / "schemas"
HISTORY_DIR: Final = SCHEMA_DIR / "history"
#: event type → schema file stem
SCHEMA_NAMES: Final[dict[str, str]] = {"transaction": "transaction", "label": "label"}
#: fully qualified Avro record name → event type
RECORD_EVENT_TYPES: Final[dict[str, str]] = {
    "com.fraudplatform.Transaction": "transaction",
    "com.fraudplatform.Label": "label",
}
PII_CATEGORIES: Final = frozenset({"pseudonymous_id", "location"})


def subject_for(topic: str) -> str:
    """TopicNameStrategy: the value subject of ``topic``."""
    return f"{topic}-value"


def schema_path(event_type: str) -> Path:
    return SCHEMA_DIR / f"{SCHEMA_NAMES[event_type]}.avsc"


def load_schema(event_type: str) -> dict[str, Any]:
    """The current schema of ``event_type`` as parsed JSON."""
    schema: dict[str, Any] = json.loads(schema_path(event_type).read_text())
    return schema


def load_schema_str(event_type: str) -> str:
    """The current schema of ``event_type`` as compact JSON text (what gets registered)."""
    return json.dumps(load_schema(event_type), separators=(",", ":"))


def pii_fields(event_type: str) -> dict[str, str]:
    """Field name → PII category of the fields tagged ``pii`` in the current schema."""
    return {f["name"]: f["pii"] for f in load_schema(event_type)["fields"] if "pii" in f}


def history(event_type: str) -> list[tuple[int, Path]]:
    """Every registered version of ``event_type``'s schema, oldest first."""
    name = SCHEMA_NAMES[event_type]
    found = []
    for path in HISTORY_DIR.glob(f"{name}.v*.avsc"):
        m = re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.avsc", path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)
