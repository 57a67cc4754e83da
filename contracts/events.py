"""What may enter the platform: one pydantic model per event type and the one rule set behind them.

``TransactionIn`` is the column contract of ``transactions.raw`` (``schemas/transaction.avsc``),
``LabelIn`` the one of ``transactions.labels``. The producer validates every event with them, the
serving API every request body; the stream checks the same limits in Spark
(``streaming.quality`` builds its rules from the constants below, a unit test holds the two
together). A refused event becomes a :class:`ValidationFailure` naming the first failing field, a
short machine-readable ``reason`` (the DLQ header and the metric label, so its cardinality stays
small) and a human message listing every error.

The rules, beyond the Avro types:

* ids are strings with at least one non-space character, at most :data:`ID_MAX_LENGTH`
  (``merchant_name``: free text of at most :data:`MERCHANT_NAME_MAX_LENGTH`);
* ``event_time`` / ``label_time`` are timezone-aware, within [2000-01-01, 2100-01-01) UTC;
* ``amount`` is a decimal in [:data:`AMOUNT_MIN`, :data:`AMOUNT_MAX`] with at most 2 decimal
  places (``decimal(12,2)``); a float is taken by its shortest repr (``88.46`` →
  ``Decimal('88.46')``), so binary noise (``0.30000000000000004``) is refused, never rounded;
* ``currency`` (required) an active ISO 4217 code, ``country`` ISO 3166-1 alpha-2, ``mcc`` four
  digits, ``channel`` one of :data:`CHANNELS`; latitude and longitude in range, no NaN/inf.
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

from contracts.iso import ISO_3166_ALPHA2, ISO_4217_CURRENCIES

# --------------------------------------------------------------------------- the limits
ID_MAX_LENGTH: Final = 256
MERCHANT_NAME_MAX_LENGTH: Final = 512
#: what "blank" means for an id: nothing but these (the ASCII white space of Java's and Spark's \s)
BLANK_CHARS: Final = " \t\n\r\f\v"
EVENT_TIME_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
EVENT_TIME_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)
AMOUNT_PRECISION: Final = 12
AMOUNT_SCALE: Final = 2
AMOUNT_MIN: Final = Decimal(1).scaleb(-AMOUNT_SCALE)  # 0.01
AMOUNT_MAX: Final = Decimal(10 ** (AMOUNT_PRECISION - AMOUNT_SCALE)) - AMOUNT_MIN  # 9999999999.99
MCC_PATTERN: Final = "[0-9]{4}"
CHANNELS: Final = ("card_present", "online")
LATITUDE_RANGE: Final = (-90.0, 90.0)
LONGITUDE_RANGE: Final = (-180.0, 180.0)
TIME_FIELDS: Final = frozenset({"event_time", "label_time"})


def _check_id(value: str) -> str:
    if not value.strip(BLANK_CHARS):
        raise PydanticCustomError("blank", "must not be blank")
    return value


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


Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH), AfterValidator(_check_id)]
UtcTime = Annotated[AwareDatetime, Field(ge=EVENT_TIME_MIN, lt=EVENT_TIME_MAX)]


def _check_amount(value: Decimal) -> Decimal:
    """In range first (the stream's check: its decimals have 2 places), then at most 2 places."""
    if not 0 < value <= AMOUNT_MAX:
        raise PydanticCustomError(
            "amount_range", "must be > 0 and at most {maximum}", {"maximum": str(AMOUNT_MAX)}
        )
    if value != value.quantize(AMOUNT_MIN):
        raise PydanticCustomError(
            "amount_places", "at most {places} decimal places", {"places": AMOUNT_SCALE}
        )
    return value


Money = Annotated[
    Decimal,
    Field(allow_inf_nan=False, json_schema_extra={"exclusiveMinimum": 0, "maximum": float(AMOUNT_MAX)}),
    AfterValidator(_check_amount),
]
Currency = Annotated[str, AfterValidator(_check_currency)]
Country = Annotated[str, AfterValidator(_check_country)]
Mcc = Annotated[str, Field(pattern=f"^{MCC_PATTERN}$")]
Channel = Literal["card_present", "online"]
Latitude = Annotated[float, Field(ge=LATITUDE_RANGE[0], le=LATITUDE_RANGE[1], allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=LONGITUDE_RANGE[0], le=LONGITUDE_RANGE[1], allow_inf_nan=False)]

EXAMPLE_TRANSACTION: Final[dict[str, Any]] = {
    "transaction_id": "txn-000000001",
    "event_time": "2025-03-01T12:34:56.789Z",
    "card_id": "card-0000020",
    "customer_id": "cust-000020",
    "terminal_id": "term-000193",
    "merchant_name": "Corner Shop",
    "amount": "42.50",
    "currency": "EUR",
    "mcc": "5411",
    "channel": "card_present",
    "device_id": None,
    "latitude": 51.5,
    "longitude": -0.12,
    "country": "GB",
}


# --------------------------------------------------------------------------- the models
class TransactionIn(BaseModel):
    """A card transaction as it may enter ``transactions.raw`` (or ``POST /predict``).

    Keys outside the contract (ground truth, for instance) are ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [dict(EXAMPLE_TRANSACTION)]})

    transaction_id: Id
    event_time: UtcTime = Field(description="UTC time of authorisation, ISO-8601 with an offset")
    card_id: Id
    customer_id: Id | None = None
    terminal_id: Id
    merchant_name: str | None = Field(
        default=None, max_length=MERCHANT_NAME_MAX_LENGTH, description="ignored by the model"
    )
    amount: Money = Field(description="major units of currency, > 0, at most 2 decimals")
    currency: Currency = Field(description="active ISO 4217 code")
    mcc: Mcc | None = None
    channel: Channel | None = None
    device_id: Id | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    country: Country | None = Field(default=None, description="ISO 3166-1 alpha-2")


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

# --------------------------------------------------------------------------- column tuples
#: The fields of a transaction event, in schema order (the Avro schema has exactly these).
TRANSACTION_COLUMNS: Final[tuple[str, ...]] = tuple(TransactionIn.model_fields)
#: The fields of a label event, in schema order.
LABEL_COLUMNS: Final[tuple[str, ...]] = tuple(LabelIn.model_fields)
#: The columns a labelled transactions file (replay, evaluation, training) must have.
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "transaction_id",
    "event_time",
    "card_id",
    "terminal_id",
    "amount",
    "is_fraud",
)

# --------------------------------------------------------------------------- failures
# pydantic error type → DLQ reason (anything unlisted: "invalid")
_REASONS: Final[dict[str, str]] = {
    "missing": "missing",
    "string_too_short": "empty",
    "blank": "empty",
    "string_too_long": "too_long",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "amount_range": "out_of_range",
    "amount_places": "bad_precision",
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


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failure_of(exc: ValidationError) -> ValidationFailure:
    """The DLQ reason for a pydantic error: the first error decides; the message lists all."""
    errors = exc.errors(include_url=False, include_context=False)
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"]) or "<event>"
        got = "" if err["type"] in _NO_INPUT_ECHO else f" (got {_short(err.get('input'))})"
        parts.append(f"{loc}: {err['msg']}{got}")
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    return ValidationFailure(_reason_of(first["type"], field), field, "; ".join(parts))


def validate(event_type: str, raw: Any) -> BaseModel | ValidationFailure:
    """Validate one raw event (a mapping) as ``event_type``; never raises for bad input."""
    try:
        return MODELS[event_type].model_validate(raw)
    except ValidationError as exc:
        return failure_of(exc)


# --------------------------------------------------------------------------- JSON payloads
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
    """An event as JSON (the DLQ payload of an invalid event).

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
