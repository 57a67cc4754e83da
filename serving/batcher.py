"""Micro-batching: the requests queued meanwhile share one Redis round trip and one scoring pass.

:class:`MicroBatcher` queues concurrent requests; each batch makes one Redis round trip for all its
cards and terminals, then is scored (on the event loop by default, or in one worker thread with
``SERVING_SCORING_THREAD=true``) while the next batch forms, so per-call overheads are paid once per
batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import features
from serving.scoring import LoadedModel, Scored

log = logging.getLogger(__name__)


class FeatureFetcher(Protocol):
    async def apply(self, txns: Sequence[features.Transaction]) -> Any: ...


@dataclass(slots=True)
class Answer:
    """What a queued job gets back: its scored rows, its lookups, the snapshot version read."""

    scored: list[Scored]
    lookups: list[Any]
    version: str | None


@dataclass(slots=True)
class _Job:
    model: LoadedModel
    txns: Sequence[features.Transaction]
    future: asyncio.Future[Answer]


def _one_openmp_thread() -> None:
    """OpenMP (LightGBM) spinning up threads for a 64-row batch costs more than it saves, and
    spin-waits badly on a busy machine: the scoring thread uses one (``python -m serving`` also
    sets OMP_NUM_THREADS=1 before anything loads)."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1, user_api="openmp")


class MicroBatcher:
    """Feature lookups and scoring for the requests queued meanwhile, one batch at a time.

    A batch makes one Redis round trip (:meth:`OnlineStore.apply`: every transaction of the batch
    read as of its time, then appended), then its CPU work runs inline (the service's default,
    ``SERVING_SCORING_THREAD`` off) or in the scoring thread while the next batch forms and fetches.
    At most ``max_in_flight`` batches are being scored; while they are, arriving requests queue up,
    so batches grow with load and per-call overheads (Redis client, LightGBM, numpy) are paid once
    per batch. Each job keeps the model it was submitted with (a swap never mixes versions).
    """

    def __init__(
        self,
        *,
        store: FeatureFetcher,
        max_rows: int,
        top_k: int,
        observe: Any | None = None,
        use_thread: bool = True,
        max_in_flight: int = 2,
    ) -> None:
        self.store = store
        self.max_rows = max_rows
        self.top_k = top_k
        self.use_thread = use_thread
        self._observe = observe  # callable(batch_rows, seconds)
        self._queue: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="scoring", initializer=_one_openmp_thread
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._queue:
            if not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, model: LoadedModel, txns: Sequence[features.Transaction]) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(model, txns, future))
        self._wake.set()
        return await future

    def _take(self) -> list[_Job]:
        batch: list[_Job] = []
        rows = 0
        while self._queue:
            job = self._queue[0]
            if batch and rows + len(job.txns) > self.max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(job.txns)
        return [j for j in batch if not j.future.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._slots.acquire()
                batch = self._take()
                if not batch:
                    self._slots.release()
                    continue
                try:
                    txns = [t for job in batch for t in job.txns]
                    fetched = await self.store.apply(txns)  # never raises for Redis trouble
                    if self.use_thread:
                        done = loop.run_in_executor(self._executor, self._compute, batch, fetched)
                        done.add_done_callback(functools.partial(self._finish, batch, fetched.version))
                    else:
                        result: asyncio.Future[list[Answer]] = loop.create_future()
                        result.set_result(self._compute(batch, fetched))
                        self._finish(batch, fetched.version, result)
                        await asyncio.sleep(0)
                except Exception as exc:  # a bug, not bad input: fail these requests, keep serving
                    log.exception("a batch of %d jobs failed", len(batch))
                    self._slots.release()
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(exc)

    def _finish(self, batch: list[_Job], version: str | None, done: asyncio.Future[list[Answer]]) -> None:
        self._slots.release()
        exc = done.exception()
        if exc is not None:
            log.error("scoring a batch of %d jobs failed", len(batch), exc_info=exc)
        for i, job in enumerate(batch):
            if job.future.done():
                continue
            if exc is not None:
                job.future.set_exception(exc)
            else:
                job.future.set_result(done.result()[i])

    def _compute(self, batch: list[_Job], fetched: Any) -> list[Answer]:
        """Worker thread: decode the batch's card events, then vectors, scores, reasons per model."""
        started = time.perf_counter()
        all_lookups = fetched.lookups  # JSON decoding happens here, not on the event loop
        lookups: list[list[Any]] = []
        pos = 0
        for job in batch:
            lookups.append(all_lookups[pos : pos + len(job.txns)])
            pos += len(job.txns)
        out: list[list[Scored] | None] = [None] * len(batch)
        # group by model: during a swap, each request keeps the model it started with
        groups: dict[int, list[int]] = {}
        for i, job in enumerate(batch):
            groups.setdefault(id(job.model), []).append(i)
        rows = 0
        for idx in groups.values():
            model = batch[idx[0]].model
            txns = [t for i in idx for t in batch[i].txns]
            cards = [lk.card for i in idx for lk in lookups[i]]
            terms = [lk.terminal for i in idx for lk in lookups[i]]
            scored = model.score_rows(txns, cards, terms, self.top_k)
            rows += len(txns)
            pos = 0
            for i in idx:
                n = len(batch[i].txns)
                out[i] = scored[pos : pos + n]
                pos += n
        if self._observe is not None:
            self._observe(rows, time.perf_counter() - started)
        return [Answer(out[i] or [], lookups[i], fetched.version) for i in range(len(batch))]
