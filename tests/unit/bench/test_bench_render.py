"""docs/benchmarks.md and the README's figures are exactly what `make bench` rendered from its report:
a figure edited by hand, or a report newer than the page, fails here."""

from __future__ import annotations

from typing import Any

from bench import render


def test_the_committed_page_and_readme_block_are_the_rendering_of_the_page_source() -> None:
    text = render.DOCS.read_text()
    report = render.source_of(text)
    assert report.get("sections"), "docs/benchmarks.md carries no bench report: run `make bench`"
    assert text == render.page(report), "docs/benchmarks.md was edited by hand: run `make bench`"
    block = render.readme_block(render.README.read_text())
    assert block == render.headline(report), "the README's figures differ from docs/benchmarks.md"


def _report(**serving: Any) -> dict[str, Any]:
    section = {"_measured_at": "2026-12-01T10:00:00Z", "load_avg_1m_before": 1.5, **serving}
    return {"sections": {"serving": section}, "machine": {"cpus": 2, "python": "3.11", "platform": "x"}}


def test_goals_are_judged_in_their_direction() -> None:
    text = render.headline(_report(predict_rps=2500.0, predict_p99_ms=21.0))
    row = "| /predict read + append, 32 connections, one process | 2,500 req/s | ≥ 2,000 req/s: met |"
    assert row in text
    assert "| /predict p99 at 32 connections | 21 ms | ≤ 15 ms: **not met** |" in text
    assert "feature writer" not in text  # a figure the report lacks is left out, not invented


def test_the_page_round_trips_through_its_source(tmp_path: Any) -> None:
    report = _report(predict_rps=1234.5, rounds=[{"rps": 1}], note="n")
    page = render.page(report)
    assert render.source_of(page) == report
    assert "| `predict_rps` | 1,234.5 |" in page and "| `note` | n |" in page
    assert "rounds" not in page.split("## Source")[0]  # nested values only in the source block
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{render.BEGIN}\nstale\n{render.END}\noutro\n")
    render.write_docs(report, docs=tmp_path / "benchmarks.md", readme=readme)
    assert render.readme_block(readme.read_text()) == render.headline(report)
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("outro\n")
