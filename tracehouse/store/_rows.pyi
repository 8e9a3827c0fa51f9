# The typed row helpers of tracehouse/store/_rows.pyx (compiled installs only).
from collections.abc import Callable
from typing import Any

def holds_exactly(
    keys: dict[str, Any], values: dict[str, Any], columns: frozenset[str], provided: tuple[str, ...]
) -> bool | None: ...
def parameters(
    values: tuple[Any, ...], null: Any, converters: tuple[tuple[int, Callable[[Any], Any]], ...]
) -> list[Any] | None: ...
