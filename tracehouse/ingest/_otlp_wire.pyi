# The typed reader of tracehouse/ingest/_otlp_wire.pyx (compiled installs only).
from typing import Any

def walk_export(
    body: bytes | bytearray | memoryview,
) -> (
    list[tuple[dict[str, Any], list[tuple[tuple[str, str, dict[str, Any]], list[tuple[Any, ...]]]]]]
    | None
): ...
