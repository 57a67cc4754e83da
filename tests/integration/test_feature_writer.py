"""feature_writer against the real Redis (and Trino for the Gold path): versioned writes, atomic
pointer switch, expiry of old versions, the lock, an empty snapshot refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import orjson
import pandas as pd
import pytest
import redis
import trino

import features
from common import trino_client
from common.settings import redis_settings
from contracts.online_store import READ_SCRIPT, OnlineLayout
from ml.data import validate_transactions
from ml.feature_writer import FeatureWriterError, write_frames, write_online_features, write_snapshot
from ml.pit import card_features_from_row, snapshot_frame, terminal_features_from_row
from ml.settings import FeatureWriterSettings
from producer.simulator import SimulatorConfig, simulate

SETTINGS = FeatureWriterSettings(batch_size=100, old_version_ttl_s=120)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    cfg = SimulatorConfig(seed=3, days=20, n_customers=150, n_terminals=120, n_online_merchants=20)
    return validate_transactions(simulate(cfg).to_pandas())


@pytest.fixture(scope="module")
def snap(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    as_of = features.from_epoch_ms(int(history["event_time_ms"].max()) + 1)
    cards, terms = snapshot_frame(history, as_of)
    return cards, terms, as_of


@pytest.fixture
def client(running_stack: None, unique: str) -> Iterator[tuple[redis.Redis, str]]:
    r = redis.Redis.from_url(redis_settings().redis_url)
    ns = f"test-fw-{unique}"
    yield r, ns
    keys = list(r.scan_iter(match=f"{ns}:*", count=10_000))
    if keys:
        r.delete(*keys)
    r.close()


def read(r: redis.Redis, ns: str, *suffixes: str) -> list[bytes | None]:
    layout = OnlineLayout(ns)
    return r.eval(READ_SCRIPT, 1, layout.pointer, ns, *suffixes)  # type: ignore[no-any-return]


def test_write_publish_and_read_back(client: tuple[redis.Redis, str], snap: tuple) -> None:
    r, ns = client
    cards, terms, as_of = snap
    report = write_frames(cards, terms, as_of=as_of, client=r, settings=SETTINGS, namespace=ns)
    assert report["version"] == "1" and report["cards"] == len(cards) and report["terminals"] == len(terms)
    assert report["keys_written"] == len(cards) + len(terms) and report["keys_per_s"] > 0
    assert report["snapshot_lag_s"] > 0 and report["as_of_min"].startswith(as_of.strftime("%Y-%m-%dT%H"))
    row = cards.iloc[5].to_dict()
    term = terms.iloc[3].to_dict()
    version, card_raw, term_raw, missing = read(
        r, ns, f"card:{row['card_id']}", f"terminal:{term['terminal_id']}", "card:nope"
    )
    assert version == b"1" and missing is None
    assert features.CardFeatures.from_dict(orjson.loads(card_raw)) == card_features_from_row(row, as_of)  # type: ignore[arg-type]
    assert features.TerminalFeatures.from_dict(orjson.loads(term_raw)) == terminal_features_from_row(
        term, as_of
    )  # type: ignore[arg-type]
    meta = r.hgetall(OnlineLayout(ns).meta("1"))
    assert meta[b"cards"] == str(len(cards)).encode() and meta[b"feature_set_version"] == b"fs-1.0.0"
    assert r.ttl(OnlineLayout(ns).card("1", row["card_id"])) == -1  # the published version never expires


def test_readers_see_the_old_version_until_the_switch_then_old_keys_expire(
    client: tuple[redis.Redis, str], snap: tuple
) -> None:
    r, ns = client
    cards, terms, as_of = snap
    write_frames(cards, terms, as_of=as_of, client=r, settings=SETTINGS, namespace=ns)
    layout = OnlineLayout(ns)
    card_id = cards["card_id"].iloc[0]
    seen_during_write: list[bytes | None] = []

    def batches() -> Iterator[pd.DataFrame]:
        for start in range(0, len(cards), 50):
            yield cards.iloc[start : start + 50]
            # mid-write: version 2 is half written, readers still get version 1, whole
            version, value = read(r, ns, f"card:{card_id}")
            seen_during_write.append(version)
            assert value is not None

    report = write_snapshot(r, batches(), iter([terms]), settings=SETTINGS, namespace=ns, as_of=as_of)
    assert (
        report["version"] == "2" and report["previous_version"] == "1" and report["expired_versions"] == ["1"]
    )
    assert seen_during_write and set(seen_during_write) == {b"1"}
    assert read(r, ns, f"card:{card_id}")[0] == b"2"
    ttl = r.ttl(layout.card("1", card_id))
    assert 0 < ttl <= SETTINGS.old_version_ttl_s
    assert r.ttl(layout.card("2", card_id)) == -1
    assert [v.decode() for v in r.zrange(layout.versions, 0, -1)] == ["2"]


def test_failed_run_leaves_the_published_version_and_expires_its_own(
    client: tuple[redis.Redis, str], snap: tuple
) -> None:
    r, ns = client
    cards, terms, as_of = snap
    write_frames(cards, terms, as_of=as_of, client=r, settings=SETTINGS, namespace=ns)

    def broken() -> Iterator[pd.DataFrame]:
        yield cards.iloc[:40]
        raise RuntimeError("Trino went away")

    with pytest.raises(RuntimeError, match="Trino went away"):
        write_snapshot(r, broken(), iter([]), settings=SETTINGS, namespace=ns, as_of=as_of)
    layout = OnlineLayout(ns)
    assert r.get(layout.pointer) == b"1"
    assert 0 < r.ttl(layout.card("2", cards["card_id"].iloc[0])) <= SETTINGS.old_version_ttl_s
    with pytest.raises(FeatureWriterError, match="empty snapshot"):
        write_frames(cards.iloc[:0], terms.iloc[:0], as_of=as_of, client=r, settings=SETTINGS, namespace=ns)
    assert r.get(layout.pointer) == b"1" and r.get(layout.lock) is None
    r.set(layout.lock, "someone-else")
    with pytest.raises(FeatureWriterError, match="holds"):
        write_frames(cards, terms, as_of=as_of, client=r, settings=SETTINGS, namespace=ns)
    assert r.get(layout.lock) == b"someone-else"


# --------------------------------------------------------------------------- Gold through Trino


def _lit(v: object, kind: str) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "NULL"
    if kind == "array":
        items = ", ".join("'" + str(x).replace("'", "''") + "'" for x in v)  # type: ignore[attr-defined]
        return f"CAST(ARRAY[{items}] AS array(varchar))"
    if kind == "varchar":
        return "'" + str(v).replace("'", "''") + "'"
    if kind == "bigint":
        return str(int(v))  # type: ignore[call-overload]
    return f"DOUBLE '{float(v)!r}'"  # type: ignore[arg-type]  # (a bare 1.5 is a DECIMAL literal)


def _create(cur: trino.dbapi.Cursor, table: str, frame: pd.DataFrame, key: str, as_of: datetime) -> None:
    types = {key: "varchar"}
    for c in frame.columns:
        if c == key:
            continue
        if c.startswith("card_recent"):
            types[c] = "array"
        elif "count" in c or c.endswith("_ms"):
            types[c] = "bigint"
        else:
            types[c] = "double"
    ddl = ", ".join(f"{c} {'array(varchar)' if t == 'array' else t}" for c, t in types.items())
    cur.execute(
        f"CREATE TABLE {table} ({key} varchar, as_of timestamp(3) with time zone, {ddl.split(', ', 1)[1]})"
    )
    cur.fetchall()
    ts = "TIMESTAMP '" + as_of.strftime("%Y-%m-%d %H:%M:%S.") + f"{as_of.microsecond // 1000:03d} UTC'"
    rows = frame.to_dict("records")
    for start in range(0, len(rows), 200):
        values = ", ".join(
            "("
            + ", ".join([_lit(r[key], "varchar"), ts] + [_lit(r[c], types[c]) for c in types if c != key])
            + ")"
            for r in rows[start : start + 200]
        )
        cur.execute(
            f"INSERT INTO {table} ({key}, as_of, {', '.join(c for c in types if c != key)}) VALUES {values}"
        )
        cur.fetchall()


def test_gold_snapshots_through_trino(client: tuple[redis.Redis, str], snap: tuple, unique: str) -> None:
    r, ns = client
    cards, terms, as_of = snap
    conn = trino_client.connect()
    cur = conn.cursor()
    card_table, term_table = f"gold.test_card_features_{unique}", f"gold.test_terminal_features_{unique}"
    try:
        _create(cur, card_table, cards, "card_id", as_of)
        _create(cur, term_table, terms, "terminal_id", as_of)
        report = write_online_features(
            card_table=card_table, terminal_table=term_table, settings=SETTINGS, namespace=ns, client=r
        )
        assert report["cards"] == len(cards) and report["terminals"] == len(terms)
        assert report["source"].startswith("trino:")
        for row in cards.sample(25, random_state=0).to_dict("records"):
            _, value = read(r, ns, f"card:{row['card_id']}")
            assert features.CardFeatures.from_dict(orjson.loads(value)) == card_features_from_row(row, as_of)  # type: ignore[arg-type]
        for row in terms.sample(25, random_state=0).to_dict("records"):
            _, value = read(r, ns, f"terminal:{row['terminal_id']}")
            got = features.TerminalFeatures.from_dict(orjson.loads(value))  # type: ignore[arg-type]
            assert got == terminal_features_from_row(row, as_of)
    finally:
        for table in (card_table, term_table):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.fetchall()
        conn.close()
