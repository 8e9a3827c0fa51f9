"""Score configs: the rules for creating and updating one, and for checking a score against it.

Pure functions: no database, no HTTP. Every rule raises :class:`~tracehouse.errors.InvalidInput`
naming the field (``categories[1].label``, ``value``) and the rule it broke.

A config fixes a score's name, data type and allowed values (Langfuse's
``validateConfigAgainstBody`` / ``inflateScoreBody``):

- NUMERIC: ``minValue <= value <= maxValue`` (each bound optional);
- CATEGORICAL: the value is one of the category labels; the score's numeric value becomes that
  category's value;
- BOOLEAN: the value is 0 or 1 (string value ``"True"`` / ``"False"``); its categories are fixed;
- TEXT: a string of 1 to 500 characters (the spec's ScoreConfigDataType lists TEXT too).

A score that names no data type takes the config's; one that names another type is refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidInput

CONFIG_DATA_TYPES = ("NUMERIC", "CATEGORICAL", "BOOLEAN", "TEXT")
BOOLEAN_CATEGORIES = ({"label": "True", "value": 1.0}, {"label": "False", "value": 0.0})
MAX_NAME_LENGTH = 80  # the spec says 35, SDK 5.2 (newer) documents 80: accept either
MAX_DESCRIPTION_LENGTH = 10_000
MAX_CATEGORIES = 1_000
MAX_TEXT_SCORE_LENGTH = 500
_NAME = re.compile(r"[A-Za-z0-9_\-. ()]+")


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    project_id: str
    id: str
    name: str
    data_type: str
    is_archived: bool
    min_value: float | None
    max_value: float | None
    categories: list[dict[str, Any]] | None
    description: str | None
    created_at: datetime
    updated_at: datetime

    def row(self) -> dict[str, Any]:
        """The ``score_configs`` row."""
        return {
            "project_id": self.project_id,
            "id": self.id,
            "name": self.name,
            "data_type": self.data_type,
            "is_archived": self.is_archived,
            "min_value": self.min_value,
            "max_value": self.max_value,
            "categories": self.categories,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_row(cls, row: Any) -> ScoreConfig:
        return cls(
            project_id=row["project_id"],
            id=row["id"],
            name=row["name"],
            data_type=row["data_type"],
            is_archived=bool(row["is_archived"]),
            min_value=row["min_value"],
            max_value=row["max_value"],
            categories=row["categories"],
            description=row["description"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


# -- field checks --------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("name", "expected a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"must be at most {MAX_NAME_LENGTH} characters")
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            "name",
            "only letters, numbers, underscores, spaces, periods, parentheses and hyphens "
            "are allowed",
        )
    return value


def _number(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(field, "expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(field, "expected a finite number")
    return number


def _description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("description", "expected a string")
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    return value


def _categories(value: Any) -> list[dict[str, Any]]:
    """A non-empty list of ``{label, value}`` with unique labels and unique values."""
    if not isinstance(value, list):
        raise InvalidInput("categories", "expected a list of {label, value} objects")
    if not value:
        raise InvalidInput("categories", "CATEGORICAL configs need at least one category")
    if len(value) > MAX_CATEGORIES:
        raise InvalidInput("categories", f"at most {MAX_CATEGORIES} categories")
    out: list[dict[str, Any]] = []
    labels: set[str] = set()
    values: set[float] = set()
    for index, item in enumerate(value):
        path = f"categories[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(path, "expected an object with label and value")
        label = item.get("label")
        if not isinstance(label, str) or not label:
            raise InvalidInput(f"{path}.label", "expected a non-empty string")
        if item.get("value") is None:
            raise InvalidInput(f"{path}.value", "required")
        number = _number(f"{path}.value", item.get("value"))
        assert number is not None
        if label in labels:
            raise InvalidInput(f"{path}.label", f"duplicate label {label!r}")
        if number in values:
            raise InvalidInput(f"{path}.value", f"duplicate value {number:g}")
        labels.add(label)
        values.add(number)
        out.append({"label": label, "value": number})
    return out


def _shape(
    data_type: str,
    categories: Any,
    min_value: float | None,
    max_value: float | None,
) -> list[dict[str, Any]] | None:
    """Check the type-specific fields together; the categories to store."""
    if data_type != "NUMERIC":
        for field, bound in (("minValue", min_value), ("maxValue", max_value)):
            if bound is not None:
                raise InvalidInput(field, "is only allowed for NUMERIC configs")
    elif min_value is not None and max_value is not None and min_value > max_value:
        raise InvalidInput("minValue", "must be less than or equal to maxValue")
    if data_type == "CATEGORICAL":
        return _categories(categories)
    if categories not in (None, []):
        raise InvalidInput(
            "categories",
            "are only allowed for CATEGORICAL configs"
            + (" (BOOLEAN configs get True=1 and False=0)" if data_type == "BOOLEAN" else ""),
        )
    if data_type == "BOOLEAN":
        return [dict(c) for c in BOOLEAN_CATEGORIES]
    return None


# -- create and update ---------------------------------------------------------------------------


def new_config(body: Any, *, project_id: str, config_id: str, now: datetime) -> ScoreConfig:
    """A CreateScoreConfigRequest as a config, or ``InvalidInput`` naming the bad field."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object (CreateScoreConfigRequest)")
    if body.get("name") is None:
        raise InvalidInput("name", "required")
    name = _name(body["name"])
    data_type = body.get("dataType")
    if data_type is None:
        raise InvalidInput("dataType", "required")
    if data_type not in CONFIG_DATA_TYPES:
        raise InvalidInput("dataType", "expected one of " + ", ".join(CONFIG_DATA_TYPES))
    min_value = _number("minValue", body.get("minValue"))
    max_value = _number("maxValue", body.get("maxValue"))
    categories = _shape(data_type, body.get("categories"), min_value, max_value)
    return ScoreConfig(
        project_id=project_id,
        id=config_id,
        name=name,
        data_type=data_type,
        is_archived=False,
        min_value=min_value,
        max_value=max_value,
        categories=categories,
        description=_description(body.get("description")),
        created_at=now,
        updated_at=now,
    )


