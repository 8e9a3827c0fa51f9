"""Cached virtual environments holding one line of the official Langfuse SDK each.

``sdk_env("2")`` returns the python of ``<repo>/.cache/sdk-envs/langfuse-2``, a venv with
``langfuse>=2.60,<3`` installed from PyPI (likewise ``sdk_env("3")``: ``langfuse>=3.14,<4``).
The venv is built once and reused while it still imports the right SDK line; a broken or
half-built one is removed and built again. A lock file keeps two pytest-xdist workers (or two
test runs) from building the same venv at once.

``node_env(name, dependencies)`` does the same for an npm project under
``<repo>/.cache/js-sdk/<name>`` (the Langfuse JS/TS SDK packages).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENVS_DIR = REPO / ".cache" / "sdk-envs"

# SDK line -> (pip requirement, the version prefix an installed SDK must have)
SDK_LINES: dict[str, tuple[str, str]] = {
    "2": ("langfuse>=2.60,<3", "2."),
    "3": ("langfuse>=3.14,<4", "3."),
}

_MARKER = "tracehouse-sdk-env.json"
_BUILD_TIMEOUT_S = 900


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _installed_version(venv: Path) -> str | None:
    """The SDK version the venv imports, or None when the venv is missing or broken."""
    python = _python(venv)
    if not python.exists() or not (venv / _MARKER).is_file():
        return None
    try:
        done = subprocess.run(
            [
                str(python),
                "-c",
                "import importlib.metadata as m, langfuse; print(m.version('langfuse'))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _build(venv: Path, requirement: str) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=_BUILD_TIMEOUT_S)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_REQUIRE_VIRTUALENV")}
    done = subprocess.run(
        [
            str(_python(venv)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            requirement,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=_BUILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise RuntimeError(f"pip install {requirement!r} failed:\n{done.stdout}\n{done.stderr}")
    # Written last: a venv without the marker is treated as half-built.
    (venv / _MARKER).write_text(json.dumps({"requirement": requirement}))


def sdk_env(line: str) -> Path:
    """The python of a venv with the Langfuse SDK ``line`` ("2", ...), built if needed."""
    if line not in SDK_LINES:
        raise KeyError(f"unknown Langfuse SDK line {line!r} (known: {', '.join(SDK_LINES)})")
    requirement, prefix = SDK_LINES[line]
    venv = ENVS_DIR / f"langfuse-{line}"
    with _locked(ENVS_DIR / f"langfuse-{line}.lock"):
        version = _installed_version(venv)
        marker_ok = (
            version is not None
            and json.loads((venv / _MARKER).read_text()).get("requirement") == requirement
        )
        if not (marker_ok and version is not None and version.startswith(prefix)):
            _build(venv, requirement)
            version = _installed_version(venv)
            if version is None or not version.startswith(prefix):
                raise RuntimeError(f"{venv}: built, but imports langfuse {version!r}")
    return _python(venv)


def sdk_version(python: Path) -> str:
    """The langfuse version installed for ``python``."""
    return subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('langfuse'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


NODE_DIR = REPO / ".cache" / "js-sdk"
_NODE_MARKER = "tracehouse-node-env.json"


def node_env(name: str, dependencies: dict[str, str]) -> Path:
    """``<repo>/.cache/js-sdk/<name>``: an npm project with ``dependencies`` installed.

    Built once with ``npm install`` and reused while its marker (written last) records the same
    package.json and every dependency is installed; anything else is removed and built again.
    Raises RuntimeError when npm is missing or the install fails.
    """
    project = NODE_DIR / name
    package_json = json.dumps(
        {"name": f"tracehouse-{name}", "private": True, "dependencies": dependencies}, indent=2
    )
    with _locked(NODE_DIR / f"{name}.lock"):
        marker = project / _NODE_MARKER
        installed = all(
            (project / "node_modules" / package / "package.json").is_file()
            for package in dependencies
        )
        if not (marker.is_file() and marker.read_text() == package_json and installed):
            _npm_install(project, package_json)
            marker.write_text(package_json)
    return project


def _npm_install(project: Path, package_json: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "npm is not on PATH: the JS SDK compatibility tests need Node.js (>= 20) and npm"
        )
    if project.exists():
        shutil.rmtree(project)
    project.mkdir(parents=True)
    (project / "package.json").write_text(package_json)
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-update-notifier"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        shutil.rmtree(project, ignore_errors=True)
        raise RuntimeError(f"npm install in {project} failed:\n{done.stdout}\n{done.stderr}")


def node_package_version(project: Path, package: str) -> str:
    """The version of ``package`` installed in the npm ``project``."""
    manifest = project / "node_modules" / package / "package.json"
    return str(json.loads(manifest.read_text())["version"])
