"""A bounded memo for the ingestion hot path: values worked out once per key, kept a while."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMemo(dict[K, V]):
    """``memo[key]`` is ``make(key)``, computed on the first lookup of ``key`` and then kept.

    Bounded: when it already holds ``limit`` values, it is emptied before it keeps another one
    (the keys it serves repeat within a short while, or not at all). A hit is a plain dict
    lookup; only a miss calls back into Python (``__missing__``).
    """

    def __init__(self, make: Callable[[K], V], limit: int) -> None:
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: K) -> V:
        if len(self) >= self._limit:
            self.clear()
        value = self[key] = self._make(key)
        return value
