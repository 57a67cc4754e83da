"""``POST /predict`` (one transaction) and ``POST /predict/batch`` (up to SERVING_BATCH_MAX)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.exceptions import RequestValidationError

from serving.deps import ApiKeyDep, ServicesDep, SettingsDep
from serving.schemas import BatchIn, BatchOut, ErrorOut, PredictionOut, TransactionIn
from serving.service import score

router = APIRouter(tags=["predictions"], dependencies=[ApiKeyDep])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "missing or invalid API key (when keys are configured)"},
    413: {"model": ErrorOut, "description": "request body above SERVING_MAX_BODY_BYTES"},
    503: {"model": ErrorOut, "description": "no champion model loaded yet (the reason is in detail)"},
}


@router.post("/predict", response_model=PredictionOut, responses=_ERRORS, summary="Score one transaction")
async def predict(txn: TransactionIn, services: ServicesDep) -> Response:
    (outcome,) = await score(services, [txn])
    return Response(outcome.prediction.model_dump_json(), media_type="application/json")


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=_ERRORS,
    summary="Score up to SERVING_BATCH_MAX transactions",
)
async def predict_batch(batch: BatchIn, services: ServicesDep, settings: SettingsDep) -> Response:
    started = time.perf_counter()
    if len(batch.transactions) > settings.batch_max:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ("body", "transactions"),
                    "msg": f"at most {settings.batch_max} transactions per batch "
                    f"(got {len(batch.transactions)})",
                }
            ]
        )
    outcomes = await score(services, batch.transactions)
    body = BatchOut(
        predictions=[o.prediction for o in outcomes],
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return Response(body.model_dump_json(), media_type="application/json")
