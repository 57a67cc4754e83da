"""Event sources: the simulator's time-ordered stream and replay files (Parquet / CSV).

Each source yields ``(event_type, raw)`` pairs (``"transaction"`` or ``"label"``, a plain dict);
validation happens later, in the pipeline, so a bad row becomes a DLQ record, not a crash.

Replay files (``make replay FILE=…``) need at least ``transaction_id, event_time, card_id,
terminal_id, amount, is_fraud``; every other contract column is optional. Per row:

* missing optional fields become Avro nulls; a missing ``currency`` becomes
  ``PRODUCER_REPLAY_DEFAULT_CURRENCY`` (EUR);
* timestamps without a time zone (naive Parquet timestamps, ``2025-01-01 10:00:00`` in CSV) are
  taken as UTC; unparseable ones are passed on unchanged and refused by validation;
* CSV cells are read as text, so ``mcc`` keeps its leading zeros and ``amount`` its exact decimal;
* rows whose ``is_fraud`` is true also yield a label event (``label_time`` from its column when
  present, else ``event_time + PRODUCER_REPLAY_LABEL_DELAY_S``), right after the transaction.
  Rows are replayed in file order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from contracts.events import REQUIRED_COLUMNS, TRANSACTION_COLUMNS, is_missing

_TRUE: Final = frozenset({"1", "true", "t", "yes", "y"})
_FALSE: Final = frozenset({"0", "false", "f", "no", "n", ""})
READ_BATCH_ROWS: Final = 10_000


class ReplayFileError(ValueError):
    """A replay file that cannot be used at all (missing, unknown format, required column absent)."""


# --------------------------------------------------------------------------- simulator


def estimate_days(transactions: int) -> int:
    """Simulated days needed for about ``transactions`` events with the default world."""
    from producer import simulator

    cfg = simulator.SimulatorConfig()
    per_day = cfg.n_customers * cfg.mean_daily_rate
    return max(1, min(366, math.ceil(transactions / per_day * 1.15) + 1))


def simulator_events(seed: int, days: int, *, labels: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """The simulator's stream (transactions, and label events at their label time), in time order."""
    from producer import simulator  # imported lazily: it builds numpy worlds

    cfg = simulator.SimulatorConfig(seed=seed, days=days)
    label_type = simulator.LabelEvent
    for ev in simulator.iter_events(cfg, labels=labels):
        yield ("label" if isinstance(ev, label_type) else "transaction"), ev.to_dict()


# --------------------------------------------------------------------------- replay files


def to_utc(value: Any) -> Any:
    """Naive datetimes and ISO strings → aware UTC datetimes; anything else unchanged."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            return value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return to_utc(value.to_pydatetime())
    return value


def parse_flag(value: Any) -> bool | Any:
    """is_fraud as a bool when it is a recognisable flag; otherwise the value itself (refused later)."""
    if is_missing(value):
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return value


def row_events(
    row: dict[str, Any], *, default_currency: str, label_delay: timedelta
) -> list[tuple[str, dict[str, Any]]]:
    """The transaction (and label, for a fraud row) of one replay-file row."""
    tx = {k: row[k] for k in TRANSACTION_COLUMNS if k in row and not is_missing(row[k])}
    if "currency" not in tx:
        tx["currency"] = default_currency
    if "event_time" in tx:
        tx["event_time"] = to_utc(tx["event_time"])
    out: list[tuple[str, dict[str, Any]]] = [("transaction", tx)]
    flag = parse_flag(row.get("is_fraud"))
    if flag is False:
        return out
    label: dict[str, Any] = {
        k: row[k]
        for k in ("transaction_id", "card_id", "fraud_scenario")
        if k in row and not is_missing(row[k])
    }
    label["is_fraud"] = flag
    label_time = row.get("label_time")
    if is_missing(label_time):
        event_time = tx.get("event_time")
        label_time = event_time + label_delay if isinstance(event_time, datetime) else event_time
    label["label_time"] = to_utc(label_time)
    out.append(("label", label))
    return out


def _batches(path: Path) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        pf = pq.ParquetFile(path)
        columns = list(pf.schema_arrow.names)
        return columns, (b.to_pylist() for b in pf.iter_batches(batch_size=READ_BATCH_ROWS))
    if suffix in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
        with path.open("rb") as fh:
            header = fh.readline().decode("utf-8-sig").strip()
        columns = [c.strip().strip('"') for c in header.split(",")]
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=True
        )
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=convert
        )
        return columns, (b.to_pylist() for b in reader)
    raise ReplayFileError(f"{path}: unknown file type {suffix!r} (expected .parquet or .csv)")


def file_events(
    path: Path, *, default_currency: str = "EUR", label_delay: timedelta = timedelta(days=7)
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Transactions (and labels of fraud rows) of a Parquet/CSV file, in file order.

    The file is opened and its columns checked at once (:class:`ReplayFileError`), before any row.
    """
    _, batches = open_replay_file(path)

    def events() -> Iterator[tuple[str, dict[str, Any]]]:
        for batch in batches:
            for row in batch:
                yield from row_events(row, default_currency=default_currency, label_delay=label_delay)

    return events()


def open_replay_file(path: Path) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
    """Columns and row batches of a replay file; :class:`ReplayFileError` if it cannot be used."""
    if not path.is_file():
        raise ReplayFileError(f"replay file {path} does not exist")
    columns, batches = _batches(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ReplayFileError(
            f"replay file {path} lacks required column(s) {', '.join(missing)} "
            f"(needs at least {', '.join(REQUIRED_COLUMNS)})"
        )
    return columns, batches
