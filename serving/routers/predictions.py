"""``POST /predict`` (one transaction) and ``POST /predict/batch`` (up to SERVING_BATCH_MAX)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from serving.deps import API_KEY_HEADER, ApiKeyDep, ServicesDep, SettingsDep, get_services, require_api_key
from serving.schemas import BatchIn, BatchOut, ErrorOut, PredictionOut, TransactionIn
from serving.service import score

router = APIRouter(tags=["predictions"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "missing or invalid API key (when keys are configured)"},
    413: {"model": ErrorOut, "description": "request body above SERVING_MAX_BODY_BYTES"},
    503: {"model": ErrorOut, "description": "no champion model loaded yet (the reason is in detail)"},
}


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _transaction(content_type: str | None, body: bytes) -> TransactionIn:
    """The body validated straight from bytes by pydantic's JSON parser (FastAPI's own body handling
    decodes to Python objects first, then validates them). Errors are FastAPI's: a 422 naming the
    field; like FastAPI, only a JSON content type is read (a cross-site form cannot post one)."""
    if not _is_json(content_type):
        raise RequestValidationError(
            [
                {
                    "type": "content_type",
                    "loc": ("body",),
                    "msg": "send the body as Content-Type: application/json",
                }
            ]
        )
    try:
        return TransactionIn.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses=_ERRORS,
    summary="Score one transaction",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TransactionIn"}}},
        },
        "security": [{"APIKeyHeader": []}],
    },
)
async def predict(request: Request) -> Response:
    """The hot path: the body is read and validated here rather than by FastAPI's dependency
    machinery, and so is the API key (together half of the framework's time per request in-process;
    `make bench BENCH=serving` for the effect on the whole server)."""
    await require_api_key(request, request.headers.get(API_KEY_HEADER))
    services = await get_services(request)
    txn = _transaction(request.headers.get("content-type"), await request.body())
    (outcome,) = await score(services, [txn])
    return Response(outcome.prediction.model_dump_json(), media_type="application/json")


@router.post(
    "/predict/batch",
    dependencies=[ApiKeyDep],
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
