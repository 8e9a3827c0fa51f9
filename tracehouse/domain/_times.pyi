# The typed time helpers of tracehouse/domain/_times.pyx (compiled installs only).
from collections.abc import Callable
from datetime import datetime

def utc_from_unix_ns(ns: int) -> datetime: ...

class TimeText:
    fallback: Callable[[datetime], str]
    def __init__(self, sep: str, fallback: Callable[[datetime], str], utc_only: bool) -> None: ...
    def __call__(self, value: datetime) -> str: ...
