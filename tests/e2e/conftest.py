"""Order of the e2e session: tests marked ``after_traffic`` read what the others did (metrics of
the traffic they made), so they run last, whatever order the files were collected in."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Moves ``@pytest.mark.after_traffic`` items to the end of the session, keeping both groups'
    order."""
    late = [item for item in items if item.get_closest_marker("after_traffic")]
    if late:
        items[:] = [item for item in items if not item.get_closest_marker("after_traffic")] + late
