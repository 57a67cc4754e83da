"""The prediction log's COPY text rows: every value survives Postgres's text-format rules (tabs,
newlines, backslashes, NULL), including the request JSON, which carries user-supplied strings."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from serving.prediction_log import copy_line

_UNESCAPE = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def parse_copy_row(line: bytes) -> list[str | None]:
    """How Postgres reads one row of COPY text format (the subset copy_line writes)."""
    text = line.decode()
    assert text.endswith("\n") and text.count("\n") == 1, "a row is exactly one line"
    fields = text[:-1].split("\t")
    return [None if f == "\\N" else re.sub(r"\\[\\tnr]", lambda m: _UNESCAPE[m.group()], f) for f in fields]


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "tab\there",
        "line\nbreak and\r\nwindows",
        "back\\slash \\N \\t literally",
        orjson.dumps({"merchant_name": 'Café "Le\tBon"\n\\'}).decode(),
        "{0.1,2.5,-3.0}",
    ],
)
def test_strings_round_trip(value: str) -> None:
    assert parse_copy_row(copy_line(("a", value, "z"))) == ["a", value, "z"]


def test_none_is_null_and_numbers_are_their_str() -> None:
    values: tuple[Any, ...] = (None, 0.1 + 0.2, 3, "x")
    assert parse_copy_row(copy_line(values)) == [None, repr(0.1 + 0.2), "3", "x"]
