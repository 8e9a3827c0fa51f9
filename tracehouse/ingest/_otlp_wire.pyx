# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The OTLP trace export read straight from its protobuf bytes: a native fast path.

``walk_export`` reads the fields of an ``ExportTraceServiceRequest`` that ingestion uses and
builds their Python values directly, without a protobuf message object per span, attribute and
value (the upb path builds one per field read and looks each field up by name). It reads only
well-formed, ordinary exports, and answers ``None`` for anything else: then the caller decodes
the body with protobuf as before, which gives the same values or the error. So this module never
has to agree with protobuf on an odd case; it only has to recognise one. It answers ``None``
when it meets:

- malformed bytes (a truncated or over-long varint, a length past the end, field number 0,
  a group or an unused wire type, a string that is not UTF-8);
- a field the installed protobuf schema knows but this reader does not read (span links, entity
  references, string-table indexes, and any added later: the masks are built from the schema's
  descriptors at import), or one of its fields with an unexpected wire type;
- a singular message field that occurs twice (protobuf merges the occurrences), or a second
  value field in one ``AnyValue``;
- values nested deeper than ``_MAX_DEPTH`` messages.

Fields the schema does not know are skipped, as protobuf skips them. Scalar fields that repeat
keep their last value, as in protobuf. The values are those of the protobuf path
(``otlp.attributes_dict`` and ``otlp.any_value``); tests compare the two on generated and
corrupted exports.

Only this module is written in typed Cython; it exists only in compiled installs (setup.py),
and without it the protobuf path runs alone.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.math cimport isinf, isnan
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

import base64

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    void* PyUnicode_DATA(object o)

cdef enum:
    # Deeper values (arrays of arrays ...) go to protobuf, which allows 100 levels of messages.
    _MAX_DEPTH = 40
    # Short strings decoded once (_short_text).
    _CACHE_SLOTS = 2048
    _CACHE_MAX_LEN = 64

# Message kinds, indexes into _KNOWN.
cdef enum:
    M_REQUEST
    M_RESOURCE_SPANS
    M_RESOURCE
    M_SCOPE_SPANS
    M_SCOPE
    M_SPAN
    M_EVENT
    M_STATUS
    M_KEY_VALUE
    M_ANY_VALUE
    M_ARRAY
    M_KV_LIST
    M_COUNT

# Bit n set: the schema knows field n (n < 64). A field it knows that the reader does not read
# makes the reader give up; a field it does not know is skipped. Numbers from 64 up: give up.
cdef uint64_t _KNOWN[M_COUNT]


def _known_field_masks():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import (
        AnyValue,
        ArrayValue,
        InstrumentationScope,
        KeyValue,
        KeyValueList,
    )
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    messages = (
        ExportTraceServiceRequest, ResourceSpans, Resource, ScopeSpans, InstrumentationScope,
        Span, Span.Event, Status, KeyValue, AnyValue, ArrayValue, KeyValueList,
    )
    masks = []
    for message in messages:
        mask = 0
        for number in message.DESCRIPTOR.fields_by_number:
            mask |= 1 << number if number < 64 else 0
        masks.append(mask)
    return masks


def _load_known_fields():
    cdef int i
    masks = _known_field_masks()
    for i in range(M_COUNT):
        _KNOWN[i] = masks[i]


_load_known_fields()


class _GiveUp(Exception):
    pass


cdef object GIVE_UP = _GiveUp


# --------------------------------------------------------------------------------------------
# Wire primitives. Each returns the position after what it read, or -1 with _GiveUp raised.

cdef inline Py_ssize_t _varint(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                               uint64_t* out) except -1:
    cdef uint64_t value = 0
    cdef unsigned char byte
    cdef int shift = 0
    while shift < 70:
        if pos >= end:
            raise GIVE_UP
        byte = b[pos]
        pos += 1
        value |= (<uint64_t>(byte & 0x7F)) << shift
        if byte < 0x80:
            out[0] = value
            return pos
        shift += 7
    raise GIVE_UP


cdef inline uint64_t _fixed64(const unsigned char* b, Py_ssize_t pos):
    cdef uint64_t value = 0
    cdef int i
    for i in range(7, -1, -1):
        value = (value << 8) | b[pos + i]
    return value


