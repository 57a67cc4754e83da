"""The online-store encoding is exactly what serving decodes, and what the snapshot builder gives."""

from __future__ import annotations

import orjson
import pandas as pd
import pytest

import features
from contracts.online_store import OnlineLayout
from ml.gold import snapshot_query
from ml.online_encoding import CARD_COLUMNS, TERMINAL_COLUMNS, encode_cards, encode_terminals
from ml.pit import card_features_from_row, snapshot_frame, terminal_features_from_row


@pytest.fixture(scope="module")
def snapshot(small_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, object]:
    as_of = features.from_epoch_ms(int(small_frame["event_time_ms"].quantile(0.6)) + 17)
    cards, terms = snapshot_frame(small_frame, as_of)
    return cards, terms, as_of


def test_card_json_is_to_dict_of_the_reference_snapshot(snapshot: tuple) -> None:
    cards, _, as_of = snapshot
    ids, values, as_ofs = encode_cards(cards, as_of)
    assert ids == cards["card_id"].tolist() and set(as_ofs) == {features.to_epoch_ms(as_of)}
    with_last_missing = 0
    for row, value in zip(cards.to_dict("records"), values, strict=True):
        expected = card_features_from_row(row, as_of)
        doc = orjson.loads(value)
        assert doc == orjson.loads(orjson.dumps(expected.to_dict()))
        assert features.CardFeatures.from_dict(doc) == expected
        with_last_missing += doc["card_last_event_time"] is None
    assert len(values) > 100


def test_terminal_json_and_gold_style_frames(snapshot: tuple) -> None:
    _, terms, as_of = snapshot
    gold = terms.assign(as_of_ms=features.to_epoch_ms(as_of))  # Gold carries as_of per row
    _, values, _ = encode_terminals(gold)
    for row, value in zip(terms.to_dict("records"), values, strict=True):
        assert features.TerminalFeatures.from_dict(orjson.loads(value)) == terminal_features_from_row(
            row, as_of
        )


def test_gold_types_from_trino_round_trip() -> None:
    """Trino gives ints, floats, None and lists; the JSON must still read back exactly."""
    row = {
        "card_id": "c:1",
        "as_of_ms": 1_740_000_000_123,
        **{c: 0 for c in CARD_COLUMNS},
        "card_sum_amount_30d": 12.34,
        "card_last_event_time_ms": None,
        "card_last_latitude": None,
        "card_last_longitude": None,
        "card_recent_terminal_ids": ["t1", "t2"],
        "card_recent_device_ids": None,
        "card_recent_countries": [],
    }
    (card_id,), (value,), _ = encode_cards(pd.DataFrame([row]))
    card = features.CardFeatures.from_dict(orjson.loads(value))
    assert card_id == "c:1" and card.card_sum_amount_30d == 12.34
    assert card.as_of == features.from_epoch_ms(1_740_000_000_123)
    assert card.card_last_event_time is None and card.card_recent_terminal_ids == ("t1", "t2")
    assert card.card_recent_device_ids == ()


def test_layout_and_query() -> None:
    layout = OnlineLayout("features")
    assert layout.pointer == "features:current"
    assert layout.card("12", "c1") == "features:v12:card:c1"
    assert layout.terminal("12", "t1") == "features:v12:terminal:t1"
    assert layout.meta("12") == "features:v12:meta"
    q = snapshot_query("gold.card_features_latest", "card", "delta")
    assert q.startswith("SELECT card_id, date_diff('millisecond', from_unixtime(0), as_of) AS as_of_ms")
    assert q.endswith("FROM delta.gold.card_features_latest") and all(c in q for c in CARD_COLUMNS)
    assert "FROM other.gold.t" in snapshot_query("other.gold.t", "terminal", "delta")
    assert all(c in snapshot_query("gold.t", "terminal", "delta") for c in TERMINAL_COLUMNS)
    for bad in ("gold.t; DROP TABLE x", "a.b.c.d", "gold.t --"):
        with pytest.raises(ValueError):
            snapshot_query(bad, "card", "delta")
    with pytest.raises(ValueError):
        OnlineLayout("has space")
