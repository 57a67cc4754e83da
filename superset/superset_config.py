"""Superset configuration for the platform (both runtimes): metadata in Postgres (database
SUPERSET_DB), secrets from the environment, business dashboards on the Gold tables through Trino.
Read by Superset through SUPERSET_CONFIG_PATH (infra/local/services/superset.sh sets it)."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = (
    f"postgresql+psycopg2://{os.environ['POSTGRES_USER']}:{os.environ['POSTGRES_PASSWORD']}"
    f"@{os.environ.get('POSTGRES_HOST', 'localhost')}:{os.environ.get('POSTGRES_PORT', '5432')}"
    f"/{os.environ.get('SUPERSET_DB', 'superset')}"
)
# small pools: one web worker with a few threads
SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 5, "max_overflow": 5, "pool_pre_ping": True}
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
WTF_CSRF_ENABLED = True
# the platform's dashboards only: no example data, no thumbnails or reports (no Celery workers)
SUPERSET_LOAD_EXAMPLES = False
THUMBNAILS_AUTO_UPDATE = False
# per-process caches: nothing else to run (no Redis dependency for a dashboard server)
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 60}
RATELIMIT_STORAGE_URI = "memory://"
# Gold queries on a laptop-sized Trino: give them time, in the web server and in SQL Lab
SUPERSET_WEBSERVER_TIMEOUT = 120
SQLLAB_TIMEOUT = 120
ROW_LIMIT = 10000
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
