"""``--inject-bad-rate``: every corruption is refused by the contract with its expected reason."""

from __future__ import annotations

import random

import pytest
from samples import good_event

from contracts.events import TransactionIn, ValidationFailure, validate
from producer.inject import CORRUPTIONS, EXPECTED, BadEventInjector


def failure(event: dict[str, object]) -> ValidationFailure:
    result = validate("transaction", event)
    assert isinstance(result, ValidationFailure), f"expected a failure, got {result!r}"
    return result


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_each_injected_corruption_is_refused_with_its_reason(kind: str) -> None:
    for seed in range(20):  # every random variant of the corruption
        event = good_event()
        CORRUPTIONS[kind](event, random.Random(seed))
        f = failure(event)
        reason, field = EXPECTED[kind]
        assert f.reason == reason, (kind, f)
        if field is not None:
            assert f.field == field, (kind, f)


def test_injector_rate_is_respected_deterministic_and_counted() -> None:
    events = [good_event(transaction_id=f"tx-{i}") for i in range(4000)]
    a, b = BadEventInjector(0.1, seed=3), BadEventInjector(0.1, seed=3)
    out_a = [a.maybe_corrupt(e) for e in events]
    out_b = [b.maybe_corrupt(e) for e in events]
    assert [k for _, k in out_a] == [k for _, k in out_b]
    corrupted = [k for _, k in out_a if k]
    assert 300 < len(corrupted) < 500
    assert sum(a.injected.values()) == len(corrupted)
    assert set(a.injected) == set(CORRUPTIONS) and all(a.injected.values())
    untouched = [e for (e, k) in out_a if k is None]
    assert all(isinstance(validate("transaction", e), TransactionIn) for e in untouched[:200])
    assert events[0] == good_event(transaction_id="tx-0")  # the source's events are not mutated


def test_injector_off_and_bounds() -> None:
    inj = BadEventInjector(0.0)
    event = good_event()
    assert inj.maybe_corrupt(event) == (event, None)
    with pytest.raises(ValueError, match="inject-bad-rate"):
        BadEventInjector(1.5)
