"""Declarative data-quality rules for what enters Bronze.

A rule set is a tuple of :class:`Rule` values — a reason code, a field and a :class:`Check` — not
code paths. Rules are evaluated in order and the first one a row fails decides its DLQ ``reason``
and ``field`` (a null predicate counts as a failure). Each check is written once and interpreted
twice: :meth:`Check.passes` in plain Python (unit tests, tools) and :meth:`Check.column` as a Spark
expression (the job); an integration test holds the two interpretations together.

Time rules compare with a reference time: the stream uses the micro-batch's ingest timestamp,
which Spark records in the offset log, so a batch replayed after a crash is judged exactly as the
first time (a row must never move between Bronze and the DLQ on a replay).

The limits, code lists and reason codes are the contract's (:mod:`contracts.events`: the same
values the producer and the API validate with, a unit test holds the two rule sets together), so an
event the producer accepts is refused here only by the stream's own freshness rules (``in_future``,
``too_old``, relative to the ingest time), and both stages read the same on one dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from pyspark.sql import functions as F  # noqa: N812

from contracts.events import (
    AMOUNT_MAX,
    AMOUNT_MIN,
    BLANK_CHARS,
    CHANNELS,
    ID_MAX_LENGTH,
    LATITUDE_RANGE,
    LONGITUDE_RANGE,
    MCC_PATTERN,
    MERCHANT_NAME_MAX_LENGTH,
)
from contracts.iso import ISO_3166_ALPHA2, ISO_4217_CURRENCIES

if TYPE_CHECKING:
    from pyspark.sql import Column

    from streaming.settings import StreamingSettings

#: the reasons of the stream's own time rules (the contract's are the producer's)
FRESHNESS_REASONS: Final = frozenset({"in_future", "too_old"})

# --------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """A predicate over one field's value (and the reference time)."""

    def passes(self, value: Any, ref: datetime) -> bool:
        raise NotImplementedError

    def column(self, col: Column, ref: Column) -> Column:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class NotNull(Check):
    def passes(self, value: Any, ref: datetime) -> bool:
        return value is not None

    def column(self, col: Column, ref: Column) -> Column:
        return col.isNotNull()

    def describe(self) -> str:
        return "is required"


@dataclass(frozen=True)
class NotBlank(Check):
    """A string with a character besides white space (null passes: :class:`NotNull` says missing)."""

    def passes(self, value: Any, ref: datetime) -> bool:
        return value is None or bool(str(value).strip(BLANK_CHARS))

    def column(self, col: Column, ref: Column) -> Column:
        return col.isNull() | col.rlike(r"\S")  # Java's \s is BLANK_CHARS

    def describe(self) -> str:
        return "must not be blank"


@dataclass(frozen=True)
class MaxLength(Check):
    """A string of at most ``length`` characters (null passes)."""

    length: int

    def passes(self, value: Any, ref: datetime) -> bool:
        return value is None or len(str(value)) <= self.length

    def column(self, col: Column, ref: Column) -> Column:
        return col.isNull() | (F.length(col) <= self.length)

    def describe(self) -> str:
        return f"must be at most {self.length} characters"


@dataclass(frozen=True)
class Between(Check):
    low: Decimal
    high: Decimal

    def passes(self, value: Any, ref: datetime) -> bool:
        if value is None:
            return False
        v = value if isinstance(value, Decimal) else Decimal(str(value))
        return v.is_finite() and self.low <= v <= self.high

    def column(self, col: Column, ref: Column) -> Column:

        # compared as decimals: exact for decimal(12,2) amounts, and doubles NaN/inf fail the range
        low, high = F.lit(self.low), F.lit(self.high)
        return (col >= low) & (col <= high) & ~F.isnan(col.cast("double"))

    def describe(self) -> str:
        return f"must be within [{self.low}, {self.high}]"


@dataclass(frozen=True)
class OneOf(Check):
    values: frozenset[str]
    label: str  # what the set is, for the message ("an ISO 4217 currency")

    def passes(self, value: Any, ref: datetime) -> bool:
        return value in self.values

    def column(self, col: Column, ref: Column) -> Column:
        return col.isin(sorted(self.values))

    def describe(self) -> str:
        return f"must be {self.label}"


@dataclass(frozen=True)
class Matches(Check):
    pattern: str  # a full match is required

    def passes(self, value: Any, ref: datetime) -> bool:
        return value is not None and re.fullmatch(self.pattern, str(value)) is not None

    def column(self, col: Column, ref: Column) -> Column:
        return col.rlike(f"^(?:{self.pattern})$")

    def describe(self) -> str:
        return f"must match {self.pattern}"


@dataclass(frozen=True)
class NotAfterRef(Check):
    """A time at most ``seconds`` after the reference time (tolerated clock skew)."""

    seconds: int

    def passes(self, value: Any, ref: datetime) -> bool:
        return value is not None and value <= ref + timedelta(seconds=self.seconds)

    def column(self, col: Column, ref: Column) -> Column:

        return col <= ref + F.make_dt_interval(secs=F.lit(self.seconds))

    def describe(self) -> str:
        return f"must not be more than {self.seconds}s after the ingest time"


