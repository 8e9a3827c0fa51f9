"""Which modules of the ingestion hot path are compiled, and whether the compiled ones are current.

``setup.py`` compiles ``HOT_MODULES`` with Cython when it builds a wheel and a C compiler is at
hand (see "Compiled hot path" in the README); otherwise, and in editable installs, they run as
the Python source they are. Compiled or not, they behave the same: Cython compiles the same
source with Python semantics (annotations are not enforced as C types).

This module is read by ``setup.py`` before the package can be imported: it imports only the
standard library, at the top level.
"""

from __future__ import annotations

import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES

# Decoding OTLP spans, mapping their attributes, merging events, pricing and encoding rows: the
# CPU of an ingested span, apart from SQLite's own work (bench/README.md). The JSON batch
# endpoint's validation (ingest/batch.py) gained nothing measurable compiled, so it is not here.
HOT_MODULES = (
    "tracehouse.ingest.otlp",
    "tracehouse.ingest.conventions",
    "tracehouse.ingest.conventions._io",
    "tracehouse.ingest.conventions._model",
    "tracehouse.ingest.conventions._span",
    "tracehouse.ingest.conventions.genai",
    "tracehouse.ingest.conventions.langfuse",
    "tracehouse.ingest.conventions.logfire",
    "tracehouse.ingest.conventions.openinference",
    "tracehouse.ingest.conventions.openllmetry",
    "tracehouse.ingest.conventions.others",
    "tracehouse.ingest.conventions.vercel_ai",
    "tracehouse.domain.events",
    "tracehouse.domain.merge",
    "tracehouse.domain.records",
    "tracehouse.domain.usage",
    "tracehouse.pricing.cost",
    "tracehouse.pricing.registry",
    "tracehouse.store.types",
    "tracehouse.store.writes",
    "tracehouse.memo",
)

# Typed Cython (``.pyx``) with no Python twin, compiled with the hot modules: where they are
# missing (pure Python installs), their callers take the ordinary path beside them.
NATIVE_MODULES = (
    # An OTLP trace export read straight from its protobuf bytes (ingest/otlp.py).
    "tracehouse.ingest._otlp_wire",
    # Times made from nanoseconds and written as text (ingest/otlp.py, domain/merge.py,
    # store/writes.py).
    "tracehouse.domain._times",
    # The first event of a record applied to it (domain/merge.py).
    "tracehouse.domain._fold",
    # The check behind a row's single merge key, and a row's statement parameters
    # (store/writes.py).
    "tracehouse.store._rows",
)

# The folder that holds the ``tracehouse`` package.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A source file written this long after its compiled module was built is an edit the compiled
# module does not have (an installer writes both within seconds).
_STALE_AFTER_S = 60.0


def source_path(module: str) -> str:
    """The path of a hot or native module's source, relative to the project root."""
    path = module.replace(".", "/")
    if module in NATIVE_MODULES:
        return path + ".pyx"
    return path + ("/__init__.py" if os.path.isdir(os.path.join(_ROOT, path)) else ".py")


def compiled_modules() -> dict[str, bool]:
    """Each hot module, then each native module -> whether it runs compiled (a native module:
    whether it is there)."""
    out = {}
    for name in HOT_MODULES + NATIVE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            if name not in NATIVE_MODULES:
                raise
            out[name] = False
            continue
        path = getattr(module, "__file__", None) or ""
        out[name] = path.endswith(tuple(EXTENSION_SUFFIXES))
    return out


def build_kind() -> str:
    """``"compiled"``, ``"pure Python"`` or ``"partly compiled (n of m modules)"``."""
    flags = compiled_modules().values()
    done = sum(flags)
    if done == len(flags):
        return "compiled"
    if done == 0:
        return "pure Python"
    return f"partly compiled ({done} of {len(flags)} modules)"


def stale_modules() -> list[str]:
    """Compiled hot modules whose Python source was changed after they were built.

    Python imports the compiled module before the source beside it, so such an edit has no
    effect until the module is built again (or its compiled file deleted).
    """
    stale = []
    for name, compiled in compiled_modules().items():
        if not compiled:
            continue
        binary = importlib.import_module(name).__file__ or ""
        source = os.path.join(os.path.dirname(binary), os.path.basename(source_path(name)))
        if is_stale(binary, source):
            stale.append(name)
    return stale


def is_stale(binary: str, source: str) -> bool:
    """Whether ``source`` was written well after ``binary`` (False when either is missing)."""
    try:
        return os.path.getmtime(source) > os.path.getmtime(binary) + _STALE_AFTER_S
    except OSError:
        return False  # an install without the sources
