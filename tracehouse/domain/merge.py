"""Fold events into one record per entity, whatever order they arrive in.

Each stored row keeps, per field, the *merge key* of the event that set it:
``(strength, envelope time, rank)``. strength is 1 for values a client sent and 0 for implied
ones; rank is 0 for creates and 1 for updates (a create is applied first on equal times). With
the keys stored, applying an event is order-independent and idempotent, so batches may arrive
late, out of order, or twice, and the result is the same as folding the whole history in time
order — without keeping that history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from tracehouse.memo import BoundedMemo

from .events import Event

try:  # compiled installs only (setup.py)
    from ._fold import ApplyToEmpty
    from ._times import TimeText
except ImportError:  # pure Python installs
    ApplyToEmpty = None  # type: ignore[assignment,misc]
    TimeText = None  # type: ignore[assignment,misc]

MergeKey = tuple[int, str, int]


class Rule(Enum):
    LATEST = "latest"  # latest non-null value wins; null is "not sent"
    LATEST_NULLABLE = "latest_nullable"  # latest value wins; an explicit null clears
    FIRST = "first"  # immutable: the earliest value wins
    UNION = "union"  # set union (tags)
    DEEP_MERGE = "deep_merge"  # objects merged key by key, later leaves win (metadata)


# Explicit null clears only these fields; for the rest a null means "not sent" (Langfuse's rules).
RULES: dict[str, dict[str, Rule]] = {
    "trace": {
        "timestamp": Rule.FIRST,
        "environment": Rule.FIRST,
        "name": Rule.LATEST_NULLABLE,
        "user_id": Rule.LATEST_NULLABLE,
        "session_id": Rule.LATEST_NULLABLE,
        "release": Rule.LATEST_NULLABLE,
        "version": Rule.LATEST_NULLABLE,
        "tags": Rule.UNION,
        "metadata": Rule.DEEP_MERGE,
    },
    "observation": {
        "trace_id": Rule.FIRST,
        "start_time": Rule.FIRST,
        "environment": Rule.FIRST,
        "name": Rule.LATEST_NULLABLE,
        "level": Rule.LATEST_NULLABLE,
        "model": Rule.LATEST_NULLABLE,
        "metadata": Rule.DEEP_MERGE,
    },
    "score": {
        "timestamp": Rule.FIRST,
        "trace_id": Rule.FIRST,
        "environment": Rule.FIRST,
        "value": Rule.LATEST_NULLABLE,
        "string_value": Rule.LATEST_NULLABLE,
        "metadata": Rule.DEEP_MERGE,
    },
}


# The members as plain module names: before Python 3.12 reading ``Rule.X`` goes through the
# enum's metaclass (about 85 ns, several times per field of every event merged).
_LATEST = Rule.LATEST
_LATEST_NULLABLE = Rule.LATEST_NULLABLE
_FIRST = Rule.FIRST
_UNION = Rule.UNION

# Record._apply_to_empty in C (compiled installs), None in pure Python installs.
_apply_to_empty_natively = (
    None if ApplyToEmpty is None else ApplyToEmpty(_FIRST, _LATEST_NULLABLE, _UNION)
)


def merge_key(event: Event) -> MergeKey:
    """The ordering key of an event; larger is later."""
    return (0 if event.weak else 1, time_text(event.timestamp), 1 if not event.is_create else 0)


def _time_text_of(ts: datetime) -> str:
    """The time of a merge key: ``"%Y-%m-%dT%H:%M:%S.%f"`` of the time's own fields.

    Fixed width, so that text order is time order. isoformat writes it several times faster
    than strftime (without the UTC offset it appends to aware times); strftime does not pad
    years before 1000, so those take the slow path. One write asks for the text of the same
    UTC time several times (event order, implied trace, stored column), so UTC times are
    remembered (a bounded memo: cleared when full). Compiled installs write it in C
    (``_times.TimeText``) and come here only for what that does not cover.
    """
    if ts.tzinfo is UTC:
        return _UTC_TEXTS[ts]
    return _time_text(ts)


def _time_text(ts: datetime) -> str:
    if ts.year < 1000:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return ts.isoformat(timespec="microseconds")[:26]


_UTC_TEXTS_MAX = 65_536
_UTC_TEXTS: BoundedMemo[datetime, str] = BoundedMemo(_time_text, _UTC_TEXTS_MAX)

time_text: Callable[[datetime], str] = (
    _time_text_of if TimeText is None else TimeText("T", _time_text_of, False)
)


def deep_merge(older: Any, newer: Any) -> Any:
    """Merge two JSON values: objects key by key (recursively), otherwise the newer value."""
    if isinstance(older, dict) and isinstance(newer, dict):
        out = dict(older)
        for key, value in newer.items():
            out[key] = deep_merge(out[key], value) if key in out else value
        return out
    return newer


# Stored merge keys name each field by a short code: "#<n>" for the n-th name below, ".<k>" for
# the metadata key <k> ("metadata.<k>"); other names are kept whole. Rows written before the
# codes existed hold whole names, which decode as they are (no name starts with "#" or ".").
# APPEND ONLY: a code, once written, must keep meaning the same field.
FIELD_CODES: tuple[str, ...] = (
    "timestamp", "name", "user_id", "session_id", "release", "version", "environment",
    "public", "bookmarked", "tags", "input", "output", "metadata", "trace_id", "type",
    "start_time", "end_time", "completion_start_time", "model", "model_parameters", "level",
    "status_message", "parent_observation_id", "usage_details", "cost_details", "prompt_name",
    "prompt_version", "value", "string_value", "data_type", "source", "observation_id",
    "dataset_run_id", "comment", "config_id", "queue_id", "author_user_id",
    "execution_trace_id", "experiment_id", "experiment_item_id",
    "experiment_root_observation_id", "experiment",
)  # fmt: skip
_CODE_OF = {name: f"#{i}" for i, name in enumerate(FIELD_CODES)}
_METADATA_PREFIX = "metadata."


def _field_code(field: str) -> str:
    code = _CODE_OF.get(field)
    if code is not None:
        return code
    if field.startswith(_METADATA_PREFIX):
        return field[len(_METADATA_PREFIX) - 1 :]  # "metadata.k" -> ".k"
    return field


def _field_of(code: str) -> str:
    if code.startswith("#") and code[1:].isdigit() and int(code[1:]) < len(FIELD_CODES):
        return FIELD_CODES[int(code[1:])]
    if code.startswith("."):
        return "metadata" + code
    return code


def encode_keys(keys: dict[str, MergeKey]) -> dict[str, list[str]]:
    """Store merge keys compactly: one entry per distinct key, listing the fields it set."""
    by_key: dict[MergeKey, list[str]] = {}
    codes = _CODES
    for field, key in keys.items():
        code = codes.get(field)
        if code is None:
            code = _field_code(field)
            if len(codes) < _CODES_MAX:
                codes[field] = code
        fields = by_key.get(key)
        if fields is None:
            by_key[key] = [code]
        else:
            fields.append(code)
    return {f"{strength}|{ts}|{rank}": fields for (strength, ts, rank), fields in by_key.items()}


# The code of every field name seen (metadata keys are clients' own: bounded).
_CODES: dict[str, str] = dict(_CODE_OF)
_CODES_MAX = 4096


def decode_keys(stored: dict[str, list[str]] | None) -> dict[str, MergeKey]:
    keys: dict[str, MergeKey] = {}
    for packed, fields in (stored or {}).items():
        strength, ts, rank = packed.split("|")
        key = (int(strength), ts, int(rank))
        for field in fields:
            keys[_field_of(field)] = key
    return keys


class Record:
    """An entity being merged: its current values and the key that set each one."""

    __slots__ = ("kind", "values", "keys", "exists")

    def __init__(
        self,
        kind: str,
        values: dict[str, Any] | None = None,
        keys: dict[str, MergeKey] | None = None,
    ) -> None:
        self.kind = kind
        self.exists = values is not None
        self.values: dict[str, Any] = dict(values or {})
        self.keys: dict[str, MergeKey] = dict(keys or {})

    def apply(self, event: Event) -> None:
        """Apply one event's fields by the rules of its entity kind."""
        key = merge_key(event)
        if not self.keys and not self.values:
            native = _apply_to_empty_natively
            folded = None if native is None else native(event.fields, RULES[self.kind], key)
            if folded is None:
                self._apply_to_empty(event, key)
            else:
                self.values, self.keys = folded
            return
        rules = RULES[self.kind]
        values, keys = self.values, self.keys
        for field, value in event.fields.items():
            rule = rules.get(field, _LATEST)
            old = keys.get(field)
            if rule is _LATEST:
                if value is not None and (old is None or key >= old):
                    values[field] = value
                    keys[field] = key
            elif rule is _LATEST_NULLABLE:
                if old is None or key >= old:
                    values[field] = value
                    keys[field] = key
            elif rule is _FIRST:
                if value is not None and (
                    old is None or key[0] > old[0] or (key[0] == old[0] and key < old)
                ):
                    values[field] = value
                    keys[field] = key
            elif rule is _UNION:
                if value:
                    merged = set(values.get(field) or ())
                    merged.update(value)
                    values[field] = sorted(merged)
            else:  # DEEP_MERGE
                self._merge_object(field, value, key)

    def _apply_to_empty(self, event: Event, key: MergeKey) -> None:
        """``apply`` on a record that holds nothing yet (most events: each OTLP span arrives
        once): no earlier key to compare with, so each rule reduces to whether it sets."""
        rules = RULES[self.kind]
        values, keys = self.values, self.keys
        for field, value in event.fields.items():
            rule = rules.get(field)
            if rule is None or rule is _FIRST:  # None: LATEST
                if value is not None:
                    values[field] = value
                    keys[field] = key
            elif rule is _LATEST_NULLABLE:
                values[field] = value
                keys[field] = key
            elif rule is _UNION:
                if value:
                    values[field] = sorted(set(value))
            else:  # DEEP_MERGE
                self._merge_object(field, value, key)

    def _merge_object(self, field: str, value: Any, key: MergeKey) -> None:
        if value is None:
            return
        current = self.values.get(field)
        if not isinstance(value, dict) or (current is not None and not isinstance(current, dict)):
            # A non-object replaces (or is replaced) as a whole, latest wins.
            old = self.keys.get(field)
            if old is None or key >= old:
                self.values[field] = value
                self.keys[field] = key
            return
        # Objects: each top-level key keeps the merge key of its latest writer.
        merged = dict(current or {})
        for sub, sub_value in value.items():
            sub_field = f"{field}.{sub}"
            old = self.keys.get(sub_field)
            if sub not in merged or old is None:
                merged[sub] = sub_value
                self.keys[sub_field] = key
            elif key >= old:
                merged[sub] = deep_merge(merged[sub], sub_value)
                self.keys[sub_field] = key
            else:
                merged[sub] = deep_merge(sub_value, merged[sub])
        self.values[field] = merged
        self.keys.setdefault(field, key)


def fold(record: Record, events: Iterable[Event]) -> Record:
    for event in events:
        record.apply(event)
    return record
