"""Garbage-collector settings of long-running server processes.

CPython's cyclic collector scans the objects of a generation each time it runs; a full
collection scans every tracked object, and a server holds a few hundred thousand of them from
startup alone (modules, the app, the price table) that live until exit. Ingestion allocates
many short-lived containers (a few dozen per span), so collections are frequent: with the
default thresholds the collector took about an eighth of an ingesting process's CPU, most of it
in full collections scanning the startup objects again and again.

``settle`` runs once startup is done: it moves everything alive into the permanent generation
(``gc.freeze``), which collections skip, and raises the first threshold so that young
collections run less often. Request data holds no reference cycles on the hot path, so young
objects are freed by reference counting either way; the collector only has to find the rare
cycle, which it still does.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
