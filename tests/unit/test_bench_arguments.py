"""The benchmark scripts refuse bad arguments before they start anything: a usage error (exit
status 2) whose message names the option."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import commit_size  # noqa: E402
import compare_phoenix  # noqa: E402
import ingest_otlp  # noqa: E402


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        (commit_size, ["--sizes", "100,x"], "--sizes must be whole numbers"),
        (commit_size, ["--sizes", "0"], "--sizes must be positive"),
        (commit_size, ["--rounds", "0"], "--rounds must be positive"),
        (commit_size, ["--preload", "-1"], "--preload must not be negative"),
        (compare_phoenix, ["--workers", "1,x"], "--workers must be whole numbers"),
        (compare_phoenix, ["--workers", "0"], "--workers must be positive"),
        (ingest_otlp, ["--rates", "6000,x"], "--rates must be numbers"),
        (ingest_otlp, ["--rates", "6000,0"], "--rates must be positive"),
        (ingest_otlp, ["--rates", ","], "--rates must be positive"),
        (
            ingest_otlp,
            ["--rates", "6000", "--rate", "6000"],
            "--rate and --rates cannot be combined",
        ),
    ],
    ids=lambda value: value.__name__ if isinstance(value, ModuleType) else None,
)
def test_bad_arguments_are_refused_with_a_message_naming_the_option(
    script: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        script.parse_args(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_phoenix_comparison_runs_tracehouse_once_per_process_count() -> None:
    args = compare_phoenix.parse_args(["--workers", "1,2", "--skip-phoenix"])
    assert args.workers == [1, 2]
    assert [compare_phoenix.tracehouse_name(n) for n in args.workers] == [
        "tracehouse",
        "tracehouse x2",
    ]
    assert compare_phoenix.parse_args([]).workers == [1]
