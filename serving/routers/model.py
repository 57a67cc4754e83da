"""The model being served: registry coordinates, family, thresholds, feature set, reasons method."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.deps import ApiKeyDep, ServicesDep

router = APIRouter(tags=["model"], dependencies=[ApiKeyDep])


@router.get("/model", summary="The served model (or why none is loaded)")
async def model_info(services: ServicesDep) -> dict[str, Any]:
    return services.models.describe()
