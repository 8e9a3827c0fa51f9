# cython: language_level=3, boundscheck=False, wraparound=False
"""Checks and copies of every row written, in C: a native fast path (compiled installs only).

``store/writes.py`` runs these for each observation and trace row of a batch. In Python each
builds a set or a list of a row's few dozen fields, one bytecode-level step per field; here
each is one pass over the row's dict or tuple. Both give what the Python code beside them gives
(``tests/unit/test_native_rows.py`` compares them), and where this code cannot tell, it says so
and the Python code decides.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject, PyObject_IsTrue
from cpython.ref cimport Py_INCREF
from cpython.set cimport PySet_Contains
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_CheckExact

cdef str _METADATA = "metadata"
cdef str _METADATA_DOT = "metadata."
cdef Py_ssize_t _SUB_START = 9  # len("metadata.")


def holds_exactly(object keys, object values, object columns, tuple provided not None):
    """Whether the merge fields that a row written from ``values`` holds are exactly the fields
    of ``keys``; None when this cannot tell (a metadata key or a field of ``keys`` that is not a
    plain ``str``, a metadata object that is not a plain ``dict``).

    The fields held (``writes._held_fields``): the names in ``columns`` whose value is not None,
    except those in ``provided`` whose value is empty; and, when ``metadata`` is one of them
    and a dict, ``"metadata.<k>"`` for each of its keys. ``columns`` holds no name that starts
    with ``"metadata."``. Instead of building that set, this counts it and looks each field of
    ``keys`` up in ``values``. Other types than a ``dict`` and a ``frozenset``: None.
    """
    if type(keys) is not dict or type(values) is not dict or type(columns) is not frozenset:
        return None
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t held = 0
    cdef PyObject* field_p
    cdef PyObject* value_p
    cdef object field, sub
    cdef dict metadata = None
    # The non-null columns; then the provided ones that are empty come off, and the metadata
    # keys go on (each looked up once rather than compared with every field).
    while PyDict_Next(<dict>values, &pos, &field_p, &value_p):
        if <object>value_p is not None and PySet_Contains(columns, <object>field_p):
            held += 1
    for field in provided:
        value_p = PyDict_GetItem(<dict>values, field)
        if (
            value_p != NULL
            and <object>value_p is not None
            and PySet_Contains(columns, field)
            and not PyObject_IsTrue(<object>value_p)
        ):
            held -= 1
    value_p = PyDict_GetItem(<dict>values, _METADATA)
    if value_p != NULL and isinstance(<object>value_p, dict) and PySet_Contains(columns, _METADATA):
        if type(<object>value_p) is not dict:
            return None  # its own iteration and length
        metadata = <dict>value_p
        for sub in metadata:
            if not PyUnicode_CheckExact(sub):
                return None  # its name is whatever its __str__ or __format__ says
        held += len(metadata)
    if len(keys) != held:
        return False
    # Each field of ``keys`` is held (with as many of them as held fields, they are the same).
    pos = 0
    while PyDict_Next(<dict>keys, &pos, &field_p, &value_p):
        field = <object>field_p
        if PySet_Contains(columns, field):
            value_p = PyDict_GetItem(<dict>values, field)
            if value_p == NULL or <object>value_p is None:
                return False
        elif not PyUnicode_CheckExact(field):
            return None  # its own equality with the held names
        elif metadata is not None and (<str>field).startswith(_METADATA_DOT):
            if (<str>field)[_SUB_START:] not in metadata:
                return False
        else:
            return False
    for field in provided:  # held only when not empty
        if field in <dict>keys and PySet_Contains(columns, field):
            value_p = PyDict_GetItem(<dict>values, field)
            if value_p != NULL and not PyObject_IsTrue(<object>value_p):
                return False
    return True


def parameters(object values, object null, tuple converters not None):
    """A row's statement parameters: ``values`` (a tuple) as a list, each None in it replaced
    by ``null``, and the value at each ``(position, convert)`` of ``converters`` converted
    when it is not null."""
    if type(values) is not tuple:
        return None
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(values)
    cdef list out = PyList_New(n)
    cdef PyObject* item
    cdef object value, convert
    for i in range(n):
        item = PyTuple_GET_ITEM(values, i)
        value = null if <object>item is None else <object>item
        Py_INCREF(value)
        PyList_SET_ITEM(out, i, value)
    for i, convert in converters:
        value = out[i]
        if value is not null and value is not None:
            out[i] = convert(value)
    return out
