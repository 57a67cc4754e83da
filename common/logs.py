"""One logging set-up for every command and service: ``LOG_LEVEL``, one format, quiet clients.

Services and CLIs call :func:`setup_logging` once, at start (never at import). On a terminal the
lines go through rich (colours, aligned levels); otherwise (a service's log file, CI) one plain
line per record with its timestamp, level and logger name.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

from common.settings import FraudEnv

FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: client libraries that log every request at INFO
QUIET: Final = ("httpx", "httpx2", "httpcore", "urllib3", "py4j", "botocore", "mlflow.tracking")


def setup_logging(level: str | None = None, *, rich: bool | None = None, console: Any = None) -> str:
    """Configure the root logger (replacing earlier handlers); returns the level used.

    ``level`` defaults to ``LOG_LEVEL``; ``rich`` defaults to "stderr is a terminal"; ``console``
    is the rich console to log through (the one that draws a progress bar, so they do not clash).
    """
    name = (level or FraudEnv().log_level).upper()
    handler: logging.Handler
    if rich if rich is not None else sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=name, handlers=[handler], force=True)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    return name