@dataclass(frozen=True)
class NotBeforeRef(Check):
    """A time at most ``seconds`` before the reference time (maximum age)."""

    seconds: int

    def passes(self, value: Any, ref: datetime) -> bool:
        return value is not None and value >= ref - timedelta(seconds=self.seconds)

    def column(self, col: Column, ref: Column) -> Column:

        return col >= ref - F.make_dt_interval(secs=F.lit(self.seconds))

    def describe(self) -> str:
        return f"must not be more than {self.seconds // 86400} days before the ingest time"


# ---------------------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """``field`` must pass ``check``; otherwise the row goes to the DLQ with ``reason``.

    ``optional`` rules apply only when the field is present (a null passes).
    """

    reason: str
    field: str
    check: Check
    optional: bool = False

    @property
    def name(self) -> str:
        return f"{self.reason}:{self.field}"

    def passes(self, record: Mapping[str, Any], ref: datetime) -> bool:
        value = record.get(self.field)
        if self.optional and value is None:
            return True
        return self.check.passes(value, ref)

    def message(self, value: Any) -> str:
        return f"{self.field} {self.check.describe()} (got {value!r})"

    def column(self, ref: Column) -> Column:
        """True when the row passes; never null."""

        col = F.col(self.field)
        ok = self.check.column(col, ref)
        if self.optional:
            ok = col.isNull() | ok
        return F.coalesce(ok, F.lit(False))

    def message_column(self) -> Column:

        shown = F.coalesce(F.col(self.field).cast("string"), F.lit("null"))
        return F.concat(F.lit(f"{self.field} {self.check.describe()} (got "), shown, F.lit(")"))


@dataclass(frozen=True)
class Failure:
    reason: str
    field: str
    message: str


def first_failure(rules: Iterable[Rule], record: Mapping[str, Any], ref: datetime) -> Failure | None:
    """The first rule ``record`` fails, or None when it passes them all (plain Python)."""
    for rule in rules:
        if not rule.passes(record, ref):
            return Failure(rule.reason, rule.field, rule.message(record.get(rule.field)))
    return None


def failure_column(rules: Iterable[Rule], ref: Column) -> Column:
    """A struct ``(reason, field, error)`` naming the first failed rule, null when all pass."""

    expr: Column | None = None
    for rule in rules:
        failed = ~rule.column(ref)
        value = F.struct(
            F.lit(rule.reason).alias("reason"),
            F.lit(rule.field).alias("field"),
            rule.message_column().alias("error"),
        )
        expr = F.when(failed, value) if expr is None else expr.when(failed, value)
    if expr is None:
        raise ValueError("a rule set needs at least one rule")
    return expr


def _required(*fields: str) -> list[Rule]:
    return [Rule("missing", f, NotNull()) for f in fields]


def _ids(*fields: str, optional: bool = False) -> list[Rule]:
    """Not blank, not too long: the contract's ``Id``."""
    return [Rule("empty", f, NotBlank(), optional) for f in fields] + [
        Rule("too_long", f, MaxLength(ID_MAX_LENGTH), optional) for f in fields
    ]


def _event_age(s: StreamingSettings, time_field: str) -> list[Rule]:
    """The stream's own freshness rules, relative to the micro-batch's ingest time."""
    return [
        Rule("in_future", time_field, NotAfterRef(s.max_future_skew_s)),
        Rule("too_old", time_field, NotBeforeRef(s.max_event_age_days * 86_400)),
    ]


def transaction_rules(s: StreamingSettings) -> tuple[Rule, ...]:
    """The rules a transaction must pass to enter ``bronze.transactions``."""
    ids = ("transaction_id", "card_id", "terminal_id")
    lat, lon = (tuple(Decimal(str(v)) for v in r) for r in (LATITUDE_RANGE, LONGITUDE_RANGE))
    return (
        *_required(*ids, "event_time", "amount", "currency"),
        *_ids(*ids),
        *_ids("customer_id", "device_id", optional=True),
        Rule("too_long", "merchant_name", MaxLength(MERCHANT_NAME_MAX_LENGTH), optional=True),
        Rule("out_of_range", "amount", Between(AMOUNT_MIN, AMOUNT_MAX)),
        Rule("unknown_currency", "currency", OneOf(ISO_4217_CURRENCIES, "an active ISO 4217 currency")),
        *_event_age(s, "event_time"),
        Rule("invalid_value", "channel", OneOf(frozenset(CHANNELS), " or ".join(CHANNELS)), optional=True),
        Rule("bad_format", "mcc", Matches(MCC_PATTERN), optional=True),
        Rule(
            "unknown_country", "country", OneOf(ISO_3166_ALPHA2, "an ISO 3166-1 alpha-2 code"), optional=True
        ),
        Rule("out_of_range", "latitude", Between(*lat), optional=True),
        Rule("out_of_range", "longitude", Between(*lon), optional=True),
    )


def label_rules(s: StreamingSettings) -> tuple[Rule, ...]:
    """The rules a label must pass to enter ``bronze.labels``."""
    ids = ("transaction_id", "card_id")
    return (*_required(*ids, "is_fraud", "label_time"), *_ids(*ids), *_event_age(s, "label_time"))
