"""Gold snapshot rows → the online store's values: the JSON of ``features.CardFeatures.to_dict()``
and ``features.TerminalFeatures.to_dict()``, built column-wise (serving reads them back with
``from_dict``; a unit test holds the two together)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

import orjson
import pandas as pd

import features

CARD_LIST_FIELDS: Final = ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries")
#: CardFeatures.to_dict() keys in order; "card_last_event_time" comes from card_last_event_time_ms.
CARD_JSON_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in features.CardFeatures.__dataclass_fields__.values()
)
TERMINAL_JSON_FIELDS: Final[tuple[str, ...]] = tuple(
    f.name for f in features.TerminalFeatures.__dataclass_fields__.values()
)
#: Gold snapshot columns (besides the id and as_of), as named in ``delta.gold.*_features_latest``.
CARD_COLUMNS: Final[tuple[str, ...]] = features.CARD_AGGREGATE_COLUMNS + CARD_LIST_FIELDS
TERMINAL_COLUMNS: Final[tuple[str, ...]] = features.TERMINAL_AGGREGATE_COLUMNS


def iso_ms(ms: int) -> str:
    return features.from_epoch_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_of_ms(frame: pd.DataFrame, as_of: datetime | None) -> list[int]:
    if "as_of_ms" in frame.columns:
        return [int(v) for v in frame["as_of_ms"].tolist()]
    if "as_of" in frame.columns:
        return [features.to_epoch_ms(pd.Timestamp(v).to_pydatetime()) for v in frame["as_of"].tolist()]
    if as_of is None:
        raise ValueError("the snapshot frame has no as_of / as_of_ms column: pass as_of")
    return [features.to_epoch_ms(as_of)] * len(frame)


def _documents(
    key: str, ids: list[str], as_ofs: list[int], cols: dict[str, list[Any]], fields: tuple[str, ...]
) -> list[bytes]:
    """One JSON document per row: the id, ``as_of`` (ISO, cached per distinct time), ``fields``."""
    iso_cache: dict[int, str] = {}
    values: list[bytes] = []
    for i, entity_id in enumerate(ids):
        ms = as_ofs[i]
        as_of_text = iso_cache.get(ms)
        if as_of_text is None:
            as_of_text = iso_cache[ms] = iso_ms(ms)
        doc: dict[str, Any] = {key: entity_id, "as_of": as_of_text}
        for name in fields:
            doc[name] = cols[name][i]
        values.append(orjson.dumps(doc))
    return values


def encode_cards(
    frame: pd.DataFrame, as_of: datetime | None = None
) -> tuple[list[str], list[bytes], list[int]]:
    """(card ids, JSON values, as_of ms) of a card snapshot frame (Gold or ``snapshot_frame``).

    The JSON is exactly :meth:`features.CardFeatures.to_dict` of the row
    (:func:`ml.pit.card_features_from_row` gives the same object), so serving reads it back with
    :meth:`features.CardFeatures.from_dict`.
    """
    ids = [str(v) for v in frame["card_id"].tolist()]
    as_ofs = _as_of_ms(frame, as_of)
    cols: dict[str, list[Any]] = {}
    for name in features.CARD_AGGREGATE_COLUMNS:
        raw = frame[name].tolist()
        if name == "card_last_event_time_ms":
            cols["card_last_event_time"] = [None if _is_null(v) else iso_ms(int(v)) for v in raw]
        elif name.startswith("card_count"):
            cols[name] = [int(v) for v in raw]
        else:
            cols[name] = [None if _is_null(v) else float(v) for v in raw]
    for name in CARD_LIST_FIELDS:
        cols[name] = [
            [] if v is None or isinstance(v, float) else [str(x) for x in v] for v in frame[name].tolist()
        ]
    return ids, _documents("card_id", ids, as_ofs, cols, CARD_JSON_FIELDS[2:]), as_ofs


def encode_terminals(
    frame: pd.DataFrame, as_of: datetime | None = None
) -> tuple[list[str], list[bytes], list[int]]:
    """(terminal ids, JSON values, as_of ms): :meth:`features.TerminalFeatures.to_dict` per row."""
    ids = [str(v) for v in frame["terminal_id"].tolist()]
    as_ofs = _as_of_ms(frame, as_of)
    cols: dict[str, list[Any]] = {name: [int(v) for v in frame[name].tolist()] for name in TERMINAL_COLUMNS}
    return ids, _documents("terminal_id", ids, as_ofs, cols, TERMINAL_JSON_FIELDS[2:]), as_ofs
