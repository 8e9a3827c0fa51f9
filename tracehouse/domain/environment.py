"""Environment names: normalised, never rejected."""

from __future__ import annotations

import re
from typing import Any

DEFAULT_ENVIRONMENT = "default"
MAX_ENVIRONMENT_LENGTH = 40

_VALID = re.compile(r"[a-z0-9_-]+")
# Any run of the reserved prefix "langfuse", each optionally followed by one "-" or "_".
_RESERVED_PREFIX = re.compile(r"(?:langfuse[-_]?)*")


def normalize_environment(value: Any) -> str:
    """Map any client-sent environment onto a storable name.

    Lower-cased; every leading ``langfuse`` prefix (each optionally followed by ``-`` or ``_``)
    is removed because that namespace is reserved; cut to 40 characters. Anything empty or with
    characters outside ``[a-z0-9_-]`` (and any non-string) becomes ``"default"``.
    """
    if not isinstance(value, str):
        return DEFAULT_ENVIRONMENT
    name = value.lower()
    if name.startswith("langfuse"):
        end = _RESERVED_PREFIX.match(name).end()  # type: ignore[union-attr]  # always matches
        name = name[end:]
    name = name[:MAX_ENVIRONMENT_LENGTH]
    if not name or _VALID.fullmatch(name) is None:
        return DEFAULT_ENVIRONMENT
    return name
