"""Superset configuration for the platform (Docker Compose): metadata in Postgres, secrets from
the environment, business dashboards on the Gold tables through Trino."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = (
    f"postgresql+psycopg2://{os.environ['POSTGRES_USER']}:{os.environ['POSTGRES_PASSWORD']}"
    f"@{os.environ.get('POSTGRES_HOST', 'postgres')}:{os.environ.get('POSTGRES_PORT', '5432')}"
    f"/{os.environ.get('SUPERSET_DB', 'superset')}"
)
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
WTF_CSRF_ENABLED = True