cdef inline Py_ssize_t _tag(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                            uint32_t* field, int* wire) except -1:
    cdef uint64_t tag
    if pos < end and b[pos] < 0x80:  # one-byte tags: every field this reader reads
        tag = b[pos]
        pos += 1
    else:
        pos = _varint(b, pos, end, &tag)
        if tag > 0xFFFFFFFF:
            raise GIVE_UP
    field[0] = <uint32_t>(tag >> 3)
    wire[0] = <int>(tag & 7)
    if field[0] == 0:
        raise GIVE_UP
    return pos


cdef inline Py_ssize_t _length(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                               Py_ssize_t* size) except -1:
    cdef uint64_t n
    if pos < end and b[pos] < 0x80:
        n = b[pos]
        pos += 1
    else:
        pos = _varint(b, pos, end, &n)
    if n > <uint64_t>(end - pos):
        raise GIVE_UP
    size[0] = <Py_ssize_t>n
    return pos


cdef inline Py_ssize_t _sub(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end,
                            Py_ssize_t* start) except -1:
    """A length-delimited field: its bytes begin at ``start[0]`` and end where it returns."""
    cdef Py_ssize_t size
    start[0] = _length(b, pos, end, &size)
    return start[0] + size


cdef Py_ssize_t _other(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int kind,
                       uint32_t field, int wire) except -1:
    """Skip a field the reader does not read: only one the schema does not know either."""
    cdef uint64_t ignored
    cdef Py_ssize_t size
    if field >= 64 or (_KNOWN[kind] >> field) & 1:
        raise GIVE_UP
    if wire == 0:
        return _varint(b, pos, end, &ignored)
    if wire == 1:
        if end - pos < 8:
            raise GIVE_UP
        return pos + 8
    if wire == 2:
        pos = _length(b, pos, end, &size)
        return pos + size
    if wire == 5:
        if end - pos < 4:
            raise GIVE_UP
        return pos + 4
    raise GIVE_UP  # groups (3, 4) and the unused wire types 6 and 7


cdef inline Py_ssize_t _skip_varint(const unsigned char* b, Py_ssize_t pos,
                                    Py_ssize_t end) except -1:
    cdef uint64_t ignored
    return _varint(b, pos, end, &ignored)


cdef inline object _utf8(const unsigned char* b, Py_ssize_t pos, Py_ssize_t size):
    try:
        return PyUnicode_DecodeUTF8(<const char*>(b + pos), size, NULL)
    except UnicodeDecodeError:
        raise GIVE_UP from None


# Short strings repeat from span to span (attribute keys, model and span names, scope names):
# each is decoded once and the same str object handed out again while it stays in its slot. A
# str made once keeps its hash, and dict lookups with the constants of the mapping code meet the
# same object (or compare equal ones once).
cdef PyObject* _cache[_CACHE_SLOTS]


cdef inline object _short_text(const unsigned char* b, Py_ssize_t pos, Py_ssize_t size):
    cdef uint32_t h = 2166136261u
    cdef Py_ssize_t i
    cdef PyObject* hit
    cdef object text
    if size > _CACHE_MAX_LEN:
        return _utf8(b, pos, size)
    for i in range(size):
        h = (h ^ b[pos + i]) * 16777619u
    h = (h ^ <uint32_t>size) & (_CACHE_SLOTS - 1)
    hit = _cache[h]
    if hit is not NULL:
        text = <object>hit
        if (
            PyUnicode_IS_COMPACT_ASCII(text)
            and PyUnicode_GET_LENGTH(text) == size
            and memcmp(PyUnicode_DATA(text), b + pos, size) == 0
        ):
            return text
    text = _utf8(b, pos, size)
    if PyUnicode_IS_COMPACT_ASCII(text):
        hash(text)
        Py_INCREF(text)
        Py_XDECREF(_cache[h])
        _cache[h] = <PyObject*>text
    return text


# --------------------------------------------------------------------------------------------
# Attribute values (common.v1). ``at``: where a length-delimited field's bytes begin, ``pos``
# where they end.

