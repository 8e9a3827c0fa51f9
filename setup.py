"""Compiles the ingestion hot path with Cython; everything else is in pyproject.toml.

The modules listed in ``tracehouse/compiled.py`` are compiled when a wheel is built (``pip
install .``) and Cython and a C compiler are at hand: the same Python source, with Python
semantics, and about an eighth less server CPU per ingested span (bench/README.md), together with
the typed modules listed there (``.pyx``: an OTLP reader, span time helpers, row checks). When the
compiler is missing or fails, the package installs as pure Python, which behaves the same.

``TRACEHOUSE_COMPILE``: ``auto`` (the default: compile wheels, not editable installs, whose
source edits must take effect without a rebuild), ``1`` (compile, editable installs too, in
place; fail if it cannot) or ``0`` (never compile).
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
_COMPILED = runpy.run_path(str(ROOT / "tracehouse" / "compiled.py"))
MODE = os.environ.get("TRACEHOUSE_COMPILE", "auto").strip().lower()
if MODE not in ("auto", "0", "1"):
    sys.exit(f"TRACEHOUSE_COMPILE must be auto, 0 or 1, not {MODE!r}")

# Python semantics: annotations are documentation, never C types that would refuse a value the
# Python source accepts (a defaultdict where ``dict`` is annotated, an int for ``float``). The
# typed modules (``NATIVE_MODULES``, ``.pyx``) declare their C types with ``cdef``.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


class OptionalCythonBuild(build_ext):
    def run(self) -> None:
        editable = bool(getattr(self, "editable_mode", False) or self.inplace)
        if MODE == "0" or (MODE == "auto" and editable):
            self._pure_python()
            return
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1
        try:
            from Cython.Build import cythonize

            # C sources go to the build directory, never beside the Python ones.
            translated = cythonize(
                self.extensions,
                compiler_directives=DIRECTIVES,
                build_dir=os.path.join(self.build_temp, "cython"),
                quiet=True,
                force=True,
            )
            sources = {ext.name: ext.sources for ext in translated}
            for ext in self.extensions:
                ext.sources = sources[ext.name]
            super().run()
        except Exception as exc:  # no Cython, no compiler, a compiler error
            if MODE == "1":
                raise
            print(
                f"tracehouse: the hot path stays pure Python (compiling failed: {exc})",
                file=sys.stderr,
            )
            self._pure_python()

    def _pure_python(self) -> None:
        """Build nothing, and remove what an earlier build left where it would be imported.

        Python imports a compiled module before the source beside it: one left in place (an
        editable install compiled before) or in the build folder (which goes into the wheel)
        would run instead of the current source.
        """
        inplace = self.inplace
        for ext in self.extensions:
            for self.inplace in (False, True):  # the build folder's path, then the source's
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.get_ext_fullpath(ext.name))
        self.inplace = inplace
        self.extensions = []


def _extension(module: str) -> Extension:
    source = _COMPILED["source_path"](module)
    # A package's own module is built as ``package.__init__``, beside its ``__init__.py``.
    name = module + ".__init__" if source.endswith("/__init__.py") else module
    return Extension(name, [source])


setup(
    ext_modules=[
        _extension(module) for module in _COMPILED["HOT_MODULES"] + _COMPILED["NATIVE_MODULES"]
    ],
    cmdclass={"build_ext": OptionalCythonBuild},
)
