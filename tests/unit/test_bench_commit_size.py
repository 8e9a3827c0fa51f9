"""``bench/commit_size.py`` runs end to end on a small store: every size is stored in commits of
that size, its figures are filled in (the CPU split by step adds up to the whole), and a larger
commit appends less log per span (each index page a commit touches is logged once per commit).
Its refused arguments: test_bench_arguments.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import commit_size  # noqa: E402


def test_it_measures_each_size(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--preload", "300", "--sizes", "100,300", "--spans", "300", "--rounds", "1", "--json"]
    assert commit_size.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preload_spans"] == 300
    assert report["database_bytes"] > 0
    rows = {row["size"]: row for row in report["rows"]}
    assert sorted(rows) == [100, 300]
    assert (rows[100]["commits"], rows[100]["spans"]) == (3, 300)
    assert (rows[300]["commits"], rows[300]["spans"]) == (1, 300)
    for row in rows.values():
        assert row["round"] == 1
        assert row["wall_us_per_span"] > 0
        assert row["cpu_us_per_span"] > 0
        assert row["log_kib_per_span"] > 0
        steps = row["cpu_us_per_span_by_step"]
        for step in ("insert observations", "insert traces", "COMMIT"):
            assert steps[step] > 0, step
        # new spans are inserted as they come: their ids are not looked up first
        assert "lookup observations" not in steps
        assert "the rest" in steps
        assert sum(steps.values()) == pytest.approx(row["cpu_us_per_span"], abs=0.1 * len(steps))
    assert rows[300]["log_kib_per_span"] < rows[100]["log_kib_per_span"]


@pytest.mark.parametrize(
    ("statement", "step"),
    [
        (
            "SELECT id FROM observations WHERE project_id = ? AND id IN (?, ?)",
            "lookup observations",
        ),
        (
            "INSERT INTO traces (project_id, id) VALUES (?, ?), (?, ?) ON CONFLICT ...",
            "insert traces",
        ),
        ("insert into sessions (project_id, id)\nVALUES (?, ?)", "insert sessions"),
        (
            "SELECT observations.id, observations.name \nFROM observations WHERE 1",
            "lookup observations",
        ),
        ("PRAGMA wal_checkpoint(PASSIVE)", "pragma"),
    ],
)
def test_statements_are_named_by_what_they_do_to_which_table(statement: str, step: str) -> None:
    assert commit_size.step_of(statement) == step