cdef object _any_value(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth):
    """One ``AnyValue`` as ``otlp.any_value`` gives it (None: no value field)."""
    cdef uint32_t field
    cdef int wire
    cdef uint64_t raw
    cdef Py_ssize_t at
    cdef double number
    cdef object value = None
    cdef bint seen = False
    if depth > _MAX_DEPTH:
        raise GIVE_UP
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if 1 <= field <= 7:
            if seen:
                raise GIVE_UP  # a second value field: protobuf keeps or merges; let it
            seen = True
        if wire == 2 and (field == 1 or 5 <= field <= 7):
            pos = _sub(b, pos, end, &at)
            if field == 1:
                value = _short_text(b, at, pos - at)
            elif field == 5:
                value = _array(b, at, pos, depth + 1)
            elif field == 6:
                value = _key_values(b, at, pos, depth + 1, M_KV_LIST)
            else:
                value = base64.b64encode(b[at:pos]).decode("ascii")
        elif wire == 0 and (field == 2 or field == 3):
            pos = _varint(b, pos, end, &raw)
            value = (raw != 0) if field == 2 else <int64_t>raw
        elif field == 4 and wire == 1:
            if end - pos < 8:
                raise GIVE_UP
            raw = _fixed64(b, pos)
            pos += 8
            memcpy(&number, &raw, 8)
            if isnan(number):
                value = "NaN"
            elif isinf(number):
                value = "Infinity" if number > 0 else "-Infinity"
            else:
                value = number
        else:
            pos = _other(b, pos, end, M_ANY_VALUE, field, wire)
    return value


cdef list _array(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth):
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef list out = []
    if depth > _MAX_DEPTH:
        raise GIVE_UP
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if field == 1 and wire == 2:
            pos = _sub(b, pos, end, &at)
            out.append(_any_value(b, at, pos, depth + 1))
        else:
            pos = _other(b, pos, end, M_ARRAY, field, wire)
    return out


cdef dict _key_values(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth,
                      int kind):
    """The ``KeyValue`` elements of field 1 as a dict: a ``KeyValueList`` (M_KV_LIST) or a
    ``Resource`` (M_RESOURCE, whose field 2 is a count)."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef dict out = {}
    if depth > _MAX_DEPTH:
        raise GIVE_UP
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if field == 1 and wire == 2:
            pos = _sub(b, pos, end, &at)
            _key_value(b, at, pos, depth + 1, out)
        elif kind == M_RESOURCE and field == 2 and wire == 0:
            pos = _skip_varint(b, pos, end)
        else:
            pos = _other(b, pos, end, kind, field, wire)
    return out


cdef int _key_value(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth,
                    dict into) except -1:
    """One ``KeyValue`` into ``into`` (a repeated key: the last one wins, in the first place)."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef Py_ssize_t value_at = -1
    cdef Py_ssize_t value_end = -1
    cdef object key = ""
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if field == 1 and wire == 2:
            pos = _sub(b, pos, end, &at)
            key = _short_text(b, at, pos - at)
        elif field == 2 and wire == 2:
            if value_at >= 0:
                raise GIVE_UP  # two value messages: protobuf merges them
            pos = _sub(b, pos, end, &value_at)
            value_end = pos
        else:
            pos = _other(b, pos, end, M_KEY_VALUE, field, wire)
    into[key] = None if value_at < 0 else _any_value(b, value_at, value_end, depth + 1)
    return 0


# --------------------------------------------------------------------------------------------
# Spans (trace.v1).

