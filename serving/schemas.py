"""Request and response schemas of the scoring API (pydantic); the OpenAPI document is generated from them.

Routes take and return these; plain functions in `scoring.py`, `ranking.py` and `model_store.py` fill them.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from features.schema import CUSTOMER_ID_MAX_CHARS

MAX_BATCH = 10_000  # customers or records in one score request; larger jobs belong to `gridrisk score`


class Task(StrEnum):
    ARREARS = "arrears"
    SUSPENSION = "suspension"
    THEFT = "theft"


class Lang(StrEnum):
    ZH = "zh"
    EN = "en"


class ListFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"


class FileFormat(StrEnum):
    """The web page's exports: files a person opens (the JSON list is the API's)."""

    CSV = "csv"
    XLSX = "xlsx"


INTEGER_DIGITS = 12  # a count the service takes (top, a page) never needs more


def _written_integer(value: Any) -> Any:
    """A whole number as people and programs write one: digits, an optional minus. Python's int() also reads
    `1_0`, `+5` and ` 5 `, so `?top=1_0` listed ten rows, where a live feature refuses the same text; and
    a 5,000-digit page number came back as the parser's own English words on a Chinese page."""
    if isinstance(value, str):
        digits = value.removeprefix("-")
        if not digits.isascii() or not digits.isdigit():
            raise ValueError("should be a whole number written with digits only (a leading '-' at most)")
        if len(digits) > INTEGER_DIGITS:
            raise ValueError(f"should be a whole number of at most {INTEGER_DIGITS} digits")
    return value


WrittenInt = Annotated[int, BeforeValidator(_written_integer)]


class SortKey(StrEnum):
    EXPECTED_VALUE = "expected_value"
    PROBABILITY = "probability"


# A list's default order is the one the task's model is evaluated and gated on (training/tasks.py,
# `rank_by_expected_value`): the yuan at stake for arrears; for suspension and theft the probability, since
# their amounts at stake (a basic charge, kWh missing against last year) would rank by size, not by risk.
WORK_LIST_ORDER: dict[Task, SortKey] = {
    Task.ARREARS: SortKey.EXPECTED_VALUE,
    Task.SUSPENSION: SortKey.PROBABILITY,
    Task.THEFT: SortKey.PROBABILITY,
}
SORT_DOC = (
    "default: the task's work-list order, expected_value for arrears, probability for suspension and theft"
)


class ErrorBody(BaseModel):
    error: str = Field(description="the exception class, e.g. UnknownCustomers")
    detail: str = Field(description="what was wrong, the value, the rule and the fix")


class HTTPErrorBody(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationErrorItem]


CustomerId = Annotated[str, Field(min_length=1, max_length=CUSTOMER_ID_MAX_CHARS)]

# A live record as the OpenAPI document describes it. The service reads records as plain JSON objects and
# checks them itself (`serving.scoring.records_matrix`): feature names, types and domains depend on the served
# model, and pydantic, checking each value against a union, built two errors per bad value, all of them, on
# the event loop (one 3.35 MB body of `true`s held a worker for 10 s; `records_matrix` stops at the first 50).
RECORD_SCHEMA: dict[str, Any] = {
    "title": "ScoreRecord",
    "type": "object",
    "description": "One customer's features for a live score: every feature the served model reads, each a "
    "JSON number (or a decimal in ASCII digits as a string), a category level as a string, or null "
    "(unknown), and no other field. `GET /v1/{task}/features` lists them, with their types, category "
    "levels and the values each may take; `customer_id` is optional and follows the rules of `customer_ids`.",
    "properties": {
        "customer_id": {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": CUSTOMER_ID_MAX_CHARS},
                {"type": "null"},
            ],
            "description": "echoed back; never a model feature",
        }
    },
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
}
ScoreRecord = Annotated[dict[str, Any], WithJsonSchema(RECORD_SCHEMA)]


