# The typed row helpers of tracehouse/store/_rows.pyx (compiled installs only).
from typing import Any

def holds_exactly(
    keys: dict[str, Any], values: dict[str, Any], columns: frozenset[str], provided: tuple[str, ...]
) -> bool | None: ...
def nulls_as(values: tuple[Any, ...], null: Any) -> list[Any]: ...
