"""Traceloop / OpenLLMetry attributes (``traceloop.entity.*``, ``llm.response.model``)."""

from __future__ import annotations

RESPONSE_MODEL = "llm.response.model"
INPUT = "traceloop.entity.input"
OUTPUT = "traceloop.entity.output"

IO_KEYS = (INPUT, OUTPUT)