def updated_config(config: ScoreConfig, body: Any, *, now: datetime) -> ScoreConfig:
    """``config`` with an UpdateScoreConfigRequest applied, checked like a new one.

    An absent key keeps the stored value. ``null`` clears minValue, maxValue and description,
    and keeps isArchived, name and categories (they cannot be empty). The data type never
    changes.
    """
    if not isinstance(body, dict):
        raise InvalidInput("body", "expected a JSON object (UpdateScoreConfigRequest)")
    if "dataType" in body and body["dataType"] not in (None, config.data_type):
        raise InvalidInput("dataType", "cannot be changed; create a new config instead")
    is_archived = config.is_archived
    if body.get("isArchived") is not None:
        if not isinstance(body["isArchived"], bool):
            raise InvalidInput("isArchived", "expected a boolean")
        is_archived = body["isArchived"]
    name = config.name if body.get("name") is None else _name(body["name"])
    min_value = _number("minValue", body["minValue"]) if "minValue" in body else config.min_value
    max_value = _number("maxValue", body["maxValue"]) if "maxValue" in body else config.max_value
    if config.data_type == "CATEGORICAL":
        raw_categories: Any = (
            config.categories if body.get("categories") is None else body["categories"]
        )
    else:
        raw_categories = body.get("categories")
    categories = _shape(config.data_type, raw_categories, min_value, max_value)
    description = _description(body["description"]) if "description" in body else config.description
    return ScoreConfig(
        project_id=config.project_id,
        id=config.id,
        name=name,
        data_type=config.data_type,
        is_archived=is_archived,
        min_value=min_value,
        max_value=max_value,
        categories=categories,
        description=description,
        created_at=config.created_at,
        updated_at=now,
    )


# -- scores against their config -----------------------------------------------------------------


def apply_config(
    fields: dict[str, Any], sent_data_type: Any, config: ScoreConfig | None, config_id: str
) -> None:
    """Check a parsed score's ``fields`` against its config and complete them (in place).

    ``sent_data_type`` is the ``dataType`` as the client sent it (``None`` when absent: the
    parser's inferred type then gives way to the config's). ``config`` is ``None`` when the
    project has no config with ``config_id``. Field names in errors are the request's
    (``configId``, ``value``, ...), without the ingestion path's ``body.`` prefix.
    """
    if config is None:
        raise InvalidInput("configId", f"no score config {config_id!r} in this project")
    if config.is_archived:
        raise InvalidInput("configId", f"score config {config_id!r} is archived")
    if fields.get("name") != config.name:
        raise InvalidInput(
            "name", f"must equal the name of score config {config_id!r} ({config.name!r})"
        )
    data_type = config.data_type
    if sent_data_type is not None and sent_data_type != data_type:
        raise InvalidInput(
            "dataType", f"{sent_data_type} does not match the config's data type {data_type}"
        )
    number: float = fields.get("value") or 0.0
    text: str = fields.get("string_value") or ""
    # The parser stored a numeric value in `value`, a string in `string_value`: for an inferred
    # type, a string value is the one with `value` None.
    is_string = fields.get("data_type") not in ("NUMERIC", "BOOLEAN")
    if data_type == "NUMERIC":
        if is_string:
            raise InvalidInput("value", "NUMERIC scores need a numeric value")
        low, high = config.min_value, config.max_value
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"[{'-inf' if low is None else f'{low:g}'}, "
            bounds += f"{'+inf' if high is None else f'{high:g}'}]"
            raise InvalidInput("value", f"{number:g} is outside the config's range {bounds}")
        fields["string_value"] = None
    elif data_type == "BOOLEAN":
        if is_string or number not in (0.0, 1.0):
            raise InvalidInput("value", "BOOLEAN scores need the value 0 or 1")
        fields["string_value"] = "True" if number == 1.0 else "False"
    elif data_type == "CATEGORICAL":
        if not is_string:
            raise InvalidInput("value", "CATEGORICAL scores need a string value (a category label)")
        match = next((c for c in config.categories or () if c["label"] == text), None)
        if match is None:
            labels = ", ".join(repr(c["label"]) for c in config.categories or ())
            raise InvalidInput("value", f"{text!r} is not a category of the config ({labels})")
        fields["value"] = float(match["value"])
    else:  # TEXT
        if not is_string:
            raise InvalidInput("value", "TEXT scores need a string value")
        if not 1 <= len(text) <= MAX_TEXT_SCORE_LENGTH:
            raise InvalidInput("value", f"TEXT scores need 1 to {MAX_TEXT_SCORE_LENGTH} characters")
        fields["value"] = None
    fields["data_type"] = data_type
