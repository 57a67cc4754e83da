"""A circuit breaker (closed / open / half-open) for calls from one asyncio event loop.

Why a small class rather than a library: the maintained Python breakers are either synchronous
(``pybreaker``: its async path needs Tornado), decorator-based with module-global state
(``circuitbreaker``), or unmaintained (``aiobreaker``, last release 2021). Serving needs a
permit-style API (ask, call with its own timeout, report), a bounded number of half-open trial
calls, state-change hooks for metrics, and an injectable clock so the state machine is tested
without sleeping. The per-call timeout lives with the caller (``asyncio.timeout``) and a timeout
counts as a failure here.

* **closed**: calls pass; ``failure_threshold`` consecutive failures open the breaker.
* **open**: calls are refused (the caller falls back at once) until ``reset_timeout_s`` passed.
* **half-open**: up to ``half_open_max_calls`` trial calls pass at a time, the others are refused;
  ``success_threshold`` consecutive trial successes close the breaker, one failure re-opens it.

Single-threaded by design (the event loop's thread): no locks.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class State(enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open (the ``fraud_api_redis_breaker_state`` value)."""
        return {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}[self]


@dataclass
class Permit:
    """One admitted call; report it exactly once with :meth:`CircuitBreaker.success` / ``failure``."""

    trial: bool
    epoch: int
    done: bool = False


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 5
    reset_timeout_s: float = 5.0
    half_open_max_calls: int = 1
    success_threshold: int = 1
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[State, State], None] | None = None
    _state: State = field(default=State.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _successes: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _trials: int = field(default=0, init=False)
    _epoch: int = field(default=0, init=False)
    #: how many calls were refused because the breaker was open or its trial slots taken
    rejected: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_max_calls < 1 or self.success_threshold < 1:
            raise ValueError("failure_threshold, half_open_max_calls and success_threshold must be >= 1")
        if self.reset_timeout_s < 0:
            raise ValueError("reset_timeout_s must be >= 0")

    @property
    def state(self) -> State:
        """Current state; an open breaker whose reset timeout passed reads as half-open."""
        if self._state is State.OPEN and self.clock() - self._opened_at >= self.reset_timeout_s:
            self._move(State.HALF_OPEN)
        return self._state

    def acquire(self) -> Permit | None:
        """A permit to call, or None: the call must not be made (fall back instead)."""
        state = self.state
        if state is State.CLOSED:
            return Permit(trial=False, epoch=self._epoch)
        if state is State.HALF_OPEN and self._trials < self.half_open_max_calls:
            self._trials += 1
            return Permit(trial=True, epoch=self._epoch)
        self.rejected += 1
        return None

    def success(self, permit: Permit) -> None:
        if not self._finish(permit):
            return
        if self._state is State.HALF_OPEN:
            self._successes += 1
            if self._successes >= self.success_threshold:
                self._move(State.CLOSED)
        elif self._state is State.CLOSED:
            self._failures = 0

    def failure(self, permit: Permit) -> None:
        if not self._finish(permit):
            return
        if self._state is State.HALF_OPEN:
            self._open()
        elif self._state is State.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (the call was cancelled before it finished)."""
        self._finish(permit)

    def _finish(self, permit: Permit) -> bool:
        if permit.done:
            return False
        permit.done = True
        # an answer to a call admitted before the last state change says nothing about now
        if permit.epoch != self._epoch:
            return False
        if permit.trial:
            self._trials -= 1
        return True

    def _open(self) -> None:
        self._opened_at = self.clock()
        self._move(State.OPEN)

    def _move(self, new: State) -> None:
        old = self._state
        self._state = new
        self._failures = 0
        self._successes = 0
        self._trials = 0
        self._epoch += 1
        if old is not new:
            log.warning("circuit breaker %s: %s -> %s", self.name, old.value, new.value)
            if self.on_change is not None:
                self.on_change(old, new)
