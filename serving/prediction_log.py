"""Every prediction → Postgres (``PREDICTIONS_DB``), in batches, off the request path.

The request path only appends a prepared row to an in-memory buffer (bounded by
``SERVING_PREDICTION_LOG_BUFFER_SIZE``; when full, the new row is dropped and counted). A
background task writes up to ``SERVING_PREDICTION_LOG_BATCH_SIZE`` rows per ``COPY`` every
``SERVING_PREDICTION_LOG_FLUSH_INTERVAL_S`` (sooner when a batch is full). When Postgres is down
the batch stays buffered and the writer retries with backoff; the API keeps serving. At shutdown
the buffer is flushed for a few seconds; what cannot be written is counted as dropped.

The table is created idempotently on every (re)connect::

    prediction_log(id, predicted_at, transaction_id, card_id, terminal_id, event_time, amount,
                   currency, model_name, model_version, feature_set_version, fraud_probability,
                   decision, feature_source, features_version, latency_ms,
                   feature_vector double precision[] (features.FEATURE_NAMES order),
                   reasons jsonb, request jsonb)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import psycopg
from psycopg import sql

from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LogRow:
    """One prediction as logged (a row of ``prediction_log``; columns in field order)."""

    predicted_at: str
    transaction_id: str
    card_id: str
    terminal_id: str
    event_time: datetime
    amount: Decimal
    currency: str
    model_name: str
    model_version: str
    feature_set_version: str
    fraud_probability: float
    decision: str
    feature_source: str
    features_version: str | None
    latency_ms: float
    feature_vector: str  # double precision[] literal (pg_array), made in the scoring pass
    reasons: str  # JSON text
    request: str  # JSON text

    def copy_line(self) -> bytes:
        return copy_line(tuple(getattr(self, name) for name in COLUMNS))


COLUMNS: Final = tuple(f.name for f in fields(LogRow))

DDL: Final = """
CREATE TABLE IF NOT EXISTS {table} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    predicted_at timestamptz NOT NULL,
    transaction_id text NOT NULL,
    card_id text NOT NULL,
    terminal_id text NOT NULL,
    event_time timestamptz NOT NULL,
    amount numeric(12, 2) NOT NULL,
    currency text NOT NULL,
    model_name text NOT NULL,
    model_version text NOT NULL,
    feature_set_version text NOT NULL,
    fraud_probability double precision NOT NULL,
    decision text NOT NULL,
    feature_source text NOT NULL,
    features_version text,
    latency_ms double precision NOT NULL,
    feature_vector double precision[] NOT NULL,
    reasons jsonb NOT NULL,
    request jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS {predicted_at_idx} ON {table} (predicted_at);
