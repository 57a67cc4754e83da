"""Validation rules for what enters the platform: one pydantic model per event type.

``TransactionIn`` is the column contract of ``transactions.raw`` (see ``schemas/transaction.avsc``),
``LabelIn`` the one of ``transactions.labels``. An event that fails becomes a
:class:`ValidationFailure` naming the first failing field, a short machine-readable ``reason``
(also the DLQ header and the metric label, so its cardinality stays small) and a human message
listing every error.

Rules beyond the Avro types:

* ids are non-empty strings (≤ 256 characters);
* ``event_time`` / ``label_time`` are timezone-aware and within [2000-01-01, 2100-01-01) UTC;
* ``amount`` is a decimal > 0 with at most 2 decimal places and 12 digits (decimal(12,2));
  a float input is taken by its shortest repr (``88.46`` → ``Decimal('88.46')``), so a float
  carrying binary noise (``0.30000000000000004``) is refused, never silently rounded;
* ``currency`` is an active ISO 4217 currency, ``country`` an ISO 3166-1 alpha-2 code,
  ``mcc`` four digits, ``channel`` ``card_present`` or ``online``;
* latitude in [-90, 90], longitude in [-180, 180], no NaN/inf.
"""

from __future__ import annotations

import json
import math
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from producer.iso import ISO_3166_ALPHA2, ISO_4217_CURRENCIES

EVENT_TIME_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_TIME_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
TIME_FIELDS: Final = frozenset({"event_time", "label_time"})


def _check_currency(value: str) -> str:
    if value not in ISO_4217_CURRENCIES:
        raise PydanticCustomError(
            "unknown_currency", "'{value}' is not an active ISO 4217 currency code", {"value": value}
        )
    return value


def _check_country(value: str) -> str:
    if value not in ISO_3166_ALPHA2:
        raise PydanticCustomError(
            "unknown_country", "'{value}' is not an ISO 3166-1 alpha-2 country code", {"value": value}
        )
    return value


Id = Annotated[str, Field(min_length=1, max_length=256)]
UtcTime = Annotated[AwareDatetime, Field(ge=EVENT_TIME_MIN, lt=EVENT_TIME_MAX)]
Money = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
Currency = Annotated[str, AfterValidator(_check_currency)]
Country = Annotated[str, AfterValidator(_check_country)]
Mcc = Annotated[str, Field(pattern=r"^[0-9]{4}$")]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class TransactionIn(BaseModel):
    """A transaction as it may enter ``transactions.raw``; extra keys (e.g. ground truth) are ignored."""

    model_config = ConfigDict(extra="ignore")

    transaction_id: Id
    event_time: UtcTime
    card_id: Id
    customer_id: Id | None = None
    terminal_id: Id
    merchant_name: str | None = None
    amount: Money
    currency: Currency
    mcc: Mcc | None = None
    channel: Literal["card_present", "online"] | None = None
    device_id: Id | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    country: Country | None = None


class LabelIn(BaseModel):
    """A fraud label as it may enter ``transactions.labels``."""

    model_config = ConfigDict(extra="ignore")

    transaction_id: Id
    card_id: Id
    is_fraud: bool
    fraud_scenario: str | None = None
    label_time: UtcTime


EventType = Literal["transaction", "label"]
MODELS: Final[dict[str, type[BaseModel]]] = {"transaction": TransactionIn, "label": LabelIn}

# pydantic error type → DLQ reason (anything unlisted: "invalid")
_REASONS: Final[dict[str, str]] = {
    "missing": "missing",
    "string_too_short": "empty",
    "string_too_long": "too_long",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "decimal_max_digits": "bad_precision",
    "decimal_max_places": "bad_precision",
    "decimal_whole_digits": "bad_precision",
    "string_pattern_mismatch": "bad_format",
    "literal_error": "invalid_value",
    "unknown_currency": "unknown_currency",
    "unknown_country": "unknown_country",
    "model_type": "wrong_type",
    "dict_type": "wrong_type",
}


# errors whose message already shows the value (or has none to show)
_NO_INPUT_ECHO: Final = frozenset({"missing", "unknown_currency", "unknown_country"})


@dataclass(frozen=True, slots=True)
class ValidationFailure:
    """Why an event was refused: ``reason`` (short code), the first failing ``field``, all errors."""

    reason: str
    field: str
    message: str


def _reason_of(error_type: str, field: str) -> str:
    if field in TIME_FIELDS and error_type != "missing":
        return "bad_timestamp"  # unparseable, naive, or outside [2000, 2100)
    if error_type in _REASONS:
        return _REASONS[error_type]
    if error_type.endswith(("_type", "_parsing")):
        return "wrong_type"
    return "invalid"


def failure_of(exc: ValidationError) -> ValidationFailure:
    """The DLQ reason for a pydantic error: the first error decides; the message lists all."""
    errors = exc.errors(include_url=False, include_context=False)
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"]) or "<event>"
        shown = err.get("input")
        got = "" if err["type"] in _NO_INPUT_ECHO else f" (got {_short(shown)})"
        parts.append(f"{loc}: {err['msg']}{got}")
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    return ValidationFailure(_reason_of(first["type"], field), field, "; ".join(parts))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(event_type: str, raw: Any) -> BaseModel | ValidationFailure:
    """Validate one raw event (a mapping) as ``event_type``; never raises for bad input."""
    try:
        return MODELS[event_type].model_validate(raw)
    except ValidationError as exc:
        return failure_of(exc)


def to_record(model: BaseModel) -> dict[str, Any]:
    """The Avro record of a validated model (field names are the schema's)."""
    return model.__dict__


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return dict(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    return str(value)


def to_json_bytes(raw: Any) -> bytes:
    """The original event as JSON (the DLQ payload of an invalid event).

    Timestamps become ISO-8601 strings, decimals strings; NaN/inf are kept as the non-standard
    ``NaN``/``Infinity`` tokens Python's json reads back, so a refused value is shown as it was.
    """
    if isinstance(raw, Mapping):
        raw = {str(k): v for k, v in raw.items()}
    return json.dumps(raw, default=_json_default, separators=(",", ":"), ensure_ascii=False).encode()


def from_json_bytes(data: bytes) -> Any:
    """Inverse of :func:`to_json_bytes` (DLQ replay)."""
    return json.loads(data)


def is_missing(value: Any) -> bool:
    """None or a float NaN (how Parquet/pandas spell a missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
