"""Input validation: bad external files fail naming the column and rows; nothing is dropped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.data import DataValidationError, attach_labels, load_labelled, validate_transactions

GOOD = {
    "transaction_id": ["a", "b", "c", "d"],
    "event_time": [
        "2025-01-01 10:00:00",
        "2025-01-01T11:00:00Z",
        "2025-01-02 09:30:00",
        "2025-01-03 08:00:00",
    ],
    "card_id": ["c1", "c1", "c2", "c2"],
    "terminal_id": ["t1", "t2", "t1", "t3"],
    "amount": [10.5, 20.0, 7.25, 99.99],
    "is_fraud": [0, 1, 0, 0],
}


def raw(**changes: list[object]) -> pd.DataFrame:
    return pd.DataFrame({**GOOD, **changes})


def problems(df: pd.DataFrame) -> dict[str, tuple[int, ...]]:
    with pytest.raises(DataValidationError) as info:
        validate_transactions(df)
    found: dict[str, tuple[int, ...]] = {}
    for p in info.value.problems:
        found[p.column] = tuple(sorted(found.get(p.column, ()) + p.rows))
    return found


def test_required_columns_only_is_enough_and_nothing_is_dropped() -> None:
    df = validate_transactions(raw())
    assert len(df) == 4
    assert df["channel"].isna().all() and df["latitude"].isna().all()
    assert str(df["event_time"].dt.tz) == "UTC"
    # the fraud without label_time is assumed labelled 7 days later
    assert df.loc[1, "label_time"] == df.loc[1, "event_time"] + pd.Timedelta(days=7)
    assert df.loc[[0, 2, 3], "label_time"].isna().all()


def test_missing_required_column_is_named() -> None:
    with pytest.raises(DataValidationError, match="'terminal_id': required column is missing"):
        validate_transactions(raw().drop(columns=["terminal_id"]))


def test_unparseable_times_name_the_rows() -> None:
    assert problems(raw(event_time=["2025-01-01", "yesterday", "2025-13-45 10:00", None])) == {
        "event_time": (1, 2, 3)
    }


def test_numeric_times_are_refused() -> None:
    with pytest.raises(DataValidationError, match="'event_time': expected timestamps"):
        validate_transactions(raw(event_time=[1, 2, 3, 4]))


def test_labels_outside_0_1_name_the_rows() -> None:
    assert problems(raw(is_fraud=[0, 2, "yes", None])) == {"is_fraud": (1, 2, 3)}
    assert validate_transactions(raw(is_fraud=[True, False, "1", 0.0]))["is_fraud"].tolist() == [1, 0, 1, 0]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        raw(
            transaction_id=["a", "a", "c", ""],
            amount=[1.0, -5.0, "ten", float("inf")],
            card_id=["c1", None, "c2", "c2"],
        )
    )
    assert found == {"transaction_id": (0, 1, 3), "amount": (1, 2, 3), "card_id": (1,)}


def test_optional_columns_are_checked_when_present() -> None:
    found = problems(
        raw(
            channel=["online", "POS", None, "card_present"],
            mcc=["5411", "54x1", None, "742"],
            latitude=[48.8, 91.0, None, "north"],
            label_time=[None, "2024-12-31", None, "not a time"],
        )
    )
    assert found == {"channel": (1,), "mcc": (1,), "latitude": (1, 3), "label_time": (1, 3)}


def test_short_numeric_mcc_is_zero_padded() -> None:
    assert validate_transactions(raw(mcc=[742, "5411", None, 4111]))["mcc"].tolist() == [
        "0742",
        "5411",
        None,
        "4111",
    ]


def test_csv_and_parquet_inputs(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    raw().assign(card_id=[1, 1, 2, 2]).to_csv(csv, index=False)
    df = load_labelled(csv)
    assert df["card_id"].tolist() == ["1", "1", "2", "2"]
    pq = tmp_path / "in.parquet"
    raw().assign(
        card_id=[1, 1, 2, 2], event_time=pd.to_datetime(GOOD["event_time"], format="mixed", utc=True)
    ).to_parquet(pq)
    assert load_labelled(pq)["card_id"].tolist() == ["1", "1", "2", "2"]
    with pytest.raises(ValueError, match="unsupported file type"):
        load_labelled(tmp_path / "in.json")


def test_attach_labels_marks_only_labelled_transactions() -> None:
    txns = raw().drop(columns=["is_fraud"])
    labels = pd.DataFrame(
        {
            "transaction_id": ["c"],
            "is_fraud": [1],
            "label_time": ["2025-01-20T00:00:00Z"],
            "fraud_scenario": ["x"],
        }
    )
    df = attach_labels(txns, labels)
    assert df["is_fraud"].tolist() == [0, 0, 1, 0]
    assert df.loc[2, "label_time"] == pd.Timestamp("2025-01-20", tz="UTC")
