"""When the streaming service runs its first Bronze maintenance (pure scheduling logic)."""

from __future__ import annotations

import pytest

from streaming import maintenance
from streaming.maintenance import FIRST_DELAY_S, MaintenanceScheduler
from streaming.settings import StreamingSettings

HOUR = 3600.0


def scheduler(
    monkeypatch: pytest.MonkeyPatch, ages: dict[str, float | None] | Exception
) -> MaintenanceScheduler:
    def age(spec: object) -> float | None:
        if isinstance(ages, Exception):
            raise ages
        return ages[spec.table]  # type: ignore[attr-defined]

    monkeypatch.setattr(maintenance, "last_maintenance_age_s", age)
    return MaintenanceScheduler(None, StreamingSettings(), interval_s=6 * HOUR)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tx_age", "labels_age", "expected"),
    [
        (None, None, FIRST_DELAY_S),  # never maintained: soon after start
        (1 * HOUR, None, FIRST_DELAY_S),  # one table never maintained
        (1 * HOUR, 5 * HOUR, 1 * HOUR),  # the oldest is due in an hour
        (2 * HOUR, 30 * HOUR, FIRST_DELAY_S),  # overdue
        (0.0, 0.0, 6 * HOUR),  # just done (by an earlier run of the service)
    ],
)
def test_first_run_is_when_the_most_overdue_table_is_due(
    monkeypatch: pytest.MonkeyPatch, tx_age: float | None, labels_age: float | None, expected: float
) -> None:
    s = StreamingSettings()
    sched = scheduler(monkeypatch, {s.transactions_table: tx_age, s.labels_table: labels_age})
    assert sched.first_wait_s() == pytest.approx(expected)


def test_unreadable_log_falls_back_to_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scheduler(monkeypatch, OSError("store down")).first_wait_s() == 6 * HOUR
