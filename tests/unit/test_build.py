"""setup.py: without a C compiler the wheel is pure Python, and no compiled module is left over.

Builds a real wheel from a copy of the project with the venv's own build tools (setuptools and
Cython are dev dependencies), with a compiler that always fails. Compiling for real is what CI's
second run does (.ci/run, test_compiled.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tracehouse.compiled import HOT_MODULES, source_path

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _project_copy(dest: Path) -> Path:
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "tracehouse",
        dest / "tracehouse",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"),
    )
    return dest


def _wheel(project: Path, out: Path, **env: str) -> zipfile.ZipFile:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
        + ["-w", str(out), str(project)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = out.glob("tracehouse-*.whl")
    return zipfile.ZipFile(wheel)


def test_without_a_compiler_the_wheel_is_pure_python(tmp_path):
    project = _project_copy(tmp_path / "project")
    # A compiled module an earlier build left in the build folder: it must not reach the wheel,
    # where Python would import it in place of the current source.
    build_lib = project / "build" / f"lib.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
    stale = build_lib / "tracehouse" / "ingest" / ("otlp" + sysconfig.get_config_var("EXT_SUFFIX"))
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over")

    wheel = _wheel(project, tmp_path / "out", CC="false", TRACEHOUSE_COMPILE="auto")

    names = wheel.namelist()
    assert [n for n in names if n.endswith((".so", ".pyd"))] == []
    for module in HOT_MODULES:
        assert source_path(module) in names, module
    assert not stale.exists()


def test_compile_1_fails_loudly_without_a_compiler(tmp_path):
    project = _project_copy(tmp_path / "project")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path / "out"), str(project)],
        env={**os.environ, "CC": "false", "TRACEHOUSE_COMPILE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert not list((tmp_path / "out").glob("*.whl"))
