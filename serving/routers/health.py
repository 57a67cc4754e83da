"""Liveness (``/health``: the process answers) and readiness (``/ready``: a model is loaded)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.deps import ServicesDep
from serving.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness: the process answers")
async def health() -> JSONResponse:
    return JSONResponse(content={"status": "ok"})


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "no model loaded yet"}},
    summary="Readiness: a model is loaded (and the Redis breaker state, prediction log status)",
)
async def ready(services: ServicesDep) -> JSONResponse:
    body = ReadyOut(
        ready=services.models.current is not None,
        model=services.models.describe(),
        online_features=services.store.describe(),
        prediction_log=services.log.describe(),
    )
    return JSONResponse(content=body.model_dump(mode="json"), status_code=200 if body.ready else 503)
