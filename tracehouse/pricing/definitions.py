"""Model definitions: match pattern, tokenizer and pricing tiers; parsed and validated once.

A definition comes from the built-in table (``builtin_models.json``, project-less) or from a
project (``POST /api/public/models``). Both are read into the same frozen dataclasses, with the
match pattern and the usage-condition patterns compiled up front, so pricing an observation
never compiles a regex.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tracehouse.errors import InvalidInput

USAGE_UNITS = ("CHARACTERS", "TOKENS", "MILLISECONDS", "SECONDS", "IMAGES", "REQUESTS")
USAGE_OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
ATTRIBUTE_SOURCES = ("model_parameters", "metadata")
TOKENIZERS = ("openai", "claude")
MAX_PATTERN_LENGTH = 1000


_FOUND_MAX = 1024


@dataclass(frozen=True, slots=True)
class UsageCondition:
    """Sum of the usage values whose keys the pattern finds, compared with ``value``."""

    pattern: str
    operator: str
    value: float
    case_sensitive: bool
    compiled: re.Pattern[str] = field(compare=False, repr=False)
    # Whether the pattern finds each usage key seen: keys repeat (input, output, total, ...),
    # so each is searched once. Keys are clients' own: bounded, cleared when full.
    found: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def holds(self, usage: dict[str, float]) -> bool:
        found = self.found
        total: float = 0
        for key, value in usage.items():
            hit = found.get(key)
            if hit is None:
                if len(found) >= _FOUND_MAX:
                    found.clear()
                hit = found[key] = self.compiled.search(key) is not None
            if hit:
                total += value
        return _compare(total, self.operator, self.value)

    def wire(self) -> dict[str, Any]:
        return {
            "usageDetailPattern": self.pattern,
            "operator": self.operator,
            "value": self.value,
            "caseSensitive": self.case_sensitive,
        }


@dataclass(frozen=True, slots=True)
class AttributeCondition:
    """A top-level model parameter (or metadata) value is one of ``values``."""

    source: str  # "model_parameters" | "metadata"
    key: str
    values: tuple[str, ...]

    def holds(self, model_parameters: Any, metadata: Any) -> bool:
        container = model_parameters if self.source == "model_parameters" else metadata
        if not isinstance(container, dict) or self.key not in container:
            return False
        value = container[self.key]
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            text = str(value)
        else:
            return False
        return text in self.values

    def wire(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "key": self.key,
            "operator": "in",
            "values": list(self.values),
        }


Condition = UsageCondition | AttributeCondition


def _compare(left: float, operator: str, right: float) -> bool:
    if operator == "gt":
        return left > right
    if operator == "gte":
        return left >= right
    if operator == "lt":
        return left < right
    if operator == "lte":
        return left <= right
    if operator == "eq":
        return left == right
    return left != right


@dataclass(frozen=True, slots=True)
class PricingTier:
    id: str
    name: str
    is_default: bool
    priority: int
    conditions: tuple[Condition, ...]
    prices: dict[str, float] = field(hash=False)
    # The prices as exact decimals (of their shortest text), the way costs are computed.
    decimal_prices: dict[str, Decimal] = field(
        init=False, hash=False, compare=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self.decimal_prices.update((k, Decimal(str(v))) for k, v in self.prices.items())

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "isDefault": self.is_default,
            "priority": self.priority,
            "conditions": [c.wire() for c in self.conditions],
            "prices": dict(self.prices),
        }


@dataclass(frozen=True, slots=True)
class ModelDefinition:
    id: str
    project_id: str | None  # None: built in, shared by every project
    model_name: str
    match_pattern: str
    start_date: datetime | None
    unit: str | None
    tokenizer_id: str | None
    tokenizer_config: Any
    tiers: tuple[PricingTier, ...]  # the default tier first, then by ascending priority
    created_at: datetime
    updated_at: datetime
    matcher: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def default_tier(self) -> PricingTier:
        return self.tiers[0]

    def matches(self, model: str) -> bool:
        # A POSIX `~` test: unanchored search; patterns anchor themselves (^...$).
        return self.matcher.search(model) is not None


def parse_datetime(value: Any, path: str) -> datetime:
    """An ISO-8601 date-time (or a datetime) as aware UTC; a 400 naming ``path`` otherwise."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(path, f"is not an ISO-8601 date-time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# Parsing and validation (wire shape -> definition). Every error names the field.


