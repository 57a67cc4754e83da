"""``python -m streaming`` (see streaming/cli.py)."""

from streaming.cli import app

app()
