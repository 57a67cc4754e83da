"""Loading and validating labelled transaction files (Parquet or CSV).

Required columns: ``transaction_id, event_time, card_id, terminal_id, amount, is_fraud``.
Optional: ``customer_id, merchant_name, currency, mcc, channel, device_id, latitude, longitude,
country, fraud_scenario, label_time``. Absent optional columns are added as nulls; the features
then take their documented "missing" values.

Bad input is refused, never repaired silently: every problem is collected and reported in one
:class:`DataValidationError` naming the column, the reason and the (0-based, header excluded) row
positions. Nothing is dropped.

``label_time`` — when the fraud label became known. Genuine rows never carry one (it is set to
null). A fraud without ``label_time`` is assumed to be labelled ``assumed_label_delay`` (default
7 days) after its ``event_time``. A ``label_time`` before the ``event_time`` is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from contracts.events import CHANNELS, REQUIRED_COLUMNS

log = logging.getLogger(__name__)

OPTIONAL_STRING_COLUMNS: Final[tuple[str, ...]] = (
    "customer_id",
    "merchant_name",
    "currency",
    "mcc",
    "channel",
    "device_id",
    "country",
    "fraud_scenario",
)
OPTIONAL_COLUMNS: Final[tuple[str, ...]] = (*OPTIONAL_STRING_COLUMNS, "latitude", "longitude", "label_time")
DEFAULT_LABEL_DELAY: Final = timedelta(days=7)
_MAX_ROWS_SHOWN: Final = 10


@dataclass(frozen=True)
class Problem:
    column: str
    reason: str
    rows: tuple[int, ...]

    def __str__(self) -> str:
        shown = ", ".join(str(r) for r in self.rows[:_MAX_ROWS_SHOWN])
        more = f" (+{len(self.rows) - _MAX_ROWS_SHOWN} more)" if len(self.rows) > _MAX_ROWS_SHOWN else ""
        where = f" at {len(self.rows)} row(s): {shown}{more}" if self.rows else ""
        return f"column {self.column!r}: {self.reason}{where}"


class DataValidationError(ValueError):
    """The input file cannot be used as is; ``problems`` lists every column at fault."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid transactions input ({len(self.problems)} problem(s)); rows are 0-based:\n{lines}"
        )