def compile_pattern(pattern: Any, path: str, *, case_sensitive: bool = True) -> re.Pattern[str]:
    """Compile a Langfuse/PostgreSQL-style regex (``(?i)`` prefix allowed) or raise 400."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidInput(path, "must be a non-empty regular expression")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidInput(path, f"must be at most {MAX_PATTERN_LENGTH} characters")
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise InvalidInput(path, f"invalid regular expression ({exc})") from None


def _price(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(path, "must be a number")
    if value < 0:
        raise InvalidInput(path, "must not be negative")
    return float(value)


def _prices(raw: Any, path: str) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(path, "must be an object with at least one price (usage key -> USD)")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidInput(path, "usage keys must be non-empty strings")
        out[key] = _price(value, f"{path}.{key}")
    return out


def _condition(raw: Any, path: str) -> Condition:
    if not isinstance(raw, dict):
        raise InvalidInput(path, "must be an object")
    if "source" in raw or "key" in raw:
        source, key, values = raw.get("source"), raw.get("key"), raw.get("values")
        if source not in ATTRIBUTE_SOURCES:
            raise InvalidInput(f"{path}.source", f"must be one of {', '.join(ATTRIBUTE_SOURCES)}")
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"{path}.key", "must be a non-empty string")
        if raw.get("operator", "in") != "in":
            raise InvalidInput(f"{path}.operator", "attribute conditions support only 'in'")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, (str, int, float)) for v in values)
        ):
            raise InvalidInput(f"{path}.values", "must be a non-empty array of strings")
        return AttributeCondition(source, key, tuple(str(v) for v in values))
    pattern = raw.get("usageDetailPattern")
    case_sensitive = raw.get("caseSensitive", False)
    if not isinstance(case_sensitive, bool):
        raise InvalidInput(f"{path}.caseSensitive", "must be a boolean")
    compiled = compile_pattern(pattern, f"{path}.usageDetailPattern", case_sensitive=case_sensitive)
    operator = raw.get("operator")
    if operator not in USAGE_OPERATORS:
        raise InvalidInput(f"{path}.operator", f"must be one of {', '.join(USAGE_OPERATORS)}")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{path}.value", "must be a number")
    return UsageCondition(str(pattern), operator, float(value), case_sensitive, compiled)


def _condition_key(condition: Condition) -> tuple[Any, ...]:
    if isinstance(condition, UsageCondition):
        return ("usage", condition.pattern, condition.case_sensitive, condition.operator, condition.value)  # fmt: skip
    return ("attribute", condition.source, condition.key, frozenset(condition.values))


def parse_tiers(raw: Any, path: str, *, make_id: Any) -> tuple[PricingTier, ...]:
    """Validate a ``pricingTiers`` array: one default tier, unique names/priorities/conditions."""
    if not isinstance(raw, list) or not raw:
        raise InvalidInput(path, "must be a non-empty array of pricing tiers")
    tiers: list[PricingTier] = []
    names: set[str] = set()
    priorities: set[int] = set()
    condition_sets: dict[frozenset[Any], str] = {}
    for i, tier in enumerate(raw):
        at = f"{path}[{i}]"
        if not isinstance(tier, dict):
            raise InvalidInput(at, "must be an object")
        name, is_default, priority = tier.get("name"), tier.get("isDefault"), tier.get("priority")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{at}.name", "must be a non-empty string")
        if name in names:
            raise InvalidInput(f"{at}.name", f"duplicate tier name {name!r}")
        if not isinstance(is_default, bool):
            raise InvalidInput(f"{at}.isDefault", "must be a boolean")
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            raise InvalidInput(f"{at}.priority", "must be a non-negative integer")
        if priority in priorities:
            raise InvalidInput(f"{at}.priority", f"duplicate priority {priority}")
        raw_conditions = tier.get("conditions", [])
        if not isinstance(raw_conditions, list):
            raise InvalidInput(f"{at}.conditions", "must be an array")
        conditions = tuple(
            _condition(c, f"{at}.conditions[{j}]") for j, c in enumerate(raw_conditions)
        )
        if is_default and (priority != 0 or conditions):
            raise InvalidInput(at, "the default tier must have priority 0 and no conditions")
        if not is_default:
            if not conditions:
                raise InvalidInput(f"{at}.conditions", "a non-default tier needs conditions")
            key = frozenset(_condition_key(c) for c in conditions)
            if key in condition_sets:
                raise InvalidInput(
                    f"{at}.conditions",
                    f"same conditions as tier {condition_sets[key]!r}: it could never be chosen",
                )
            condition_sets[key] = name
        prices = _prices(tier.get("prices"), f"{at}.prices")
        given_id = tier.get("id")
        tier_id = given_id if isinstance(given_id, str) and given_id else str(make_id())
        tiers.append(PricingTier(tier_id, name, is_default, priority, conditions, prices))
        names.add(name)
        priorities.add(priority)
    defaults = [t for t in tiers if t.is_default]
    if len(defaults) != 1:
        raise InvalidInput(
            path, f"needs exactly one default tier (isDefault=true), got {len(defaults)}"
        )
    rest = sorted((t for t in tiers if not t.is_default), key=lambda t: t.priority)
    return (defaults[0], *rest)


def tokenizer_fields(tokenizer_id: Any, config: Any) -> tuple[str | None, Any]:
    if tokenizer_id is None:
        return None, config
    if tokenizer_id not in TOKENIZERS:
        raise InvalidInput("tokenizerId", f"must be one of {', '.join(TOKENIZERS)} or null")
    if config is not None and not isinstance(config, dict):
        raise InvalidInput("tokenizerConfig", "must be a JSON object")
    if tokenizer_id == "openai" and config is not None:
        model = config.get("tokenizerModel")
        if model is not None and not isinstance(model, str):
            raise InvalidInput("tokenizerConfig.tokenizerModel", "must be a string")
        for key in ("tokensPerMessage", "tokensPerName"):
            value = config.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInput(f"tokenizerConfig.{key}", "must be an integer")
    return str(tokenizer_id), config


def parse_model(
    body: Any,
    *,
    project_id: str | None,
    model_id: str,
    now: datetime,
    make_id: Any,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
) -> ModelDefinition:
    """A ``CreateModelRequest`` (or a stored/built-in definition in the same shape) -> definition."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object")
    name = body.get("modelName")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("modelName", "must be a non-empty string")
    pattern = body.get("matchPattern")
    matcher = compile_pattern(pattern, "matchPattern")
    start_date = body.get("startDate")
    start = None if start_date is None else parse_datetime(start_date, "startDate")
    unit = body.get("unit")
    if unit is not None and unit not in USAGE_UNITS:
        raise InvalidInput("unit", f"must be one of {', '.join(USAGE_UNITS)}")
    flat = {
        key: _price(body[field_name], field_name)
        for field_name, key in (("inputPrice", "input"), ("outputPrice", "output"), ("totalPrice", "total"))
        if body.get(field_name) is not None
    }  # fmt: skip
    raw_tiers = body.get("pricingTiers")
    if raw_tiers is not None and flat:
        raise InvalidInput(
            "pricingTiers", "give either pricingTiers or inputPrice/outputPrice/totalPrice"
        )
    if "total" in flat and ("input" in flat or "output" in flat):
        raise InvalidInput("totalPrice", "cannot be set together with inputPrice or outputPrice")
    if raw_tiers is None:
        if not flat:
            raise InvalidInput("pricingTiers", "required (or inputPrice/outputPrice/totalPrice)")
        raw_tiers = [
            {"name": "Standard", "isDefault": True, "priority": 0, "conditions": [], "prices": flat}
        ]
    tiers = parse_tiers(raw_tiers, "pricingTiers", make_id=make_id)
    tokenizer_id, tokenizer_config = tokenizer_fields(
        body.get("tokenizerId"), body.get("tokenizerConfig")
    )
    return ModelDefinition(
        id=model_id,
        project_id=project_id,
        model_name=name.strip(),
        match_pattern=str(pattern),
        start_date=start,
        unit=unit,
        tokenizer_id=tokenizer_id,
        tokenizer_config=tokenizer_config,
        tiers=tiers,
        created_at=created_at or now,
        updated_at=updated_at or now,
        matcher=matcher,
    )


def to_stored(model: ModelDefinition) -> dict[str, Any]:
    """What a project definition keeps in its row (the parse input, normalised)."""
    return {
        "modelName": model.model_name,
        "matchPattern": model.match_pattern,
        "startDate": None if model.start_date is None else model.start_date.isoformat(),
        "unit": model.unit,
        "tokenizerId": model.tokenizer_id,
        "tokenizerConfig": model.tokenizer_config,
        "pricingTiers": [tier.wire() for tier in model.tiers],
    }
