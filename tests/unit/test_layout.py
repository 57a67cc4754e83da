"""The layout holds: features.py stays pure, modules stay small enough to read, parts stay documented.

The layer rules between packages are import-linter's (``make lint``, pyproject.toml); features.py is
a module, not a package, so its own imports are checked here.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what features.py may import: the standard library and numpy, nothing of the platform, no I/O
FEATURES_MAY_IMPORT = {
    "__future__", "bisect", "math", "collections", "dataclasses", "datetime", "typing", "numpy",
}  # fmt: skip
MAX_MODULE_LINES = 400
LONGER_ON_PURPOSE = {
    "producer/simulator.py",  # one vectorised generator per scenario, read top to bottom
    "features.py",  # the one definition of the vector, one file by design (training and serving import it)
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_features_imports_nothing_but_the_standard_library_and_numpy() -> None:
    assert _imports(ROOT / "features.py") <= FEATURES_MAY_IMPORT


def _tracked_python() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    long = {
        f: n
        for f in _tracked_python()
        if f not in LONGER_ON_PURPOSE and (n := len((ROOT / f).read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules above {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize(
    "part", ["producer", "streaming", "dbt", "airflow", "ml", "serving", "monitoring", "infra", "bench"]
)
def test_each_part_has_a_short_readme_that_says_how_to_run_and_test_it(part: str) -> None:
    text = (ROOT / part / "README.md").read_text()
    assert len(text.splitlines()) <= 60, f"{part}/README.md: design notes belong in docs/design/"
    assert "## Run" in text and "## Test" in text


def test_no_readme_carries_figures_by_hand() -> None:
    """Figures live in docs/benchmarks.md, generated; a README may only hold the generated block."""
    from bench.render import BEGIN, END

    for readme in [ROOT / "README.md", *ROOT.glob("*/README.md")]:
        text = readme.read_text()
        if BEGIN in text:
            text = text.split(BEGIN)[0] + text.split(END)[1]
        assert "req/s" not in text and "msgs/s" not in text and "events/s" not in text, readme
