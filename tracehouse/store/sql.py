"""Small SQL expressions that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, cast, func


def seconds_between(start: Any, end: Any, dialect: str) -> Any:
    """``end - start`` in seconds as a float; NULL when either is NULL."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    # Julian days carry ~50 µs of float error at today's dates: round to the millisecond so
    # that 2 s apart compares equal to 2.
    return func.round((func.julianday(end) - func.julianday(start)) * 86400.0, 3)
