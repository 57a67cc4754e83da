"""Dependencies of the routes, as ``Annotated`` aliases. The services live in
``app.state.services`` (set by the lifespan; unit tests set them to fakes), so ``/predict``, which
skips dependency injection on its hot path, calls :func:`get_services` itself. All ``async def``:
FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request for a
dictionary lookup."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from serving.service import Services
from serving.settings import ServingSettings

API_KEY_HEADER = "X-API-Key"
_api_key = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="required when SERVING_API_KEYS is set"
)


async def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:  # only before the lifespan started (or after it ended)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "service is starting or stopping")
    return services


async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def key_matches(given: bytes, keys: tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok


async def require_api_key(request: Request, key: Annotated[str | None, Security(_api_key)] = None) -> None:
    keys: tuple[bytes, ...] = request.app.state.api_keys
    if not keys:
        return
    if key is None or not key_matches(key.encode(), keys):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing or invalid API key (header {API_KEY_HEADER})",
            headers={"WWW-Authenticate": "ApiKey"},
        )


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
ApiKeyDep = Depends(require_api_key)
