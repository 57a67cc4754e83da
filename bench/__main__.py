"""``python -m bench`` (see bench/runner.py)."""

from bench.runner import app

app()
