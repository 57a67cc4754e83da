"""Gold through Trino: the training set, and any query read in batches (the online state's seed)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd

from common import trino_client

GOLD_TRAINING_TABLE = "gold.fct_transaction_features"
#: columns of the training set that stay text (every other object column is numeric in Trino's JSON)
_TEXT_COLUMNS = frozenset(
    {
        "transaction_id", "card_id", "terminal_id", "customer_id", "currency", "channel", "mcc",
        "device_id", "country", "fraud_scenario",
    }
)  # fmt: skip


def read_training_set(table: str = GOLD_TRAINING_TABLE) -> pd.DataFrame:
    """The Gold training set as the point-in-time feature frame training expects (UTC times)."""
    catalog = trino_client.catalog()
    frame = trino_client.frame(f"SELECT * FROM {catalog}.{table}")  # noqa: S608 (name from code)
    if frame.empty:
        raise ValueError(f"{table} is empty: build Gold first (fraud_pipeline / make dbt-build)")
    for col in ("event_time", "label_time"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in frame.columns:
        if frame[col].dtype == object and col not in _TEXT_COLUMNS:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["is_fraud"] = frame["is_fraud"].astype("int8")
    return frame.sort_values(["event_time_ms", "transaction_id"], kind="stable").reset_index(drop=True)


def qualified(table: str, catalog: str) -> str:
    """``[catalog.]schema.table`` checked to be identifiers only, qualified with ``catalog``."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 3 or not all(p.replace("_", "").isalnum() for p in parts):
        raise ValueError(f"invalid table name {table!r}: expected [catalog.]schema.table")
    return table if len(parts) == 3 else f"{catalog}.{table}"


def batches(query: str, columns: Sequence[str], batch_size: int) -> Iterator[pd.DataFrame]:
    conn = trino_client.connect()
    try:
        cur = conn.cursor()
        cur.execute(query)
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                break
            yield pd.DataFrame.from_records(rows, columns=list(columns))
    finally:
        conn.close()
