"""The Grafana dashboards of monitoring/grafana/dashboards/, checked without Grafana: their shape,
their datasource, their provisioning, and that every platform metric a panel reads is one the code
exports. tests/e2e/test_dashboards.py runs every query on the live Prometheus."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from common.dashboards import PanelQuery, load_dashboards, panels, queries, series_count, substitute

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "monitoring" / "grafana"
PANEL_TYPES = {"timeseries", "stat", "bargauge", "table"}
# Packages whose code defines the fraud_* metrics (prometheus_client names, without suffixes).
METRIC_SOURCES = ("producer", "streaming", "serving", "ml", "common")


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return load_dashboards()


def provisioned_datasource_uid() -> str:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = [d for d in config["datasources"] if d["type"] == "prometheus"]
    return str(prometheus["uid"])


def test_three_dashboards_with_stable_uids_tags_and_time(dashboards: list[dict[str, Any]]) -> None:
    assert len(dashboards) >= 3
    uids = [d.get("uid") for d in dashboards]
    assert all(uids) and len(set(uids)) == len(uids), uids
    for d in dashboards:
        assert d["title"] and "fraud-platform" in d["tags"], d["uid"]
        assert d["schemaVersion"] == 39
        assert d["time"]["from"] == "now-1h" and d["refresh"] == "30s"


def test_panels_are_many_unique_and_read_the_provisioned_prometheus(dashboards: list[dict[str, Any]]) -> None:
    uid = provisioned_datasource_uid()
    total = 0
    for d in dashboards:
        ps = list(panels(d))
        total += len(ps)
        ids = Counter(p.get("id") for p in ps)
        assert None not in ids and max(ids.values()) == 1, (d["uid"], ids)
        for p in ps:
            assert p["type"] in PANEL_TYPES, (d["uid"], p["title"])
            assert p["title"] and p["gridPos"]["w"] > 0 and p["gridPos"]["h"] > 0
            assert p["datasource"] == {"type": "prometheus", "uid": uid}, (d["uid"], p["title"])
            assert p["targets"], (d["uid"], p["title"])
            refs = [t.get("refId") for t in p["targets"]]
            assert all(refs) and len(set(refs)) == len(refs), (d["uid"], p["title"], refs)
            for t in p["targets"]:
                assert t.get("datasource", {"uid": uid})["uid"] == uid, (d["uid"], p["title"])
    assert total >= 30


def _balanced(expr: str) -> bool:
    """Brackets paired and quotes closed, outside string literals (PromQL's own parser is the e2e
    test's job: Prometheus answers a bad query with an error)."""
    pairs, stack, quote = {")": "(", "]": "[", "}": "{"}, [], ""
    for ch in expr:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not quote


def test_every_target_is_a_plausible_promql_expression(dashboards: list[dict[str, Any]]) -> None:
    bad = []
    for q in queries(dashboards):
        expr = substitute(q.expr)
        if not q.ref_id or not expr.strip() or "$__" in expr or not _balanced(expr):
            bad.append(str(q))
    assert not bad, "\n".join(bad)


def _defined_metric_names() -> str:
    return "\n".join(path.read_text() for pkg in METRIC_SOURCES for path in (ROOT / pkg).rglob("*.py"))


def test_every_platform_metric_a_panel_reads_is_exported_by_the_code(
    dashboards: list[dict[str, Any]],
) -> None:
    """No invented metric: every fraud_* name (its _total/_bucket/... suffix removed) is a string in
    the code that exports it."""
    code = _defined_metric_names()
    missing = set()
    for q in queries(dashboards):
        for name in re.findall(r"\bfraud_[a-z0-9_]+", q.expr):
            base = re.sub(r"_(total|bucket|sum|count|created)$", "", name)
            if f'"{name}"' not in code and f'"{base}"' not in code:
                missing.add(f"{name} ({q.dashboard} / {q.panel})")
    assert not missing, "metrics no code exports:\n" + "\n".join(sorted(missing))


def test_provisioning_reads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/dashboards.yml").read_text())
    (path,) = [p["options"]["path"] for p in provider["providers"]]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = [v.split(":") for v in compose["services"]["grafana"]["volumes"]]
    assert ["./monitoring/grafana/dashboards", path, "ro"] in mounts, mounts
    assert (ROOT / "monitoring/grafana/dashboards").is_dir()


def test_substitute_replaces_grafana_variables_and_leaves_regex_groups() -> None:
    expr = 'label_replace(rate(x[$__rate_interval]), "a", "$1", "b", "(.+)") + increase(y[${__range}])'
    assert substitute(expr, range_="60m") == (
        'label_replace(rate(x[1m]), "a", "$1", "b", "(.+)") + increase(y[60m])'
    )
    assert substitute("x[$__interval] * $__range_s", range_="2h", interval="15s") == "x[15s] * 7200"
    with pytest.raises(ValueError, match="__rate_intervall"):
        substitute("rate(x[$__rate_intervall])")


def test_queries_name_their_dashboard_panel_and_ref() -> None:
    board = {"title": "D", "panels": [{"type": "row", "panels": [{"title": "P", "targets": [
        {"refId": "A", "expr": "up"}]}]}]}  # fmt: skip
    assert list(queries([board])) == [PanelQuery("D", "P", "A", "up")]


def test_series_count_runs_a_range_query_over_the_window() -> None:
    seen: dict[str, str] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.update(request.url.params)
        assert request.url.path == "/api/v1/query_range"
        if "bad" in seen["query"]:
            return httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse"})
        result = [{"metric": {"job": "a"}, "values": []}, {"metric": {"job": "b"}, "values": []}]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    n = series_count("http://prom:9090/", "sum(rate(up[$__rate_interval]))", 30, client=client, now=10_000)
    assert n == 2
    assert seen["query"] == "sum(rate(up[1m]))"
    assert (float(seen["start"]), float(seen["end"])) == (10_000 - 1800, 10_000)
    with pytest.raises(ValueError, match="bad_data"):
        series_count("http://prom:9090", "bad(", client=client)