CREATE INDEX IF NOT EXISTS {transaction_idx} ON {table} (transaction_id);
COMMENT ON TABLE {table} IS 'Every /predict answer of the serving API (serving/prediction_log.py)';
"""


def pg_array(values: list[float]) -> str:
    """Text form of a double precision[] (repr round-trips every float exactly)."""
    return "{" + ",".join(map(repr, values)) + "}"


_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NEEDS_ESCAPE: Final = re.compile(r"[\\\t\n\r]")


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    # translate() with 1→2 character mappings walks a dict per character: on a row's ~1.5 kB
    # (vector, reasons, request) that showed in the event loop's profile under load; the regex
    # scan is C-speed, and most fields have nothing to escape.
    return text.translate(_COPY_ESCAPES) if _NEEDS_ESCAPE.search(text) else text


def copy_line(values: tuple[Any, ...]) -> bytes:
    """One row of ``COPY ... FROM STDIN`` text format (values in column order; None = NULL).

    Formatting here (strings already made in the scoring thread) makes the writer one
    ``copy.write`` per batch: nothing per row runs on the event loop but this join.
    """
    return ("\t".join(map(_copy_field, values)) + "\n").encode()


class PredictionLog:
    def __init__(
        self,
        dsn: str,
        *,
        table: str,
        batch_size: int,
        flush_interval_s: float,
        buffer_size: int,
        metrics: ServingMetrics,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.table = table
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.buffer_size = buffer_size
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self._buffer: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)
        )
        self.healthy: bool | None = None  # None until the first write attempt
        self.last_error: str | None = None
        metrics.log_buffered.set_function(lambda: len(self._buffer))

    # ------------------------------------------------------------------ request path

    def record(self, row: bytes) -> bool:
        """Queue one :meth:`LogRow.copy_line`; False (and counted) when the buffer is full."""
        if len(self._buffer) >= self.buffer_size:
            self.metrics.log_dropped.inc()
            return False
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()
        return True

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # ------------------------------------------------------------------ writer

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="prediction-log")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        deadline = time.monotonic() + flush_timeout_s
        try:
            async with asyncio.timeout(flush_timeout_s):
                while self._buffer and time.monotonic() < deadline:
                    if not await self._flush_once():
                        break
        except TimeoutError:
            pass
        if self._buffer:
            log.warning("prediction log: %d rows not written at shutdown", len(self._buffer))
            self.metrics.log_dropped.inc(len(self._buffer))
            self._buffer.clear()
        if self._conn is not None:
            await self._conn.close()

    async def _run(self) -> None:
        try:  # the table exists from startup (readers need not wait for the first flush)
            await self._connect()
        except (psycopg.Error, OSError) as e:
            log.warning("prediction log: %s not ready at startup (%s); retrying on the first flush",
                        self.table, e)  # fmt: skip
        backoff = 0.5
        while True:
            if not self._buffer or len(self._buffer) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
            self._wake.clear()
            while self._buffer:
                if await self._flush_once():
                    backoff = 0.5
                    if len(self._buffer) < self.batch_size:
                        break  # a partial batch waits for the next interval
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
                    break

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, connect_timeout=5)
        await ensure_table(conn, self.table)
        self._conn = conn
        return conn

    async def _flush_once(self) -> bool:
        """Write one batch from the buffer head; on failure put it back. True when written."""
        n = min(self.batch_size, len(self._buffer))
        batch = [self._buffer.popleft() for _ in range(n)]
        try:
            async with asyncio.timeout(30):
                conn = await self._connect()
                async with conn.cursor() as cur, cur.copy(self._copy) as copy:
                    await copy.write(b"".join(batch))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            self._buffer.extendleft(reversed(batch))
            self.metrics.log_errors.inc()
            if self.healthy is not False:
                log.warning("prediction log: write failed, %d rows buffered (%s)", len(self._buffer), exc)
            self.healthy, self.last_error = False, f"{type(exc).__name__}: {exc}"[:300]
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            return False
        if self.healthy is False:
            log.info("prediction log: writing again (%d rows buffered)", len(self._buffer))
        self.healthy, self.last_error = True, None
        self.metrics.log_written.inc(len(batch))
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "table": self.table,
            "healthy": self.healthy,
            "buffered": len(self._buffer),
            "last_error": self.last_error,
        }


async def ensure_table(conn: psycopg.AsyncConnection[Any], table: str) -> None:
    """CREATE TABLE / INDEX IF NOT EXISTS (two processes racing on it is tolerated)."""
    stmt = sql.SQL(DDL).format(
        table=sql.Identifier(table),
        predicted_at_idx=sql.Identifier(f"{table}_predicted_at_idx"[:63]),
        transaction_idx=sql.Identifier(f"{table}_transaction_id_idx"[:63]),
    )
    for attempt in range(3):
        try:
            await conn.execute(stmt)
            return
        except psycopg.errors.UniqueViolation:  # concurrent CREATE ... IF NOT EXISTS
            if attempt == 2:
                raise
            await asyncio.sleep(0.2)


class DisabledLog:
    """SERVING_PREDICTION_LOG_ENABLED=false."""

    buffered = 0

    def record(self, row: bytes) -> bool:
        return True

    def start(self) -> None:
        return None

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"enabled": False}
