"""The online feature state in Python: the arguments and replies of the scripts of
:mod:`contracts.online_store`, shared by serving (read + append, asyncio client), the online applier
(Kafka → append, labels) and the feature writer (seeding from Gold), so all three write the same
events the same way.

A card's aggregates are computed from its events by :func:`features.card_features_from_events`
(the definition ``ml.pit`` vectorises); a terminal's counts come from the script (ZCOUNT over the
windows, frauds known before the transaction's time), as :func:`ml.pit.terminal_snapshot` defines.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
import redis

import features
from contracts.online_store import (
    APPLY_SCRIPT,
    ARGS_PER_TXN,
    FRAUD_SCRIPT,
    HEADER_ARGS,
    LABEL_SCRIPT,
    MODE_APPEND,
    RETENTION_MS,
    OnlineLayout,
)

log = logging.getLogger(__name__)

#: The card window the script reads (the longest card window = the sets' window).
CARD_READ_WINDOW_MS: Final = max(features.CARD_WINDOWS.values())
#: Leading arguments of APPLY_SCRIPT: card window, retention, terminal windows (ascending).
WINDOW_ARGS: Final[tuple[int, ...]] = (
    CARD_READ_WINDOW_MS,
    RETENTION_MS,
    *(features.TERMINAL_WINDOWS[w] for w in ("7d", "30d", "90d")),
)
#: The script's six terminal counts, in reply order.
_TERMINAL_FIELDS: Final = tuple(
    f"terminal_count_{kind}_{w}" for kind in ("txn", "fraud") for w in ("7d", "30d", "90d")
)
#: Transactions per script call when applying many: Redis runs one script at a time, so a short
#: call (a few milliseconds) keeps what /predict waits behind it short.
APPLY_CHUNK: Final = 64

assert CARD_READ_WINDOW_MS == features.RECENT_WINDOW_MS
assert max(features.TERMINAL_WINDOWS.values()) < RETENTION_MS


def event_json(txn: features.Transaction, event_ms: int) -> bytes:
    """The event a card keeps of a transaction whose time is ``event_ms`` (what
    :func:`parse_event` reads back)."""
    return orjson.dumps(
        [
            txn.transaction_id,
            event_ms,
            features.amount_cents(txn.amount),
            txn.terminal_id,
            txn.latitude,
            txn.longitude,
            txn.device_id,
            txn.country,
        ]
    )


def parse_event(raw: bytes | str) -> features.CardEvent:
    return features.CardEvent(*orjson.loads(raw))


def parse_ref(raw: bytes | str) -> tuple[int, str]:
    """(event ms, terminal id) of a card's ``"<ms>:<terminal_id>"`` reference to a transaction."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, terminal_id = text.split(":", 1)
    return int(ms), terminal_id


