"""The point-in-time builder: no leakage (property test), equal to the snapshot (online) path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import features
from ml.data import validate_transactions
from ml.pit import (
    AGGREGATE_COLUMNS,
    build_feature_frame,
    card_features_from_row,
    card_snapshot,
    feature_matrix,
    snapshot_frame,
    terminal_features_from_row,
    terminal_snapshot,
    transaction_from_row,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def online_vectors(history: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """What serving computes: snapshots as of each transaction time + the request itself."""
    out = []
    for _, row in rows.iterrows():
        txn = transaction_from_row(row)
        card = card_snapshot(history, txn.card_id, txn.event_time)
        term = terminal_snapshot(history, txn.terminal_id, txn.event_time)
        out.append(features.build_vector(txn, card, term))
    return np.asarray(out)


def test_frame_has_every_aggregate_column_one_row_per_transaction_in_time_order(
    small_sim: pd.DataFrame, small_frame: pd.DataFrame
) -> None:
    assert len(small_frame) == len(small_sim)
    assert set(AGGREGATE_COLUMNS) <= set(small_frame.columns)
    assert small_frame["event_time_ms"].is_monotonic_increasing
    assert set(small_frame["transaction_id"]) == set(small_sim["transaction_id"])


def test_offline_rows_equal_online_vectors_on_simulated_data(small_frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    fraud = np.flatnonzero(small_frame["is_fraud"].to_numpy() == 1)
    late = np.flatnonzero(small_frame["event_time"] > small_frame["event_time"].min() + pd.Timedelta(days=35))
    idx = np.unique(
        np.concatenate([rng.choice(fraud, 40, replace=False), rng.choice(late, 80, replace=False)])
    )
    offline = feature_matrix(small_frame.iloc[idx])
    online = online_vectors(small_frame, small_frame.iloc[idx])
    np.testing.assert_allclose(offline, online, rtol=1e-9, atol=1e-9)


def assert_same_snapshot(a: features.CardFeatures, b: features.CardFeatures) -> None:
    """Equal fields; float sums within 1e-12 relative (summation order differs)."""
    left, right = a.to_dict(), b.to_dict()
    assert left.keys() == right.keys()
    for key, value in left.items():
        if isinstance(value, float):
            assert value == pytest.approx(right[key], rel=1e-12, abs=1e-9), key
        else:
            assert value == right[key], key


def test_snapshot_frame_matches_single_snapshots(small_frame: pd.DataFrame) -> None:
    as_of = (small_frame["event_time"].min() + pd.Timedelta(days=40, hours=5)).to_pydatetime()
    cards, terms = snapshot_frame(small_frame, as_of)
    assert cards["card_id"].is_unique and terms["terminal_id"].is_unique
    for row in cards.sample(15, random_state=1).to_dict("records"):
        assert_same_snapshot(
            card_features_from_row(row, as_of), card_snapshot(small_frame, row["card_id"], as_of)
        )
    for row in terms.sample(15, random_state=1).to_dict("records"):
        assert terminal_features_from_row(row, as_of) == terminal_snapshot(
            small_frame, row["terminal_id"], as_of
        )


# --------------------------------------------------------------------------- property tests


@st.composite
def histories(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 24))
    rows = []
    for i in range(n):
        # coarse 6-hour grid over ~50 days: ties and window edges are frequent
        slot = draw(st.integers(0, 200))
        ms_jitter = draw(st.sampled_from([0, 0, 1, 3_600_000]))
        fraud = draw(st.booleans())
        delay_h = draw(st.integers(0, 24 * 20))
        geo = draw(st.sampled_from([None, (48.85, 2.35), (40.71, -74.0), (35.68, 139.69)]))
        rows.append(
            {
                "transaction_id": f"tx{i:03d}",
                "event_time": T0 + timedelta(hours=6 * slot, milliseconds=ms_jitter),
                "card_id": draw(st.sampled_from(["c0", "c1", "c2"])),
                "terminal_id": draw(st.sampled_from(["t0", "t1", "t2"])),
                "amount": draw(st.integers(1, 500_00)) / 100,
                "is_fraud": int(fraud),
                "label_time": (T0 + timedelta(hours=6 * slot + delay_h, milliseconds=ms_jitter))
                if fraud
                else None,
                "channel": draw(st.sampled_from([None, "online", "card_present"])),
                "device_id": draw(st.sampled_from([None, "d0", "d1"])),
                "country": draw(st.sampled_from([None, "FR", "US"])),
                "mcc": draw(st.sampled_from([None, "5411", "5732"])),
                "latitude": None if geo is None else geo[0],
                "longitude": None if geo is None else geo[1],
                "merchant_name": draw(st.sampled_from(["Shop", "SHOP", "shop"])),
            }
        )
    return pd.DataFrame(rows)


def known_before(raw: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """The world as seen at ``cutoff``: earlier transactions, labels arrived before it."""
    seen = raw[raw["event_time"] < cutoff].copy()
    unknown = seen["label_time"].notna() & (pd.to_datetime(seen["label_time"], utc=True) >= cutoff)
    seen.loc[unknown, "is_fraud"] = 0
    seen.loc[unknown, "label_time"] = None
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=histories(), cut_slot=st.integers(0, 210))
def test_rows_never_depend_on_later_transactions_or_labels(raw: pd.DataFrame, cut_slot: int) -> None:
    cutoff = T0 + timedelta(hours=6 * cut_slot)
    full = build_feature_frame(validate_transactions(raw)).set_index("transaction_id")
    seen = known_before(raw, cutoff)
    if seen.empty:
        return
    past = build_feature_frame(validate_transactions(seen)).set_index("transaction_id")
    cols = list(AGGREGATE_COLUMNS)
    pd.testing.assert_frame_equal(full.loc[past.index, cols], past[cols], check_exact=False, rtol=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=histories())
def test_vectorised_builder_equals_snapshot_path(raw: pd.DataFrame) -> None:
    built = build_feature_frame(validate_transactions(raw))
    np.testing.assert_allclose(feature_matrix(built), online_vectors(built, built), rtol=1e-9, atol=1e-9)
