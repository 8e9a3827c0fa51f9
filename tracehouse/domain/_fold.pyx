# cython: language_level=3, boundscheck=False, wraparound=False
"""The first event of a record applied in C: a native fast path (compiled installs only).

Most records are made by one event (an OTLP span arrives whole, once), so ``Record.apply`` on
an empty record (``domain/merge.py``, ``Record._apply_to_empty``) runs for nearly every entity
written: one rule lookup and two stores per field. Here that loop runs over the dicts' own
entries. It gives what the Python method gives (``tests/unit/test_native_fold.py`` compares
them); whatever it does not take (other types than plain dicts) goes to the Python method.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetDefault, PyDict_SetItem
from cpython.object cimport PyObject, PyObject_IsTrue


cdef extern from "Python.h":
    # A dict with room for ``minused`` entries (CPython's, as Cython's own code uses it):
    # filling an empty one grows it two or three times for a record's fields, each time moving
    # every entry.
    dict _PyDict_NewPresized(Py_ssize_t minused)


cdef class ApplyToEmpty:
    """``Record._apply_to_empty`` for plain dicts, given the rule members it compares with
    (``Rule.FIRST``, ``Rule.LATEST_NULLABLE``, ``Rule.UNION``; a field without a rule is
    ``LATEST``, any other rule ``DEEP_MERGE``)."""

    cdef object first
    cdef object latest_nullable
    cdef object union

    def __init__(self, first, latest_nullable, union):
        self.first = first
        self.latest_nullable = latest_nullable
        self.union = union

    def __call__(self, object fields, object rules, object key):
        """The values and merge keys of an empty record after ``fields`` (an event's), each
        set field under ``key``: two new dicts; None when ``fields`` or ``rules`` is not a
        plain dict."""
        if type(fields) is not dict or type(rules) is not dict:
            return None
        cdef Py_ssize_t size = len(<dict>fields)
        cdef dict values = _PyDict_NewPresized(size)
        cdef dict keys = _PyDict_NewPresized(size + 8)  # and a few metadata keys
        cdef Py_ssize_t pos = 0
        cdef PyObject* field_p
        cdef PyObject* value_p
        cdef PyObject* rule_p
        cdef object field, value, sub, sub_value
        cdef dict merged
        while PyDict_Next(<dict>fields, &pos, &field_p, &value_p):
            field = <object>field_p
            value = <object>value_p
            rule_p = PyDict_GetItem(<dict>rules, field)
            if rule_p == NULL or <object>rule_p is self.first:  # NULL: LATEST
                if value is not None:
                    PyDict_SetItem(values, field, value)
                    PyDict_SetItem(keys, field, key)
            elif <object>rule_p is self.latest_nullable:
                PyDict_SetItem(values, field, value)
                PyDict_SetItem(keys, field, key)
            elif <object>rule_p is self.union:
                if PyObject_IsTrue(value):
                    PyDict_SetItem(values, field, sorted(set(value)))
            elif value is None:  # DEEP_MERGE: null is "not sent"
                continue
            elif not isinstance(value, dict):  # a non-object is set as a whole
                PyDict_SetItem(values, field, value)
                PyDict_SetItem(keys, field, key)
            else:  # an object: each of its top-level keys under the key too
                merged = {}
                for sub, sub_value in value.items():
                    merged[sub] = sub_value
                    PyDict_SetItem(keys, f"{field}.{sub}", key)
                PyDict_SetItem(values, field, merged)
                PyDict_SetDefault(keys, field, key)
        return values, keys
