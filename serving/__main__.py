"""``python -m serving``: the API under uvicorn (one process; port SERVING_PORT)."""

from __future__ import annotations

import os

# before numpy / LightGBM load: one OpenMP thread (micro-batches are small; see serving.scoring)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import uvicorn

from common.logs import setup_logging
from serving.settings import get_settings


def main() -> None:
    level = setup_logging()
    s = get_settings()
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=s.host,
        port=s.port,
        loop="uvloop",
        http="httptools",
        access_log=s.access_log,
        log_config=None,
        log_level=level.lower(),
        timeout_graceful_shutdown=10,
        server_header=False,
    )


if __name__ == "__main__":
    main()