cdef tuple _named(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth, int kind):
    """A message with a name and attributes: a span ``Event`` (M_EVENT: name 2, attributes 3,
    time 1, a count 4) or an ``InstrumentationScope`` (M_SCOPE: name 1, version 2, attributes 3,
    a count 4). (name, attributes) or (name, version, attributes)."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef object name = ""
    cdef object version = ""
    cdef dict attributes = {}
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if wire == 2 and 1 <= field <= 3 and (field != 1 or kind == M_SCOPE):
            pos = _sub(b, pos, end, &at)
            if field == 3:
                _key_value(b, at, pos, depth + 1, attributes)
            elif field == 1 or kind == M_EVENT:
                name = _short_text(b, at, pos - at)
            else:
                version = _short_text(b, at, pos - at)
        elif field == 4 and wire == 0:
            pos = _skip_varint(b, pos, end)
        elif kind == M_EVENT and field == 1 and wire == 1:
            if end - pos < 8:
                raise GIVE_UP
            pos += 8
        else:
            pos = _other(b, pos, end, kind, field, wire)
    if kind == M_EVENT:
        return (name, attributes)
    return (name, version, attributes)


cdef tuple _status(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end):
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef uint64_t raw
    cdef int32_t code = 0
    cdef object message = ""
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if field == 2 and wire == 2:
            pos = _sub(b, pos, end, &at)
            message = _utf8(b, at, pos - at)
        elif field == 3 and wire == 0:
            pos = _varint(b, pos, end, &raw)
            code = <int32_t><uint32_t>raw  # an open enum: int32, as protobuf keeps it
        else:
            pos = _other(b, pos, end, M_STATUS, field, wire)
    return (code, message)


cdef tuple _span(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth):
    """(trace id, span id, parent span id, name, start ns, end ns, attributes, events, status
    code, status message), as ``otlp.span_fields`` gives them."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef uint64_t start_ns = 0
    cdef uint64_t end_ns = 0
    cdef bytes trace_id = b""
    cdef bytes span_id = b""
    cdef bytes parent_id = b""
    cdef object name = ""
    cdef dict attributes = {}
    cdef list events = []
    cdef tuple status = None
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if wire == 2 and (field <= 5 or field == 9 or field == 11 or field == 15):
            pos = _sub(b, pos, end, &at)
            if field == 9:
                _key_value(b, at, pos, depth + 1, attributes)
            elif field == 1:
                trace_id = b[at:pos]
            elif field == 2:
                span_id = b[at:pos]
            elif field == 4:
                parent_id = b[at:pos]
            elif field == 5:
                name = _short_text(b, at, pos - at)
            elif field == 3:  # trace_state: unused, but protobuf requires UTF-8
                _utf8(b, at, pos - at)
            elif field == 11:
                events.append(_named(b, at, pos, depth + 1, M_EVENT))
            elif status is not None:
                raise GIVE_UP  # a second status: protobuf merges the two
            else:
                status = _status(b, at, pos)
        elif wire == 1 and (field == 7 or field == 8):
            if end - pos < 8:
                raise GIVE_UP
            if field == 7:
                start_ns = _fixed64(b, pos)
            else:
                end_ns = _fixed64(b, pos)
            pos += 8
        elif wire == 0 and (field == 6 or field == 10 or field == 12 or field == 14):
            pos = _skip_varint(b, pos, end)  # kind and the dropped counts: unused
        elif wire == 5 and field == 16:
            if end - pos < 4:
                raise GIVE_UP
            pos += 4  # flags: unused
        else:
            pos = _other(b, pos, end, M_SPAN, field, wire)
    if status is None:
        status = (0, "")
    return (
        trace_id, span_id, parent_id, name, start_ns, end_ns, attributes, events,
        status[0], status[1],
    )


cdef tuple _spans_of(const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, int depth,
                     int kind):
    """A ``ResourceSpans`` (M_RESOURCE_SPANS: resource 1, scope spans 2) or a ``ScopeSpans``
    (M_SCOPE_SPANS: scope 1, spans 2), each with a schema URL in 3: (head, [item, ...])."""
    cdef uint32_t field
    cdef int wire
    cdef Py_ssize_t at
    cdef object head = None
    cdef list items = []
    cdef bint of_resource = kind == M_RESOURCE_SPANS
    while pos < end:
        pos = _tag(b, pos, end, &field, &wire)
        if wire == 2 and 1 <= field <= 3:
            pos = _sub(b, pos, end, &at)
            if field == 2:
                if of_resource:
                    items.append(_spans_of(b, at, pos, depth + 1, M_SCOPE_SPANS))
                else:
                    items.append(_span(b, at, pos, depth + 1))
            elif field == 3:  # schema_url: unused, but protobuf requires UTF-8
                _utf8(b, at, pos - at)
            elif head is not None:
                raise GIVE_UP  # a second resource or scope: protobuf merges the two
            elif of_resource:
                head = _key_values(b, at, pos, depth + 1, M_RESOURCE)
            else:
                head = _named(b, at, pos, depth + 1, M_SCOPE)
        else:
            pos = _other(b, pos, end, kind, field, wire)
    if head is None:
        head = {} if of_resource else ("", "", {})
    return (head, items)


def walk_export(const unsigned char[::1] body not None):
    """``[(resource attributes, [((scope name, version, attributes), [span, ...]), ...]), ...]``
    of an ``ExportTraceServiceRequest``, each span as ``_span`` gives it; None: decode it with
    protobuf instead (see the module's docstring)."""
    cdef Py_ssize_t end = body.shape[0]
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t at
    cdef uint32_t field
    cdef int wire
    cdef list out = []
    cdef const unsigned char* b
    if end == 0:
        return out
    b = &body[0]
    try:
        while pos < end:
            pos = _tag(b, pos, end, &field, &wire)
            if field == 1 and wire == 2:
                pos = _sub(b, pos, end, &at)
                out.append(_spans_of(b, at, pos, 1, M_RESOURCE_SPANS))
            else:
                pos = _other(b, pos, end, M_REQUEST, field, wire)
    except _GiveUp:
        return None
    return out
