"""dbt on the real Trino: Silver and Gold built from Bronze-shaped Delta tables on the object store,
checked against the Python point-in-time reference builder (ml.pit) — the parity the training
set depends on — plus idempotence, the incremental path and the snapshot marts.

Each run builds into its own schemas (bronze_<id>, silver_<id>, gold_<id>) and drops them after.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import features
from bench import scratch_bronze
from common import trino_client
from common.dbt import run_dbt
from common.settings import trino_settings
from ml import pit
from ml.data import attach_labels
from producer.simulator import SimulatorConfig, labels_of, simulate, transactions_of

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 35
SPLIT = START + timedelta(days=30)  # rows before land first; the rest arrive in a second batch

pytestmark = [pytest.mark.usefixtures("running_stack"), pytest.mark.slow]


def dbt(args: list[str], suffix: str, extra_vars: dict[str, str] | None = None) -> str:
    variables = {"bronze_schema": f"bronze_{suffix}", "schema_suffix": suffix, **(extra_vars or {})}
    return run_dbt(args, variables, run_id=suffix).output


def bronze_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = SimulatorConfig(
        seed=7, days=DAYS, start=START, n_customers=250, n_terminals=120, n_online_merchants=20
    )
    table = simulate(cfg)
    txn = transactions_of(table).to_pandas()
    lab = labels_of(table).to_pandas()
    return txn, lab


@pytest.fixture(scope="module")
def dbt_run(spark: Any) -> Iterator[dict[str, Any]]:
    suffix = f"t{os.getpid()}"
    txn, lab = bronze_frames()
    first_t = txn[txn["event_time"] < pd.Timestamp(SPLIT)]
    first_l = lab[
        lab["transaction_id"].isin(first_t["transaction_id"]) & (lab["label_time"] < pd.Timestamp(SPLIT))
    ]
    t0 = datetime.now(UTC) - timedelta(hours=1)
    scratch_bronze.write_bronze(spark, suffix, first_t, first_l, t0)
    scratch_bronze.register_bronze(suffix)
    try:
        yield {"suffix": suffix, "txn": txn, "lab": lab, "first_t": first_t, "first_l": first_l}
    finally:
        scratch_bronze.drop_schemas(suffix)
        scratch_bronze.remove_bronze_files(suffix)


def reference(txn: pd.DataFrame, lab: pd.DataFrame) -> pd.DataFrame:
    frame = pit.build_feature_frame(attach_labels(txn, lab))
    return frame.set_index("transaction_id")


def gold(suffix: str, table: str) -> pd.DataFrame:
    return trino_client.frame(f"SELECT * FROM {trino_settings().trino_catalog}.gold_{suffix}.{table}")


def assert_parity(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    got = got.set_index("transaction_id").loc[ref.index]
    assert len(got) == len(ref)
    for col in pit.AGGREGATE_COLUMNS:
        a = pd.to_numeric(got[col], errors="coerce").to_numpy(dtype=float)
        b = ref[col].to_numpy(dtype=float)
        bad = ~np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
        assert not bad.any(), f"{col}: {bad.sum()} rows differ, e.g. {ref.index[bad][:3].tolist()}"
    assert (got["is_fraud"].to_numpy() == ref["is_fraud"].to_numpy()).all()
    # the vectors the model sees are the same
    np.testing.assert_allclose(
        pit.feature_matrix(got.reset_index()), pit.feature_matrix(ref.reset_index()), atol=1e-6
    )


def model_counts(suffix: str) -> dict[str, int]:
    cat = trino_settings().trino_catalog
    out = {}
    for schema in (f"silver_{suffix}", f"gold_{suffix}"):
        for (name,) in trino_client.rows(f"SHOW TABLES FROM {cat}.{schema}"):
            out[f"{schema}.{name}"] = trino_client.rows(f"SELECT count(*) FROM {cat}.{schema}.{name}")[0][0]
    return out


def test_gold_training_set_equals_the_reference_builder_and_rebuilds_idempotently(
    dbt_run: dict[str, Any],
) -> None:
    suffix = dbt_run["suffix"]
    out = dbt(["build"], suffix)
    assert "ERROR=0" in out and "PASS=" in out
    ref = reference(dbt_run["first_t"], dbt_run["first_l"])
    assert_parity(gold(suffix, "fct_transaction_features"), ref)
    counts = model_counts(suffix)
    dbt(["build"], suffix)
    assert model_counts(suffix) == counts


def test_incremental_run_after_new_transactions_and_late_labels_matches_a_full_rebuild(
    dbt_run: dict[str, Any], spark: Any
) -> None:
    suffix = dbt_run["suffix"]
    txn, lab = dbt_run["txn"], dbt_run["lab"]
    later_t = txn[~txn["transaction_id"].isin(dbt_run["first_t"]["transaction_id"])]
    later_l = lab[~lab["transaction_id"].isin(dbt_run["first_l"]["transaction_id"])]
    scratch_bronze.write_bronze(spark, suffix, later_t, later_l, datetime.now(UTC))
    dbt(["build"], suffix)
    ref = reference(txn, lab)
    fct = gold(suffix, "fct_transaction_features")
    assert fct["transaction_id"].is_unique
    assert_parity(fct, ref)


def test_snapshots_equal_the_reference_snapshots(dbt_run: dict[str, Any]) -> None:
    suffix = dbt_run["suffix"]
    as_of = START + timedelta(days=DAYS - 3, hours=7, minutes=13)
    dbt(["build", "--select", "card_features_latest", "terminal_features_latest+"], suffix,
            {"snapshot_at": as_of.strftime("%Y-%m-%dT%H:%M:%S.000Z")})  # fmt: skip
    history = attach_labels(dbt_run["txn"], dbt_run["lab"])
    ref_cards, ref_terms = pit.snapshot_frame(history, as_of)
    cards = gold(suffix, "card_features_latest").set_index("card_id")
    ref_cards = ref_cards.set_index("card_id").loc[cards.index]
    for col in features.CARD_AGGREGATE_COLUMNS:
        a = pd.to_numeric(cards[col], errors="coerce").to_numpy(dtype=float)
        np.testing.assert_allclose(a, ref_cards[col].to_numpy(dtype=float), atol=1e-6, err_msg=col)
    for col in ("card_recent_terminal_ids", "card_recent_device_ids", "card_recent_countries"):
        assert [tuple(v) for v in cards[col]] == list(ref_cards[col]), col
    terms = gold(suffix, "terminal_features_latest").set_index("terminal_id")
    ref_terms = ref_terms.set_index("terminal_id").loc[terms.index]
    for col in features.TERMINAL_AGGREGATE_COLUMNS:
        assert (terms[col].to_numpy() == ref_terms[col].to_numpy()).all(), col
    # a card snapshot read from Gold builds the same vector as the reference snapshot
    for card_id in cards.index[:20]:
        online = pit.card_features_from_row({**cards.loc[card_id].to_dict(), "card_id": card_id}, as_of)
        offline = pit.card_snapshot(history, card_id, as_of)
        txn = features.Transaction(
            "probe",
            as_of,
            card_id,
            offline.card_recent_terminal_ids[0] if offline.card_recent_terminal_ids else "T",
            42.0,
        )
        np.testing.assert_allclose(
            features.build_vector(txn, online, None), features.build_vector(txn, offline, None), atol=1e-6
        )
