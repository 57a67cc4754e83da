"""The serving API: ``create_app()`` builds it; the lifespan starts what it needs.

Nothing connects or loads at import time. At start-up the lifespan creates the Redis client and
its circuit breaker, the prediction-log writer, the micro-batcher and the model poller, which
loads ``models:/<SERVING_MODEL_NAME>@<SERVING_MODEL_ALIAS>`` in the background: the app answers
``/health`` at once and ``/ready`` once a model is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from common.settings import kafka_settings
from serving.batcher import MicroBatcher
from serving.breaker import CircuitBreaker, State
from serving.metrics import ServingMetrics
from serving.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from serving.model_manager import ModelManager, NoModelError
from serving.online_store import OnlineStore
from serving.prediction_log import DisabledLog, PredictionLog
from serving.publisher import DisabledPublisher, Publisher
from serving.routers import health, metrics, model, predictions
from serving.service import Services
from serving.settings import ServingSettings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """Real-time card-fraud scoring.

`POST /predict` scores one transaction with the MLflow `@champion` model on the card and terminal
aggregates of the online feature store (Redis, behind a circuit breaker: when Redis is down the
model's learnt defaults are used and `feature_source` says `default`). Every prediction is logged
to Postgres. Send `X-API-Key` when the server has API keys configured.
"""


def build_services(settings: ServingSettings, metrics: ServingMetrics) -> Services:
    """The app's resources (no I/O yet: connections open lazily, tasks start in :func:`start`)."""
    breaker = CircuitBreaker(
        "redis",
        failure_threshold=settings.breaker_failure_threshold,
        reset_timeout_s=settings.breaker_reset_timeout_s,
        half_open_max_calls=settings.breaker_half_open_max_calls,
        on_change=lambda old, new: metrics.breaker_transitions.labels(new.value).inc(),
    )
    metrics.breaker_state.set_function(lambda: breaker.state.gauge)
    store = OnlineStore.connect(
        settings.resolved_redis_url(),
        namespace=settings.resolved_namespace(),
        breaker=breaker,
        timeout_ms=settings.redis_timeout_ms,
        connect_timeout_ms=settings.redis_connect_timeout_ms,
        max_connections=settings.redis_max_connections,
        metrics=metrics,
    )
    metrics.state_newest_event.labels("predict").set_function(store.newest_event_s)
    models = ModelManager(
        name=settings.model_name,
        alias=settings.model_alias,
        tracking_uri=settings.resolved_tracking_uri(),
        poll_interval_s=settings.model_poll_interval_s,
        metrics=metrics,
    )

    def observe(rows: int, seconds: float) -> None:
        metrics.batch_size.observe(rows)
        metrics.scoring.observe(seconds)

    batcher = MicroBatcher(
        store=store,
        max_rows=settings.score_batch_max,
        top_k=settings.top_reasons,
        observe=observe,
        use_thread=settings.scoring_thread,
    )
    plog: PredictionLog | DisabledLog
    if settings.prediction_log_enabled:
        plog = PredictionLog(
            settings.resolved_log_dsn(),
            table=settings.prediction_log_table,
            batch_size=settings.prediction_log_batch_size,
            flush_interval_s=settings.prediction_log_flush_interval_s,
            buffer_size=settings.prediction_log_buffer_size,
            metrics=metrics,
        )
    else:
        plog = DisabledLog()
    publisher: Publisher | DisabledPublisher
    if settings.publish_scored:
        k = kafka_settings()
        publisher = Publisher(
            bootstrap=k.kafka_bootstrap_servers,
            topic=settings.publish_topic or k.kafka_topic_raw,
            registry_url=k.schema_registry_url,
            metrics=metrics,
            buffer_size=settings.publish_buffer_size,
        )
    else:
        publisher = DisabledPublisher()
    return Services(
        models=models, store=store, batcher=batcher, log=plog, metrics=metrics, publisher=publisher
    )


async def _watch_loop_lag(metrics: ServingMetrics, interval_s: float = 0.25) -> None:
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(interval_s)
        metrics.loop_lag.observe(max(0.0, loop.time() - t0 - interval_s))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServingSettings = app.state.settings
    services = build_services(settings, app.state.metrics)
    services.batcher.start()
    services.log.start()
    services.publisher.start()
    services.models.start()
    lag = asyncio.get_running_loop().create_task(_watch_loop_lag(app.state.metrics))
    app.state.services = services
    log.info(
        "serving: model %s@%s from %s, features %s (namespace %s), prediction log %s",
        settings.model_name,
        settings.model_alias,
        services.models.tracking_uri,
        "redis",
        services.store.layout.namespace,
        services.log.describe(),
    )
    try:
        yield
    finally:
        app.state.services = None
        lag.cancel()
        with suppress(asyncio.CancelledError):
            await lag
        await services.models.stop()
        await services.batcher.stop()
        await services.log.stop()
        await services.publisher.stop()
        await services.store.close()


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors with the field named, without echoing the input or internals."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        field = ".".join(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
        out.append(
            {"field": field or "body", "loc": loc, "msg": str(err.get("msg", "")), "type": err.get("type")}
        )
    return out


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """The FastAPI app (``uvicorn --factory serving.app:create_app``)."""
    s = settings or get_settings()
    app = FastAPI(
        title="Fraud Detection API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # The platform's telemetry is Prometheus (/metrics). FastAPI's native OpenTelemetry
        # hooks, unconfigured here, still ask the global providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = s
    app.state.api_keys = s.keys()
    app.state.metrics = ServingMetrics()
    app.state.services = None
    app.state.started_at = time.time()
    app.include_router(predictions.router)
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=s.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc.errors())})

    @app.exception_handler(NoModelError)
    async def _no_model(request: Request, exc: NoModelError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"no model loaded: {exc}"},
            headers={"Retry-After": str(int(max(1, s.model_poll_interval_s)))},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})

    return app


__all__ = ["State", "create_app"]
