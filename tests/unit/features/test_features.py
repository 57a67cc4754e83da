"""features.py on hand-built histories: windows, boundaries, delayed labels, formulas, defaults."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

import features
from ml.data import validate_transactions
from ml.pit import build_feature_frame, feature_matrix, terminal_snapshot

T = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = {"terminal_id": "t0", "is_fraud": 0, "amount": 10.0}
    return validate_transactions(pd.DataFrame([{**base, **r} for r in rows]))


def row_of(built: pd.DataFrame, transaction_id: str) -> pd.Series:
    return built.set_index("transaction_id").loc[transaction_id]


def vec(built: pd.DataFrame, transaction_id: str) -> dict[str, float]:
    idx = int(np.flatnonzero(built["transaction_id"].to_numpy() == transaction_id)[0])
    return features.vector_dict(feature_matrix(built)[idx].tolist())


def test_card_windows_include_lower_bound_and_exclude_t_itself_and_later() -> None:
    built = build_feature_frame(
        frame(
            [
                {
                    "transaction_id": "a",
                    "event_time": T - timedelta(hours=1) - MS,
                    "card_id": "c",
                    "amount": 1.0,
                },
                {"transaction_id": "b", "event_time": T - timedelta(hours=1), "card_id": "c", "amount": 2.0},
                {"transaction_id": "c", "event_time": T - MS, "card_id": "c", "amount": 4.0},
                {"transaction_id": "q", "event_time": T, "card_id": "c", "amount": 8.0},
                {"transaction_id": "tie", "event_time": T, "card_id": "c", "amount": 16.0},
                {"transaction_id": "later", "event_time": T + MS, "card_id": "c", "amount": 32.0},
                {"transaction_id": "other", "event_time": T - MS, "card_id": "other", "amount": 64.0},
            ]
        )
    )
    q = row_of(built, "q")
    assert q["card_count_txn_1h"] == 2 and q["card_sum_amount_1h"] == 6.0  # b and c, not a
    assert q["card_count_txn_24h"] == 3 and q["card_sum_amount_24h"] == 7.0
    assert q["card_sum_amount_sq_30d"] == 1.0 + 4.0 + 16.0
    assert q["card_last_event_time_ms"] == features.to_epoch_ms(T - MS)
    assert row_of(built, "tie")["card_count_txn_24h"] == 3  # same millisecond: unseen
    later = row_of(built, "later")
    assert later["card_count_txn_1h"] == 3 and later["card_sum_amount_1h"] == 4 + 8 + 16  # b slid out


def test_thirty_day_window_boundary() -> None:
    d30 = timedelta(days=30)
    built = build_feature_frame(
        frame(
            [
                {"transaction_id": "old", "event_time": T - d30 - MS, "card_id": "c"},
                {"transaction_id": "edge", "event_time": T - d30, "card_id": "c"},
                {"transaction_id": "q", "event_time": T, "card_id": "c"},
            ]
        )
    )
    q = row_of(built, "q")
    assert q["card_count_txn_30d"] == 1
    assert q["card_count_txn_7d"] == 0
    assert q["card_last_event_time_ms"] == features.to_epoch_ms(T - d30)  # previous txn has no age limit


def test_previous_transaction_ties_broken_by_greatest_transaction_id() -> None:
    built = build_feature_frame(
        frame(
            [
                {
                    "transaction_id": "p1",
                    "event_time": T - MS,
                    "card_id": "c",
                    "latitude": 1.0,
                    "longitude": 1.0,
                },
                {
                    "transaction_id": "p2",
                    "event_time": T - MS,
                    "card_id": "c",
                    "latitude": 2.0,
                    "longitude": 2.0,
                },
                {"transaction_id": "q", "event_time": T, "card_id": "c", "latitude": 0.0, "longitude": 0.0},
            ]
        )
    )
    assert row_of(built, "q")["card_last_latitude"] == 2.0


def test_terminal_fraud_counts_only_labels_already_arrived() -> None:
    day = timedelta(days=1)
    built = build_feature_frame(
        frame(
            [
                # label arrives after the query: never counts
                {"transaction_id": "f_late", "event_time": T - 2 * day, "card_id": "x1", "is_fraud": 1,
                 "label_time": T + timedelta(hours=1)},
                # label arrived one hour before: counts
                {"transaction_id": "f_known", "event_time": T - 2 * day, "card_id": "x2", "is_fraud": 1,
                 "label_time": T - timedelta(hours=1)},
                # label arrives exactly at t: strictly before is required
                {"transaction_id": "f_at_t", "event_time": T - 3 * day, "card_id": "x3", "is_fraud": 1,
                 "label_time": T},
                # old fraud, known: in 30d and 90d windows, not in 7d
                {"transaction_id": "f_old", "event_time": T - 8 * day, "card_id": "x4", "is_fraud": 1,
                 "label_time": T - day},
                {"transaction_id": "g", "event_time": T - day, "card_id": "x5"},
                {"transaction_id": "q", "event_time": T, "card_id": "c"},
                {"transaction_id": "elsewhere", "event_time": T - day, "card_id": "x6", "terminal_id": "t1",
                 "is_fraud": 1, "label_time": T - timedelta(hours=2)},
            ]
        )
    )  # fmt: skip
    q = row_of(built, "q")
    assert q["terminal_count_txn_7d"] == 4  # f_late, f_known, f_at_t, g
    assert q["terminal_count_fraud_7d"] == 1  # f_known only
    assert q["terminal_count_txn_30d"] == 5
    assert q["terminal_count_fraud_30d"] == 2  # + f_old
    assert q["terminal_count_fraud_90d"] == 2
    v = vec(built, "q")
    assert v["terminal_fraud_share_7d"] == pytest.approx(1 / 4)
    assert v["terminal_fraud_share_30d"] == pytest.approx(2 / 5)
    history = built
    snap = terminal_snapshot(history, "t0", T)
    assert (snap.terminal_count_fraud_7d, snap.terminal_count_fraud_30d) == (1, 2)
    # one millisecond later the label stamped t has arrived, one hour later the late one too
    assert terminal_snapshot(history, "t0", T + MS).terminal_count_fraud_7d == 2
    assert (
        terminal_snapshot(history, "t0", T + timedelta(hours=1, milliseconds=1)).terminal_count_fraud_7d == 3
    )


def test_fraud_without_label_time_uses_the_assumed_delay() -> None:
    rows = [
        {"transaction_id": "f", "event_time": T - timedelta(days=6), "card_id": "x", "is_fraud": 1},
        {"transaction_id": "q1", "event_time": T, "card_id": "c"},
        {"transaction_id": "q2", "event_time": T + timedelta(days=1, milliseconds=1), "card_id": "c"},
    ]
    built = build_feature_frame(frame(rows))
    assert row_of(built, "q1")["terminal_count_fraud_30d"] == 0  # known at T + 1 day only
    assert row_of(built, "q2")["terminal_count_fraud_30d"] == 1


def test_vector_formulas_on_a_hand_built_history() -> None:
    paris, new_york = (48.8566, 2.3522), (40.7128, -74.0060)
    built = build_feature_frame(
        frame(
            [
                {"transaction_id": "h1", "event_time": T - timedelta(days=2), "card_id": "c", "amount": 10.0,
                 "latitude": paris[0], "longitude": paris[1], "terminal_id": "home", "country": "FR",
                 "channel": "card_present", "mcc": "5411"},
                {"transaction_id": "h2", "event_time": T - timedelta(hours=1), "card_id": "c", "amount": 30.0,
                 "latitude": paris[0], "longitude": paris[1], "terminal_id": "home", "country": "FR",
                 "channel": "card_present", "mcc": "5411"},
                {"transaction_id": "q", "event_time": T, "card_id": "c", "amount": 120.0,
                 "latitude": new_york[0], "longitude": new_york[1], "terminal_id": "nyc", "country": "US",
                 "channel": "online", "mcc": "5732", "device_id": "d1"},
            ]
        )
    )  # fmt: skip
    v = vec(built, "q")
    assert v["amount"] == 120.0
    assert v["log_amount"] == pytest.approx(math.log1p(120.0))
    assert v["hour_of_day"] == 12.0
    assert v["is_weekend"] == 0.0  # 2025-03-10 is a Monday
    assert v["is_night"] == 0.0
    assert v["is_online"] == 1.0
    assert v["mcc_code"] == 5732.0 and v["is_high_risk_mcc"] == 1.0
    assert v["card_count_txn_24h"] == 1.0 and v["card_count_txn_7d"] == 2.0
    assert v["card_avg_amount_7d"] == 20.0
    assert v["amount_zscore_30d"] == pytest.approx((120 - 20) / 10.0)  # population std of (10, 30)
    assert v["log_amount_ratio_30d"] == pytest.approx(math.log1p(120) - math.log1p(20))
    assert v["log_seconds_since_prev"] == pytest.approx(math.log1p(3600))
    assert v["distance_from_prev_km"] == pytest.approx(5837, rel=0.01)
    assert v["speed_from_prev_kmh"] == pytest.approx(v["distance_from_prev_km"], rel=1e-9)  # one hour
    assert v["distance_from_centroid_30d_km"] == pytest.approx(v["distance_from_prev_km"], rel=1e-6)
    assert v["is_new_terminal"] == 1.0
    assert v["is_new_device"] == 1.0
    assert v["is_new_country"] == 1.0
    h2 = vec(built, "h2")
    assert (h2["is_new_terminal"], h2["is_new_country"], h2["is_new_device"]) == (0.0, 0.0, features.MISSING)
    assert h2["amount_zscore_30d"] == 0.0  # fewer than two transactions of history


def test_weekend_and_night_flags() -> None:
    saturday_night = datetime(2025, 3, 15, 3, 30, tzinfo=UTC)
    txn = features.Transaction("t", saturday_night, "c", "t0", 5.0)
    v = features.vector_dict(
        features.build_vector(
            txn, features.CardFeatures("c", saturday_night), features.TerminalFeatures("t0", saturday_night)
        )
    )
    assert (v["is_weekend"], v["is_night"], v["hour_of_day"]) == (1.0, 1.0, 3.0)


def test_only_required_columns_give_documented_missing_values() -> None:
    built = build_feature_frame(
        frame(
            [
                {"transaction_id": "a", "event_time": T - timedelta(hours=2), "card_id": "c"},
                {"transaction_id": "b", "event_time": T, "card_id": "c"},
            ]
        )
    )
    v = vec(built, "b")
    for name in ("is_online", "mcc_code", "is_high_risk_mcc", "distance_from_prev_km", "speed_from_prev_kmh",
                 "distance_from_centroid_30d_km", "is_new_device", "is_new_country"):  # fmt: skip
        assert v[name] == features.MISSING, name
    assert v["log_seconds_since_prev"] == pytest.approx(math.log1p(7200))
    assert not np.isnan(feature_matrix(built)).any()


def test_build_vector_defaults_when_a_snapshot_is_unavailable() -> None:
    txn = features.Transaction("t", T, "c", "t0", 50.0, channel="online", mcc="5411")
    static = features.vector_dict(features.build_vector(txn, None, None))
    assert static["amount"] == 50.0 and static["is_online"] == 1.0  # transaction features still computed
    for name, value in features.STATIC_DEFAULTS.items():
        assert static[name] == value
    learnt = {"card_count_txn_24h": 3.0, "terminal_fraud_share_30d": 0.01}
    card = features.CardFeatures("c", T, card_count_txn_24h=7, card_sum_amount_24h=70.0)
    v = features.vector_dict(features.build_vector(txn, card, None, defaults=learnt))
    assert v["card_count_txn_24h"] == 7.0  # card snapshot present: computed
    assert v["terminal_fraud_share_30d"] == 0.01  # terminal missing: learnt default
    assert v["terminal_count_txn_7d"] == features.STATIC_DEFAULTS["terminal_count_txn_7d"]


def test_snapshots_round_trip_through_json() -> None:
    card = features.CardFeatures(
        "c",
        T,
        card_count_txn_1h=2,
        card_sum_amount_1h=12.5,
        card_last_event_time=T - MS,
        card_last_latitude=48.1,
        card_recent_terminal_ids=("t1", "t2"),
        card_recent_device_ids=("d",),
    )
    again = features.CardFeatures.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    term = features.TerminalFeatures("t1", T, terminal_count_txn_7d=9, terminal_count_fraud_7d=1)
    assert features.TerminalFeatures.from_dict(json.loads(json.dumps(term.to_dict()))) == term


def test_merchant_name_casing_never_changes_the_vector() -> None:
    txn = features.Transaction("t", T, "c", "t0", 99.0, channel="online", merchant_name="Café Lumière Online")
    card = features.CardFeatures(
        "c", T, card_count_txn_30d=3, card_sum_amount_30d=30.0, card_sum_amount_sq_30d=400.0
    )
    term = features.TerminalFeatures("t0", T, terminal_count_txn_7d=10, terminal_count_fraud_7d=1)
    ref = features.build_vector(txn, card, term)
    for name in ("café lumière online", "CAFÉ LUMIÈRE ONLINE", "cAFÉ lUMIÈRE oNLINE", None):
        assert features.build_vector(replace(txn, merchant_name=name), card, term) == ref


def test_feature_catalogue_is_consistent() -> None:
    assert len(features.FEATURE_NAMES) == len(set(features.FEATURE_NAMES))
    assert set(features.FEATURE_GROUPS.values()) == {"transaction", "card", "terminal"}
    assert set(features.STATIC_DEFAULTS) == {
        n for n, g in features.FEATURE_GROUPS.items() if g != "transaction"
    }
    assert features.FEATURE_SET_VERSION
