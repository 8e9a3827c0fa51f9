"""Large JSON values (input, output, metadata) are stored compressed on SQLite and read, listed
and filtered exactly as small ones; PostgreSQL keeps them as text (it compresses on its own)."""

from __future__ import annotations

from sqlalchemy import text

from tests.api.test_observations import V1, V2, cond, fltr, ids
from tests.factories import event, new_id
from tracehouse.store.types import PACK_MIN_CHARS

LONG = " ".join(f"word{i % 37}" for i in range(400))  # ~3 KB, compresses well
assert len(LONG) > PACK_MIN_CHARS


def _seed(project) -> tuple[str, str, str]:
    trace, big, small = new_id(), new_id(), new_id()
    project.ingest(
        event(
            "trace-create",
            {"id": trace, "name": "packed", "input": {"q": LONG}, "output": LONG + " end"},
        ),
        event(
            "generation-create",
            {
                "id": big,
                "traceId": trace,
                "input": [{"role": "user", "content": LONG}],
                "output": "needle " + LONG,
                "metadata": {"tier": "gold", "notes": LONG},
            },
        ),
        event(
            "span-create",
            {"id": small, "traceId": trace, "input": "short", "metadata": {"tier": "tin"}},
        ),
    )
    return trace, big, small


def test_large_values_read_back_exactly(project):
    trace, big, _ = _seed(project)
    obs = project.get(f"/api/public/observations/{big}").json()
    assert obs["input"] == [{"role": "user", "content": LONG}]
    assert obs["output"] == "needle " + LONG
    assert obs["metadata"] == {"tier": "gold", "notes": LONG}
    detail = project.get(f"/api/public/traces/{trace}").json()
    assert detail["input"] == {"q": LONG} and detail["output"] == LONG + " end"
    listed = project.get("/api/public/traces").json()["data"]
    assert [t["input"] for t in listed] == [{"q": LONG}]


def test_filters_look_inside_large_values(project):
    _, big, small = _seed(project)
    for route in (V1, V2):
        gold = cond("stringObject", "metadata", "=", "gold", key="tier")
        assert ids(project.get(route, params={"filter": fltr(gold)})) == [big]
        tin = cond("stringObject", "metadata", "=", "tin", key="tier")
        assert ids(project.get(route, params={"filter": fltr(tin)})) == [small]
    needle = cond("string", "output", "starts with", "needle")
    assert ids(project.get(V1, params={"filter": fltr(needle)})) == [big]
    word = cond("string", "input", "contains", "word36")
    assert ids(project.get(V1, params={"filter": fltr(word)})) == [big]
    r = project.get(
        "/api/public/traces",
        params={"filter": fltr(cond("string", "output", "contains", "word29 end"))},
    )
    assert [t["name"] for t in r.json()["data"]] == ["packed"]


def test_sqlite_stores_large_values_compressed_and_small_ones_as_text(project, app_client):
    _, big, small = _seed(project)
    engine = app_client.app.state.services.engine
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL keeps text and compresses large values itself (TOAST)
    with engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT id, typeof(input) || '/' || typeof(metadata) FROM observations "
                    "WHERE project_id = :p"
                ),
                {"p": project.id},
            ).all()
        )
        sizes = conn.execute(
            text("SELECT length(output) FROM observations WHERE id = :i"), {"i": big}
        ).scalar_one()
    assert kinds == {big: "blob/blob", small: "text/text"}
    assert sizes < len(LONG) / 2  # stored compressed