class ScoreRequest(BaseModel):
    """Exactly one of `customer_ids` (read from the latest snapshot) or `records` (features, scored live)."""

    model_config = ConfigDict(
        extra="forbid",
        # `_one_source` as a schema, so a client's validator refuses what the service would (`{}`, both lists,
        # skip_unknown with records) instead of sending it for a 422. An id of the demo's form: a made-up
        # C0000001 was a 404 in every real home.
        json_schema_extra={
            "examples": [{"customer_ids": ["4300000001"]}],
            "oneOf": [
                {
                    "title": "by customer id",
                    "required": ["customer_ids"],
                    "properties": {"customer_ids": {"type": "array"}, "records": {"type": "null"}},
                },
                {
                    "title": "live, from features",
                    "required": ["records"],
                    "properties": {
                        "records": {"type": "array"},
                        "customer_ids": {"type": "null"},
                        "skip_unknown": {"const": False},
                    },
                },
            ],
        },
    )

    customer_ids: list[CustomerId] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BATCH,
        description="scored from the latest snapshot, in the order sent: an id sent twice is scored twice "
        "(an id the snapshot lacks is named once, in the 404 or in `unknown`)",
    )
    records: list[ScoreRecord] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BATCH,
        description="one object per customer: every model feature (null = missing) and no other field, "
        f"optional customer_id (a string of 1 to {CUSTOMER_ID_MAX_CHARS} characters, as in customer_ids)",
    )

    skip_unknown: bool = Field(
        default=False,
        strict=True,  # JSON true or false: "yes", "off" or 1 read as a flag would be a guess
        description="with customer_ids: score the ids the snapshot has and list the others in `unknown`, "
        "instead of a 404 for the whole batch",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ScoreRequest:
        if (self.customer_ids is None) == (self.records is None):
            raise ValueError("send exactly one of customer_ids or records")
        if self.skip_unknown and self.records is not None:
            raise ValueError(
                "skip_unknown applies to customer_ids; records are scored live, every one of them"
            )
        return self


class Reason(BaseModel):
    feature: str
    value: float | str | None = Field(description="the feature's value as the model saw it (decoded)")
    contribution: float = Field(description="TreeSHAP contribution in log-odds (LightGBM pred_contrib)")
    direction: Literal["raises", "lowers"]
    text: str = Field(description="the reason as a sentence in the requested language")


class ModelRef(BaseModel):
    name: str
    version: str


class CustomerScore(BaseModel):
    customer_id: str | None
    probability: float = Field(description="calibrated probability of the event")
    band: str
    percentile: float | None = Field(
        description="share of the reference population scoring at or below, 0-100"
    )
    raw_margin: float = Field(description="the booster's log-odds; base_value + sum of all contributions")
    base_value: float
    reasons: list[Reason]


class ScoreResponse(BaseModel):
    task: Task
    source: Literal["snapshot", "live"]
    model: ModelRef
    as_of: dt.date | None = Field(description="the snapshot's as-of date; null for live scores")
    lang: Lang
    results: list[CustomerScore]
    unknown: list[str] = Field(
        default_factory=list,
        description="with skip_unknown: the ids asked for that the snapshot lacks (each once), not scored",
    )


class RiskListItem(BaseModel):
    rank: int = Field(description="rank in the whole population by probability (1 = riskiest)")
    customer_id: str
    usage_category: str | None
    supply_unit: str | None
    station: str | None
    probability: float
    band: str
    percentile: float | None
    amount_at_stake: float | None
    expected_value: float | None = Field(description="probability x amount at stake, yuan")
    name: str | None = Field(default=None, description="unmasked only for a collector inside its scope")
    phone: str | None = None
    reasons: list[Reason]
    outstanding_yuan: float | None = Field(
        default=None,
        description="arrears: the principal still open at the list's as-of date on bills due by then, yuan",
    )
    paid_since_yuan: float | None = Field(
        default=None,
        description="arrears: principal (late fees left out) paid toward those bills that the as-of date "
        "could not see (paid or entered after it), as the warehouse holds now",
    )
    last_paid_on: dt.date | None = Field(
        default=None, description="arrears: the day of the latest such payment"
    )
    settled: bool | None = Field(
        default=None,
        description="arrears: the payments since cover the balance at the as-of date (已结清); the "
        "probability and rank are still the model's as of that date. Null where the snapshot has no balances",
    )


class RiskListResponse(BaseModel):
    task: Task
    model: ModelRef
    as_of: dt.date
    filters: dict[str, str | bool | float | int | None]
    matched: int = Field(description="customers matching the filters before `top` / `per_station_top`")
    count: int
    payments_through: dt.date | None = Field(
        default=None,
        description="arrears: the newest payment the warehouse holds, up to which `paid_since_yuan` reads; "
        "null for the other tasks and for snapshots scored before balances were kept",
    )
    items: list[RiskListItem]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class TaskStatus(BaseModel):
    task: str
    model: ModelRef | None
    source: Literal["registry", "local-cache"] | None = Field(
        description="registry: loaded from the tracking server; local-cache: the last champion kept on disk"
    )
    loaded_at: dt.datetime | None
    snapshot_as_of: dt.date | None
    snapshot_model: ModelRef | None = Field(description="the model version that scored the snapshot")
    snapshot_rows: int | None = Field(default=None, description="customers in the snapshot")
    detail: str | None = Field(
        description="why the model or snapshot is missing, unreadable, empty or scored by another version"
    )


class ReadyResponse(BaseModel):
    status: Literal["ready", "degraded", "not_ready"]
    registry_uri: str
    registry_reachable: bool
    keys_readable: bool = True  # false: the API keys file cannot be read, no keyed request can pass
    keys_detail: str | None = None
    home_writable: bool = True  # false: a read-only or full home, where audited requests are refused
    home_detail: str | None = None
    tasks: list[TaskStatus]


class RegistryVersion(BaseModel):
    version: str
    aliases: list[str]
    run_id: str | None
    created_at: dt.datetime | None


class FeatureField(BaseModel):
    name: str
    type: Literal["number", "category"] = Field(
        description="number: a JSON number, or a decimal in ASCII digits as a string; category: one of "
        "`categories` as a string"
    )
    categories: list[str] | None = Field(
        description="the levels the model learned; any other value is read as missing, as LightGBM reads a "
        "level it never saw, and as the batch scores read it. null for a number"
    )
    unit: str | None = Field(description="the feature's unit as the catalogue names it (yuan, kWh, days, …)")
    minimum: float | None = Field(
        default=None, description="the least value a record may hold (a count is never negative); null: none"
    )
    maximum: float | None = Field(
        default=None,
        description="the largest value a record may hold (a 0/1 flag, a count of the months or days of its "
        "window, a change capped by the feature pipeline); null: none",
    )
    rule: str | None = Field(
        default=None,
        description="where minimum and maximum come from, as a 422 for a value outside them says it",
    )


class FeaturesResponse(BaseModel):
    task: Task
    model: ModelRef
    features: list[FeatureField] = Field(
        description="every feature a record must hold (null = unknown), in the model's order; the order of a "
        "record's fields does not matter"
    )


class ModelSummary(BaseModel):
    task: str
    name: str
    serving: TaskStatus
    metrics: dict[str, float] = Field(description="the served model's metrics as logged by training")
    explain_ms_per_row: float | None = Field(description="TreeSHAP cost per row measured at load")
    registry_versions: list[RegistryVersion]


class ModelsResponse(BaseModel):
    alias: str
    registry_reachable: bool
    models: list[ModelSummary]


class ReloadResponse(BaseModel):
    changed: dict[str, str] = Field(description="task -> 'old -> new' for every model or snapshot swapped")
    tasks: list[TaskStatus]
