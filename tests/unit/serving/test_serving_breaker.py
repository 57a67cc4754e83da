"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest

from serving.breaker import CircuitBreaker, State


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**kw: object) -> tuple[CircuitBreaker, Clock, list[tuple[State, State]]]:
    clock = Clock()
    changes: list[tuple[State, State]] = []
    params: dict[str, object] = {"failure_threshold": 3, "reset_timeout_s": 5.0, **kw}
    breaker = CircuitBreaker("test", clock=clock, on_change=lambda o, n: changes.append((o, n)), **params)  # type: ignore[arg-type]
    return breaker, clock, changes


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        p = b.acquire()
        assert p is not None
        b.failure(p)


def succeed(b: CircuitBreaker) -> None:
    p = b.acquire()
    assert p is not None
    b.success(p)


def test_opens_after_threshold_consecutive_failures_and_refuses_calls() -> None:
    b, _, changes = make()
    fail(b, 2)
    assert b.state is State.CLOSED
    fail(b)
    assert b.state is State.OPEN
    assert changes == [(State.CLOSED, State.OPEN)]
    assert b.acquire() is None and b.acquire() is None
    assert b.rejected == 2


def test_a_success_resets_the_consecutive_failure_count() -> None:
    b, _, _ = make()
    fail(b, 2)
    succeed(b)
    fail(b, 2)
    assert b.state is State.CLOSED
    fail(b)
    assert b.state is State.OPEN


def test_half_open_after_reset_timeout_admits_one_trial_then_closes_on_success() -> None:
    b, clock, changes = make()
    fail(b, 3)
    clock.now += 4.9
    assert b.state is State.OPEN and b.acquire() is None
    clock.now += 0.2
    assert b.state is State.HALF_OPEN
    trial = b.acquire()
    assert trial is not None and trial.trial
    assert b.acquire() is None  # one trial at a time
    b.success(trial)
    assert b.state is State.CLOSED
    assert changes == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    succeed(b)


def test_a_failed_trial_reopens_for_a_full_reset_timeout() -> None:
    b, clock, _ = make()
    fail(b, 3)
    clock.now += 5
    trial = b.acquire()
    assert trial is not None
    b.failure(trial)
    assert b.state is State.OPEN
    clock.now += 4
    assert b.acquire() is None
    clock.now += 1
    assert b.state is State.HALF_OPEN


def test_success_threshold_and_several_trial_slots() -> None:
    b, clock, _ = make(half_open_max_calls=2, success_threshold=2)
    fail(b, 3)
    clock.now += 5
    t1, t2 = b.acquire(), b.acquire()
    assert t1 is not None and t2 is not None and b.acquire() is None
    b.success(t1)
    assert b.state is State.HALF_OPEN
    b.success(t2)
    assert b.state is State.CLOSED


def test_a_released_trial_frees_its_slot_without_a_verdict() -> None:
    b, clock, _ = make()
    fail(b, 3)
    clock.now += 5
    trial = b.acquire()
    assert trial is not None
    b.release(trial)  # the request was cancelled
    assert b.state is State.HALF_OPEN
    again = b.acquire()
    assert again is not None
    b.success(again)
    assert b.state is State.CLOSED


def test_late_answers_from_before_a_state_change_are_ignored() -> None:
    b, clock, _ = make()
    slow = b.acquire()  # admitted while closed, answers after the breaker opened
    assert slow is not None
    fail(b, 3)
    assert b.state is State.OPEN
    b.success(slow)  # must not close it
    assert b.state is State.OPEN
    clock.now += 5
    trial = b.acquire()
    assert trial is not None
    b.failure(slow)  # reporting twice does nothing either
    b.success(trial)
    assert b.state is State.CLOSED


def test_each_permit_counts_once() -> None:
    b, _, _ = make()
    p = b.acquire()
    assert p is not None
    b.failure(p)
    b.failure(p)
    b.failure(p)
    assert b.state is State.CLOSED


def test_gauge_values_and_validation() -> None:
    assert [s.gauge for s in (State.CLOSED, State.HALF_OPEN, State.OPEN)] == [0, 1, 2]
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", reset_timeout_s=-1)
