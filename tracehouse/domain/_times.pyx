# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Times of ingested spans made and written in C: a native fast path (compiled installs only).

Every span brings two new times (start and end), and each is written as text several times:
in its merge key (``merge.time_text``) and in the SQLite columns (``writes._sqlite_utc_text``).
In Python a time is made by adding a ``timedelta`` to the epoch, and its text is remembered by
time in a memo, which hashes the time, and a UTC time's hash asks its ``tzinfo`` for the
offset. Here a time is built from its fields and its text written from its fields, each in a few
hundred instructions. Both give what the Python functions give (tests compare them); whatever
these do not cover goes to the Python function.
"""

from cpython.datetime cimport (
    PyDateTime_CheckExact,
    datetime_day,
    datetime_hour,
    datetime_microsecond,
    datetime_minute,
    datetime_month,
    datetime_new,
    datetime_second,
    datetime_tzinfo,
    datetime_year,
    import_datetime,
)
from libc.stdint cimport int64_t, uint64_t

from datetime import UTC as _UTC

import_datetime()

cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)

cdef object UTC = _UTC


def utc_from_unix_ns(uint64_t ns):
    """The UTC time ``ns`` nanoseconds after the epoch, to the microsecond (truncated), as
    ``datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)`` gives it."""
    cdef uint64_t us = ns // 1000
    cdef int64_t days = <int64_t>(us // 86400000000ULL)
    cdef uint64_t rest = us % 86400000000ULL
    # Civil date of a day number (days since 1970-01-01): eras of 400 years from 0000-03-01.
    cdef int64_t z = days + 719468
    cdef int64_t era = z // 146097  # z >= 0: ns is unsigned
    cdef int64_t day_of_era = z - era * 146097
    cdef int64_t year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    cdef int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    cdef int64_t month_index = (5 * day_of_year + 2) // 153  # 0: March
    cdef int day = <int>(day_of_year - (153 * month_index + 2) // 5 + 1)
    cdef int month = <int>(month_index + 3 if month_index < 10 else month_index - 9)
    cdef int year = <int>(year_of_era + era * 400 + (1 if month <= 2 else 0))
    return datetime_new(
        year, month, day,
        <int>(rest // 3600000000ULL), <int>(rest // 60000000ULL % 60),
        <int>(rest // 1000000ULL % 60), <int>(rest % 1000000ULL), UTC,
    )


cdef inline void _digits(char* at, int value, int width):
    cdef int i
    for i in range(width - 1, -1, -1):
        at[i] = <char>(48 + value % 10)
        value //= 10


cdef inline object _text(object value, char sep):
    """"YYYY-MM-DD<sep>HH:MM:SS.ffffff" of a datetime's own fields (year 1000 to 9999)."""
    cdef char out[26]
    _digits(out, datetime_year(value), 4)
    out[4] = b"-"
    _digits(out + 5, datetime_month(value), 2)
    out[7] = b"-"
    _digits(out + 8, datetime_day(value), 2)
    out[10] = sep
    _digits(out + 11, datetime_hour(value), 2)
    out[13] = b":"
    _digits(out + 14, datetime_minute(value), 2)
    out[16] = b":"
    _digits(out + 17, datetime_second(value), 2)
    out[19] = b"."
    _digits(out + 20, datetime_microsecond(value), 6)
    return PyUnicode_DecodeASCII(out, 26, NULL)


cdef class TimeText:
    """A function of one datetime: the text of its own fields with ``sep`` between date and
    time, for a ``datetime`` (not a subclass) of a year from 1000 (with ``utc_only``: whose ``tzinfo`` is
    ``datetime.UTC``); any other value goes to ``fallback``, the Python function this stands in
    for."""

    cdef char sep
    cdef bint utc_only
    cdef readonly object fallback

    def __init__(self, str sep not None, fallback not None, bint utc_only):
        if len(sep) != 1 or not sep.isascii():
            raise ValueError("sep: one ASCII character")
        self.sep = <char>ord(sep)
        self.fallback = fallback
        self.utc_only = utc_only

    def __call__(self, value):
        if (
            PyDateTime_CheckExact(value)
            and datetime_year(value) >= 1000
            and (not self.utc_only or datetime_tzinfo(value) is UTC)
        ):
            return _text(value, self.sep)
        return self.fallback(value)