def apply_call(
    layout: OnlineLayout, txns: Sequence[features.Transaction], mode: str
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one :data:`APPLY_SCRIPT` call over ``txns`` (in this order)."""
    keys: list[str] = []
    args: list[Any] = list(WINDOW_ARGS)
    for t in txns:
        keys.extend(layout.keys(t.card_id, t.terminal_id))
        ms = features.to_epoch_ms(t.event_time)
        args.extend((t.transaction_id, ms, event_json(t, ms), f"{ms}:{t.terminal_id}", mode))
    return keys, args


def newest_ms(args: Sequence[Any]) -> int:
    """The newest event time (ms) among the transactions of :func:`apply_call`'s ``args``."""
    return max(args[HEADER_ARGS + 1 :: ARGS_PER_TXN])


@dataclass(slots=True)
class Applied:
    """One transaction's aggregates as of its own time (None: unreadable → learnt defaults) and
    whether this call appended it (False: already known, or a read only)."""

    card: features.CardFeatures | None
    terminal: features.TerminalFeatures
    new: bool


def decode(txns: Sequence[features.Transaction], reply: Sequence[Any]) -> list[Applied]:
    """The script's reply → aggregates per transaction (see :data:`APPLY_SCRIPT`)."""
    out: list[Applied] = []
    for t, (events_raw, *counts) in zip(txns, reply, strict=True):
        as_of = t.event_time
        card: features.CardFeatures | None
        try:
            events = orjson.loads(events_raw)  # the script reads them in time order
            card = features.card_features_from_events(t.card_id, as_of, events, in_time_order=True)
        except (ValueError, TypeError, IndexError):
            log.warning("unreadable online events of card %r: using learnt defaults", t.card_id)
            card = None
        terminal = features.TerminalFeatures(
            t.terminal_id,
            as_of,
            **{name: int(v) for name, v in zip(_TERMINAL_FIELDS, counts[:6], strict=True)},
        )
        out.append(Applied(card, terminal, bool(counts[6])))
    return out


# --------------------------------------------------------------------------- synchronous clients


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _apply_calls(
    client: redis.Redis, layout: OnlineLayout, txns: Sequence[features.Transaction], mode: str
) -> Iterable[tuple[Sequence[features.Transaction], Any]]:
    """``txns`` in order through :data:`APPLY_SCRIPT`: (chunk, reply) per call of :data:`APPLY_CHUNK`."""
    script = client.register_script(APPLY_SCRIPT)
    for chunk in _chunks(txns, APPLY_CHUNK):
        keys, args = apply_call(layout, chunk, mode)
        yield chunk, script(keys=keys, args=args)


def apply_events(
    client: redis.Redis, layout: OnlineLayout, txns: Sequence[features.Transaction], mode: str = MODE_APPEND
) -> list[Applied]:
    """Apply ``txns`` in order and decode what each read."""
    return [a for chunk, reply in _apply_calls(client, layout, txns, mode) for a in decode(chunk, reply)]


def append_events(client: redis.Redis, layout: OnlineLayout, txns: Sequence[features.Transaction]) -> int:
    """Append ``txns`` (the applier, the seed): nothing is read, nothing decoded. Returns how many
    were new to the state (the others were known: idempotent by transaction id)."""
    return sum(int(r[7]) for _, reply in _apply_calls(client, layout, txns, MODE_APPEND) for r in reply)


@dataclass(frozen=True, slots=True)
class Label:
    """A fraud label: the transaction and its card (the label's key), when it became known."""

    transaction_id: str
    card_id: str
    label_ms: int


def apply_labels(client: redis.Redis, layout: OnlineLayout, labels: Sequence[Label]) -> tuple[int, int]:
    """Count frauds at their transactions' terminals from ``max(label, event)`` on, the rule of
    training (``ml.pit``). Returns (applied now, waiting for their transaction)."""
    label_script = client.register_script(LABEL_SCRIPT)
    fraud_script = client.register_script(FRAUD_SCRIPT)
    applied = waiting = 0
    for chunk in _chunks(labels, APPLY_CHUNK):
        keys: list[str] = []
        args: list[Any] = [RETENTION_MS]
        for lb in chunk:
            ev, _t, lbl = layout.card(lb.card_id)
            keys.extend((ev, lbl))
            args.extend((lb.transaction_id, lb.label_ms))
        found = label_script(keys=keys, args=args)
        f_keys: list[str] = []
        f_args: list[Any] = [RETENTION_MS]
        for lb, raw in zip(chunk, found, strict=True):
            if not raw:
                waiting += 1
                continue
            event_ms, terminal_id = parse_ref(raw)
            _tz, tf, tk = layout.terminal(terminal_id)
            f_keys.extend((tf, tk))
            f_args.extend((lb.transaction_id, event_ms, max(lb.label_ms, event_ms)))
            applied += 1
        if f_keys:
            fraud_script(keys=f_keys, args=f_args)
    return applied, waiting


def state_bytes(client: redis.Redis, layout: OnlineLayout, sample: int = 2000) -> dict[str, Any]:
    """Measured Redis memory of the state (``MEMORY USAGE`` of a sample of keys): bytes per card
    (its 3 keys) and per terminal, and the projection to 1 M cards."""
    per: dict[str, list[int]] = {"card": [], "terminal": []}
    cards: dict[str, int] = {}
    terms: dict[str, int] = {}
    for key in client.scan_iter(match=layout.pattern(), count=5000):
        name = key.decode() if isinstance(key, bytes) else key
        if ":{c:" in name:
            group, target = name.rsplit(":", 1)[0], cards
        elif ":{t:" in name:
            group, target = name.rsplit(":", 1)[0], terms
        else:
            continue
        if group not in target and len(target) >= sample:
            continue
        target[group] = target.get(group, 0) + int(client.memory_usage(key, samples=0) or 0)
    per["card"] = list(cards.values())
    per["terminal"] = list(terms.values())
    mean = {k: (sum(v) / len(v) if v else math.nan) for k, v in per.items()}
    return {
        "cards_sampled": len(per["card"]),
        "terminals_sampled": len(per["terminal"]),
        "bytes_per_card": round(mean["card"], 1),
        "bytes_per_terminal": round(mean["terminal"], 1),
        "projected_gib_1m_cards": round(mean["card"] * 1_000_000 / 2**30, 3),
    }
