"""Superset on the running stack: the dashboards-as-code bundle (superset/assets) is what Superset
serves, its database is this runtime's Trino, and the bootstrap import is idempotent (run again,
nothing is duplicated). That every chart's query runs on Gold is tests/e2e/test_superset_charts.py,
after the e2e tier has built Gold."""

from __future__ import annotations

import pytest

from common.settings import trino_settings
from tests import superset_support
from tests.superset_support import Bundle, SupersetApi, run_bootstrap

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]

# the shared fixtures of the Superset tests
bundle, api = superset_support.bundle, superset_support.api


def test_the_bundle_is_what_superset_serves(bundle: Bundle, api: SupersetApi) -> None:
    assert len(bundle.dashboards) >= 3 and len(bundle.charts) >= 12
    charts = api.charts_by_uuid()
    missing = sorted(doc["slice_name"] for uuid, doc in bundle.charts.items() if uuid not in charts)
    assert not missing, f"charts of the bundle missing from Superset: {missing}"
    for uuid, doc in bundle.dashboards.items():
        dashboard = api.get(f"/api/v1/dashboard/{doc['slug']}")["result"]
        assert dashboard["dashboard_title"] == doc["dashboard_title"]
        served = {c["id"] for c in api.get(f"/api/v1/dashboard/{doc['slug']}/charts")["result"]}
        wanted = {charts[c]["id"] for c in bundle.dashboard_charts(uuid)}
        assert served == wanted, f"dashboard {doc['slug']}: charts differ from its layout"


def test_the_database_points_at_this_runtimes_trino(bundle: Bundle, api: SupersetApi) -> None:
    (db_uuid,) = bundle.databases
    rows = api.listing("database", ("id", "uuid", "database_name"))
    (db_id,) = [r["id"] for r in rows if r["uuid"] == db_uuid]
    uri = api.get(f"/api/v1/database/{db_id}/connection")["result"]["sqlalchemy_uri"]
    assert "${" not in uri, f"the database address was not rendered: {uri}"
    t = trino_settings()
    assert uri.startswith(f"trino://{t.trino_user}@") and uri.endswith(f":{t.trino_port}/{t.trino_catalog}")


def test_the_bootstrap_import_is_idempotent(bundle: Bundle, api: SupersetApi) -> None:
    before = api.counts()
    for _ in range(2):
        forced = run_bootstrap("--force")
        assert forced.returncode == 0, forced.stderr[-3000:]
        assert "imported the asset bundle" in forced.stderr
    assert api.counts() == before
    charts = api.listing("chart", ("id", "uuid", "slice_name"))
    names = [c["slice_name"] for c in charts if c["uuid"] in bundle.charts]
    assert sorted(names) == sorted(doc["slice_name"] for doc in bundle.charts.values())
    # unchanged bundle: the service's start skips the import
    again = run_bootstrap()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "up to date" in again.stderr and "skipped" in again.stderr
