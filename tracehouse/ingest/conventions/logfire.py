"""Pydantic Logfire attributes (``logfire.msg``, ``prompt``, ``all_messages_events``, ``events``)."""

from __future__ import annotations

MESSAGE = "logfire.msg"  # observation name
INPUT = "prompt"
OUTPUT = "all_messages_events"
EVENTS = "events"  # array (or JSON text) of {"event.name": ...} entries
CHOICE_EVENT = "gen_ai.choice"
PLAIN_INPUT = "input"  # Pydantic / Pipecat
PLAIN_OUTPUT = "output"

IO_KEYS = (INPUT, OUTPUT, EVENTS, PLAIN_INPUT, PLAIN_OUTPUT)
