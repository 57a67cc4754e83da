"""The stream's quality rules and the contract the producer and the API validate with are one rule
set: on any record the stream can decode, both accept or both refuse, with the same reason and field
(the stream's own freshness rules aside)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from samples import good_event

from contracts.events import AMOUNT_MAX, ID_MAX_LENGTH, ValidationFailure, validate
from streaming.quality import FRESHNESS_REASONS, first_failure, transaction_rules
from streaming.settings import StreamingSettings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RULES = tuple(r for r in transaction_rules(StreamingSettings()) if r.reason not in FRESHNESS_REASONS)

VALID = good_event(event_time=NOW - timedelta(minutes=1), amount=Decimal("42.10"), device_id="dev-1")
ids = st.one_of(
    st.sampled_from([None, "", " ", "\t", " \n ", "\u00a0", "\u00a0x", "ok"]),
    st.integers(ID_MAX_LENGTH - 1, ID_MAX_LENGTH + 1).map(lambda n: "x" * n),
)
#: per field, values at and around the contract's edges (valid ones included)
EDGES: dict[str, st.SearchStrategy[Any]] = {
    "transaction_id": ids,
    "card_id": ids,
    "customer_id": ids,
    "terminal_id": ids,
    "device_id": ids,
    "merchant_name": st.one_of(st.none(), st.integers(510, 514).map(lambda n: "m" * n)),
    "amount": st.one_of(
        st.just(None),
        st.integers(-200, 10**12 + 5).map(lambda cents: Decimal(cents).scaleb(-2)),
        st.sampled_from([Decimal(0), Decimal("0.01"), AMOUNT_MAX, AMOUNT_MAX + Decimal("0.01")]),
    ),
    "currency": st.sampled_from([None, "EUR", "GBP", "eur", "XXX", "BTC", ""]),
    "mcc": st.sampled_from([None, "5411", "0742", "541", "54111", "abcd", ""]),
    "channel": st.sampled_from([None, "online", "card_present", "atm", ""]),
    "latitude": st.one_of(st.none(), st.floats(-95, 95), st.just(float("nan"))),
    "longitude": st.one_of(st.none(), st.floats(-185, 185), st.just(float("inf"))),
    "country": st.sampled_from([None, "FR", "GB", "XK", "fr", "", "FRA"]),
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid record with one or two fields drawn from their edges."""
    fields = draw(st.lists(st.sampled_from(sorted(EDGES)), min_size=1, max_size=2, unique=True))
    return {**VALID, **{f: draw(EDGES[f]) for f in fields}}


def producer_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the producer would be given: the stream reads an absent field as null."""
    return {k: v for k, v in record.items() if v is not None}


@settings(max_examples=3000, deadline=None)
@given(records())
def test_the_stream_and_the_contract_decide_alike(record: dict[str, Any]) -> None:
    stream = first_failure(RULES, record, NOW)
    contract = validate("transaction", producer_view(record))
    if stream is None:
        assert not isinstance(contract, ValidationFailure), contract
        return
    assert isinstance(contract, ValidationFailure), f"the stream refuses ({stream}) what the contract accepts"
    # one faulty field: the same reason for it (several: each names its first, in its own order)
    if len({rule.field for rule in RULES if not rule.passes(record, NOW)}) == 1:
        assert (contract.reason, contract.field) == (stream.reason, stream.field), (contract, stream)
