"""BoundedMemo: computed once per key, kept, and emptied when full."""

from __future__ import annotations

import pytest

from tracehouse.memo import BoundedMemo


def test_a_value_is_made_once_and_then_kept():
    made: list[str] = []

    def make(key: str) -> str:
        made.append(key)
        return key.upper()

    memo = BoundedMemo(make, 10)
    assert memo["a"] == "A"
    assert memo["a"] == "A"
    assert memo["b"] == "B"
    assert made == ["a", "b"]
    assert memo.get("c") is None and "c" not in memo  # only a subscript makes a value


def test_it_empties_when_full_and_never_holds_more_than_its_limit():
    memo = BoundedMemo(lambda key: key * 2, 3)
    for key in range(3):
        assert memo[key] == key * 2
    assert len(memo) == 3
    assert memo[3] == 6  # full: emptied, then keeps the new value
    assert dict(memo) == {3: 6}
    for key in range(100):
        memo[key]
        assert len(memo) <= 3


def test_a_failing_make_keeps_nothing():
    def make(key: int) -> int:
        raise ValueError(key)

    memo = BoundedMemo(make, 3)
    with pytest.raises(ValueError):
        memo[1]
    assert 1 not in memo
