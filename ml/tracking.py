"""Where MLflow is: the tracking URI (argument or ``MLFLOW_TRACKING_URI``) and a scope that points
the ``mlflow`` module at it, for training, the model registry and serving alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
from mlflow import MlflowClient

# Artifacts always travel through the tracking server. Left to the server's advertisement, a
# client downloads from presigned URLs that name the object store as the *server* reaches it
# (http://object-store:9000 inside the compose network), which a client on the host cannot
# resolve: it would retry for minutes. An explicit setting of the user's wins.
os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")


def resolve_uri(uri: str | None = None) -> str:
    """``uri`` or ``MLFLOW_TRACKING_URI``; a clear error when neither is set."""
    resolved = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not resolved:
        raise ValueError("no MLflow tracking URI: pass tracking_uri or set MLFLOW_TRACKING_URI")
    return resolved


def client(uri: str | None = None) -> MlflowClient:
    resolved = resolve_uri(uri)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


@contextmanager
def mlflow_tracking(uri: str) -> Iterator[None]:
    """Point MLflow at ``uri`` (tracking and registry) for the duration of the block."""
    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