def read_table(path: Path) -> pd.DataFrame:
    """Read a Parquet or CSV file as is (CSV: every column as text, parsed by validation)."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"} or path.is_dir():
        return pd.read_parquet(path)
    if suffix in {".csv", ".gz", ".txt"}:
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    raise ValueError(f"{path}: unsupported file type {suffix!r} (expected .parquet or .csv)")


def _rows(mask: np.ndarray | pd.Series) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(np.asarray(mask, dtype=bool)))


def _parse_times(values: pd.Series, column: str, problems: list[Problem]) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        problems.append(
            Problem(column, "expected timestamps (ISO-8601 text or a timestamp type), got numbers", ())
        )
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
    else:
        text = values.astype("string").str.strip()
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna() & text.notna()
        if retry.any():
            parsed.loc[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
    return parsed.astype("datetime64[ns, UTC]")


def _as_text(values: pd.Series) -> pd.Series:
    """Object column of str with None for nulls and empty strings; numbers become their text
    (integral floats such as ids read as 12.0 become '12'). Values are not otherwise altered."""
    if pd.api.types.is_float_dtype(values):
        ints = values.dropna()
        if (ints == np.round(ints)).all():
            values = values.astype("Int64")
    null = values.isna().to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) in {"string", "empty"}:
        out = values.astype(object).to_numpy(copy=True)
    else:
        out = np.array(
            [None if n else str(v) for v, n in zip(values.tolist(), null, strict=True)], dtype=object
        )
    null |= out == ""
    out[null] = None
    return pd.Series(out, index=values.index, dtype=object)


def validate_transactions(
    raw: pd.DataFrame, *, assumed_label_delay: timedelta = DEFAULT_LABEL_DELAY, require_labels: bool = True
) -> pd.DataFrame:
    """Normalised copy of ``raw`` (types, optional columns, effective label_time) or raise.

    The result has every required and optional column, ``event_time`` and ``label_time`` as UTC
    timestamps, ``event_time_ms`` (int64 epoch ms), ``amount`` float64, ``is_fraud`` int8, the row
    order of the input.
    """
    problems: list[Problem] = []
    required = REQUIRED_COLUMNS if require_labels else tuple(c for c in REQUIRED_COLUMNS if c != "is_fraud")
    missing = [c for c in required if c not in raw.columns]
    for column in missing:
        problems.append(Problem(column, "required column is missing", ()))
    if missing:
        raise DataValidationError(problems)

    df = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    # identifiers
    for column in ("transaction_id", "card_id", "terminal_id"):
        text = _as_text(raw[column].reset_index(drop=True))
        null = text.isna()
        if null.any():
            problems.append(Problem(column, "null or empty value", _rows(null)))
        df[column] = text
    dup = df["transaction_id"].notna() & df["transaction_id"].duplicated(keep=False)
    if dup.any():
        problems.append(Problem("transaction_id", "duplicate transaction_id", _rows(dup)))
    # event time
    raw_time = raw["event_time"].reset_index(drop=True)
    event_time = _parse_times(raw_time, "event_time", problems)
    bad = event_time.isna()
    if bad.any() and not any(p.column == "event_time" for p in problems):
        problems.append(Problem("event_time", "null or unparseable timestamp", _rows(bad)))
    df["event_time"] = event_time
    # amount
    amount = pd.to_numeric(raw["amount"].reset_index(drop=True), errors="coerce").astype("float64")
    bad = amount.isna() | ~np.isfinite(amount.fillna(0.0)) | (amount < 0)
    if bad.any():
        problems.append(Problem("amount", "null, non-numeric, infinite or negative amount", _rows(bad)))
    df["amount"] = amount
    # label
    if "is_fraud" in raw.columns:
        label = raw["is_fraud"].reset_index(drop=True)
        if pd.api.types.is_bool_dtype(label):
            numeric = label.astype("float64")
        else:
            if label.dtype == object:
                label = label.map(lambda v: int(v) if isinstance(v, bool | np.bool_) else v)
            numeric = pd.to_numeric(label.astype("string").str.strip(), errors="coerce")
        bad = ~numeric.isin([0, 1])
        if bad.any():
            problems.append(Problem("is_fraud", "label must be 0 or 1", _rows(bad)))
        df["is_fraud"] = numeric.where(~bad, 0).astype("int8")
    else:
        df["is_fraud"] = np.zeros(len(df), dtype=np.int8)
    # optional text
    for column in OPTIONAL_STRING_COLUMNS:
        df[column] = _as_text(raw[column].reset_index(drop=True)) if column in raw.columns else None
    channel = df["channel"]
    bad = channel.notna() & ~channel.isin(CHANNELS)
    if bad.any():
        problems.append(Problem("channel", f"must be one of {sorted(CHANNELS)} or null", _rows(bad)))
    mcc = df["mcc"]
    if mcc.notna().any():
        codes = {v: v.zfill(4) if (v.isdigit() and len(v) <= 4) else None for v in mcc.dropna().unique()}
        bad = mcc.notna() & mcc.map(codes).isna()
        if bad.any():
            problems.append(Problem("mcc", "must be a 4-digit merchant category code or null", _rows(bad)))
        df["mcc"] = mcc.map(codes).astype(object).where(mcc.notna(), None)
    # optional coordinates
    for column, limit in (("latitude", 90.0), ("longitude", 180.0)):
        if column in raw.columns:
            src = raw[column].reset_index(drop=True)
            values = pd.to_numeric(src, errors="coerce").astype("float64")
            given = src.notna() if pd.api.types.is_numeric_dtype(src) else _as_text(src).notna()
            bad = (values.isna() & given) | (values.abs() > limit)
            if bad.any():
                problems.append(Problem(column, f"must be a number within ±{limit:g} or null", _rows(bad)))
            df[column] = values
        else:
            df[column] = np.nan
    # label time
    if "label_time" in raw.columns:
        src = raw["label_time"].reset_index(drop=True)
        label_time = _parse_times(src, "label_time", problems)
        present = src.notna() if pd.api.types.is_datetime64_any_dtype(src) else _as_text(src).notna()
        unparsed = present & label_time.isna()
        if unparsed.any():
            problems.append(Problem("label_time", "unparseable timestamp", _rows(unparsed)))
        early = label_time.notna() & df["event_time"].notna() & (label_time < df["event_time"])
        if early.any():
            problems.append(Problem("label_time", "label_time before event_time", _rows(early)))
    else:
        label_time = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    if problems:
        raise DataValidationError(problems)

    fraud = df["is_fraud"] == 1
    assumed = fraud & label_time.isna()
    label_time = label_time.where(fraud, pd.NaT)
    label_time.loc[assumed] = df.loc[assumed, "event_time"] + pd.Timedelta(assumed_label_delay)
    df["label_time"] = label_time.astype("datetime64[ns, UTC]")
    df["event_time_ms"] = df["event_time"].astype("int64") // 1_000_000
    if assumed.any():
        log.info(
            "assumed a %s label delay for %d fraud(s) without label_time", assumed_label_delay, assumed.sum()
        )
    return df


def load_labelled(path: Path, *, assumed_label_delay: timedelta = DEFAULT_LABEL_DELAY) -> pd.DataFrame:
    """Read and validate a labelled transactions file."""
    raw = read_table(path)
    log.info("read %d rows x %d columns from %s", len(raw), raw.shape[1], path)
    return validate_transactions(raw, assumed_label_delay=assumed_label_delay)


def attach_labels(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    assumed_label_delay: timedelta = DEFAULT_LABEL_DELAY,
) -> pd.DataFrame:
    """Join label events (``transaction_id, is_fraud, label_time[, fraud_scenario]``) onto transactions.

    Transactions without a label event are genuine (``is_fraud = 0``), as with chargebacks; the
    result is validated like a labelled file.
    """
    drop = [c for c in ("is_fraud", "label_time", "fraud_scenario") if c in transactions.columns]
    keep = [c for c in ("transaction_id", "is_fraud", "label_time", "fraud_scenario") if c in labels.columns]
    latest = labels[keep].drop_duplicates("transaction_id", keep="last")
    merged = transactions.drop(columns=drop).merge(
        latest, on="transaction_id", how="left", validate="one_to_one"
    )
    merged["is_fraud"] = merged["is_fraud"].fillna(0).astype("int8")
    return validate_transactions(merged, assumed_label_delay=assumed_label_delay)
