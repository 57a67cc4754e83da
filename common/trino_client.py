"""One way to reach Trino from Python: a DB-API connection built from ``TRINO_*`` settings.

Values are always bound (``?`` placeholders), never formatted into the SQL.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from common.settings import trino_settings


def connect(**kwargs: Any) -> Any:
    """A ``trino.dbapi`` connection to the coordinator, on the Delta catalog unless told otherwise."""
    import trino

    t = trino_settings()
    kwargs.setdefault("catalog", t.trino_catalog)
    return trino.dbapi.connect(host=t.trino_host, port=t.trino_port, user=t.trino_user, **kwargs)


def catalog() -> str:
    """The Delta catalog the platform's schemas live in (``TRINO_CATALOG``)."""
    return trino_settings().trino_catalog


def rows(sql: str, params: tuple[Any, ...] = ()) -> list[list[Any]]:
    cur = connect().cursor()
    cur.execute(sql, params)
    return list(cur.fetchall())


def scalar(sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The first value of the first row."""
    return rows(sql, params)[0][0]


def frame(sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    cur = connect().cursor()
    cur.execute(sql, params)
    data = cur.fetchall()
    return pd.DataFrame(data, columns=[d[0] for d in cur.description])
