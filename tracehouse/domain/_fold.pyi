# The typed record helper of tracehouse/domain/_fold.pyx (compiled installs only).
from typing import Any

class ApplyToEmpty:
    def __init__(self, first: Any, latest_nullable: Any, union: Any) -> None: ...
    def __call__(
        self, fields: dict[str, Any], rules: dict[str, Any], key: tuple[int, str, int]
    ) -> tuple[dict[str, Any], dict[str, tuple[int, str, int]]] | None: ...
