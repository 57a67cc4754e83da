"""Every chart of Superset's dashboards-as-code bundle runs its saved query on Gold through Trino,
with rows wherever its source has data. In the e2e tier, after tests/e2e/test_pipeline.py has built
Gold from its own history (on a fresh machine Gold does not exist before)."""

from __future__ import annotations

from typing import Any

import pytest

from common import trino_client
from tests import superset_support
from tests.superset_support import Bundle, SupersetApi

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]

# the shared fixtures of the Superset tests
bundle, api = superset_support.bundle, superset_support.api


def source_rows(dataset: dict[str, Any]) -> int:
    """Rows of a dataset's source in Gold: its table, or its SQL (a virtual dataset)."""
    source = f"({dataset['sql']})" if dataset.get("sql") else f"{dataset['schema']}.{dataset['table_name']}"
    return int(trino_client.scalar(f"SELECT count(*) FROM {source} AS t"))


def test_every_chart_query_runs_on_gold(bundle: Bundle, api: SupersetApi) -> None:
    charts = api.charts_by_uuid()
    has_data = {uuid: source_rows(doc) > 0 for uuid, doc in bundle.datasets.items()}
    assert any(has_data.values()), "Gold is empty: run the pipeline (make demo) before this test"
    failures = []
    for uuid, doc in bundle.charts.items():
        r = api.client.get(f"/api/v1/chart/{charts[uuid]['id']}/data/")
        if r.status_code != 200:
            failures.append(f"{doc['slice_name']}: HTTP {r.status_code} {r.text[:300]}")
            continue
        results = r.json()["result"]
        errors = [q["error"] for q in results if q.get("error")]
        rows = sum(int(q.get("rowcount") or 0) for q in results)
        if errors:
            failures.append(f"{doc['slice_name']}: {errors}")
        elif has_data[doc["dataset_uuid"]] and rows < 1:
            failures.append(f"{doc['slice_name']}: no rows although its Gold source has data")
    assert not failures, "\n".join(failures)
