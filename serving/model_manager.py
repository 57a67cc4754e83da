"""The champion model: loaded from MLflow in the background, polled, swapped atomically.

At start the app is up at once; a background task looks up ``models:/<name>@<alias>`` and loads
that version (by its number, so a concurrent alias move cannot mix two versions), builds and
verifies its scorer, warms it up, and only then publishes it with one reference assignment.
A request reads :attr:`ModelManager.current` once and keeps that object to the end, so a swap
never drops or mixes a request. The alias is polled every ``SERVING_MODEL_POLL_INTERVAL_S``;
MLflow being down or the alias missing leaves the current model in place (and, before the
first load, makes ``/ready`` false and ``/predict`` answer 503 with the reason). After a load the
heap is frozen (``gc.freeze``) so full garbage collections stay short (see :meth:`_load`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from typing import Any

import features
from serving.explain import build_scorer
from serving.metrics import ServingMetrics
from serving.scoring import LoadedModel

log = logging.getLogger(__name__)


class NoModelError(RuntimeError):
    """No model to score with (no champion yet, MLflow unreachable, or the load failed)."""


class ModelManager:
    def __init__(
        self, *, name: str, alias: str, tracking_uri: str, poll_interval_s: float, metrics: ServingMetrics
    ) -> None:
        self.name = name
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self.status = f"not loaded yet: looking up models:/{name}@{alias} in MLflow ({tracking_uri})"
        self.last_check: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        # bounded MLflow HTTP retries: a down registry must not stall the poller for minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="model-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def require(self) -> LoadedModel:
        model = self.current
        if model is None:
            raise NoModelError(self.status)
        return model

    def poke(self) -> None:
        """Check the alias now rather than at the next interval."""
        self._wake.set()

    async def _poll(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep polling whatever happens
                log.exception("model poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
            self._wake.clear()

    async def check_once(self) -> bool:
        """Look at the alias; load and swap when it points elsewhere. True when a model was swapped in."""
        from ml.registry import alias_version

        self.last_check = time.time()
        try:
            version = await asyncio.to_thread(
                alias_version, self.name, self.alias, tracking_uri=self.tracking_uri
            )
        except Exception as exc:
            self._unavailable(f"MLflow at {self.tracking_uri} is unreachable or failed: {_short(exc)}")
            return False
        if version is None:
            self._unavailable(
                f"no model at models:/{self.name}@{self.alias}: the registry has no '{self.alias}' alias "
                f"for '{self.name}' yet (train and promote one, e.g. `make train`); checked every "
                f"{self.poll_interval_s:g}s"
            )
            return False
        current = self.current
        if current is not None and current.version == version:
            return False
        try:
            loaded = await asyncio.to_thread(self._load, version)
        except Exception as exc:
            self.metrics.model_reloads.labels("failed").inc()
            log.exception("loading %s version %s failed", self.name, version)
            self._unavailable(f"loading models:/{self.name}/{version} failed: {_short(exc)}")
            return False
        self._publish(loaded)
        return True

    def _unavailable(self, reason: str) -> None:
        if self.current is None:
            if reason != self.status:
                log.warning("no model yet: %s", reason)
            self.status = reason
        else:
            log.warning("keeping %s v%s: %s", self.name, self.current.version, reason)

    def _load(self, version: str) -> LoadedModel:
        from ml.pyfunc import load_bundle
        from ml.tracking import mlflow_tracking

        started = time.perf_counter()
        uri = f"models:/{self.name}/{version}"
        with mlflow_tracking(self.tracking_uri):
            bundle = load_bundle(uri, version=version)
        if bundle.feature_set_version != features.FEATURE_SET_VERSION or tuple(
            bundle.model.feature_names
        ) != tuple(features.FEATURE_NAMES):
            raise RuntimeError(
                f"{uri} was trained on feature set {bundle.feature_set_version}; this server builds "
                f"{features.FEATURE_SET_VERSION}: deploy the matching serving code"
            )
        scorer = build_scorer(bundle.model)  # verifies it against the model and warms it up
        # The heap now holds millions of long-lived objects (MLflow, pandas, scikit-learn, the
        # model). Left to the collector, every full (generation 2) collection walks them all: pauses
        # of 100-200 ms under load. Collect once here, then move everything alive to the permanent
        # generation: later collections only see what requests allocate.
        gc.collect()
        gc.freeze()
        log.info(
            "loaded %s v%s (%s, %s, thresholds %s) in %.1fs; reasons: %s",
            self.name,
            version,
            bundle.model.model_name,
            bundle.feature_set_version,
            bundle.thresholds,
            time.perf_counter() - started,
            scorer.method,
        )
        return LoadedModel(self.name, version, bundle.model, scorer, uri)

    def publish(self, loaded: LoadedModel) -> None:
        """Serve ``loaded`` from now on (tests, and the poller)."""
        self._publish(loaded)

    def _publish(self, loaded: LoadedModel) -> None:
        previous = self.current
        self.current = loaded  # the atomic swap: one reference assignment on the event loop
        self.status = f"serving {loaded.name} v{loaded.version}"
        m = self.metrics
        m.model_info.clear()
        m.model_info.labels(loaded.name, loaded.version, loaded.family, loaded.model.feature_set_version).set(
            1
        )
        m.model_loaded.set(1)
        m.model_loaded_at.set(loaded.loaded_at)
        m.drift = loaded.drift
        m.model_reloads.labels("loaded").inc()
        if previous is not None:
            log.warning("champion moved: %s v%s -> v%s", loaded.name, previous.version, loaded.version)

    def describe(self) -> dict[str, Any]:
        m = self.current
        if m is None:
            return {"loaded": False, "name": self.name, "alias": self.alias, "status": self.status}
        return {
            "loaded": True,
            "name": m.name,
            "alias": self.alias,
            "version": m.version,
            "uri": m.uri,
            "family": m.family,
            "feature_set_version": m.model.feature_set_version,
            "feature_names": list(m.model.feature_names),
            "thresholds": m.model.thresholds,
            "reasons_method": m.scorer.method,
            "loaded_at": m.loaded_at,
            "trained_on": m.model.trained_on,
            "status": self.status,
        }


def _short(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
