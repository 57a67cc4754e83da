"""``python -m ml`` (see ml/cli.py)."""

from ml.cli import app

app()
