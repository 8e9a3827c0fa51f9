"""The list of compiled hot modules, how a build reports itself, and stale-build detection."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from tracehouse import compiled

REPO = Path(__file__).resolve().parents[2]


def test_every_hot_module_has_its_source_in_the_package():
    for name in compiled.HOT_MODULES:
        path = REPO / compiled.source_path(name)
        assert path.is_file(), name
        module = importlib.import_module(name)
        # Compiled or not, the module is the one beside that source file.
        assert Path(module.__file__).parent == path.parent, name
    assert compiled.source_path("tracehouse.ingest.conventions").endswith(
        "ingest/conventions/__init__.py"
    )
    for name in compiled.NATIVE_MODULES:
        path = REPO / compiled.source_path(name)
        assert path.suffix == ".pyx" and path.is_file(), name


def test_build_kind_matches_the_modules_flags():
    flags = compiled.compiled_modules()
    assert list(flags) == list(compiled.HOT_MODULES + compiled.NATIVE_MODULES)
    kind = compiled.build_kind()
    if all(flags.values()):
        assert kind == "compiled"
    elif not any(flags.values()):
        assert kind == "pure Python"
    else:
        assert kind == f"partly compiled ({sum(flags.values())} of {len(flags)} modules)"


@pytest.mark.skipif(
    os.environ.get("TRACEHOUSE_EXPECT_COMPILED") != "1",
    reason="the suite runs on the compiled hot path only where CI builds it (.ci/run)",
)
def test_the_compiled_run_really_is_compiled():
    assert compiled.build_kind() == "compiled"
    assert compiled.stale_modules() == []


def test_a_source_edited_after_the_build_is_stale(tmp_path):
    binary = tmp_path / "mod.cpython-311-x86_64-linux-gnu.so"
    source = tmp_path / "mod.py"
    binary.write_bytes(b"")
    source.write_text("")
    built = 1_700_000_000
    os.utime(binary, (built, built))
    os.utime(source, (built + 5, built + 5))  # written by the same install
    assert not compiled.is_stale(str(binary), str(source))
    os.utime(source, (built + 3600, built + 3600))  # an edit an hour later
    assert compiled.is_stale(str(binary), str(source))
    assert not compiled.is_stale(str(binary), str(tmp_path / "missing.py"))
