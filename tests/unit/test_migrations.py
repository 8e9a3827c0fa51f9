"""Migrations: one head, and upgrade → downgrade → upgrade works on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PG_ADMIN_URL
from tracehouse.store.db import alembic_config
from tracehouse.store.observations import get_observation
from tracehouse.store.schema import metadata


def test_single_head():
    script = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://")))
    assert len(script.get_heads()) == 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield eng
        eng.dispose()
        return
    name = f"tracehouse_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_downgrade_upgrade_matches_the_schema(engine):
    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    command.downgrade(cfg, "base")
    assert not set(metadata.tables) & set(inspect(engine).get_table_names())
    command.upgrade(cfg, "head")
    for table in metadata.tables.values():
        stored = {c["name"] for c in inspect(engine).get_columns(table.name)}
        assert stored == {c.name for c in table.columns}, table.name


def test_sqlite_observations_lose_their_id_key_and_keep_their_rows(tmp_path):
    """d2e6b7a9c1f4 rebuilds the table without its key on (project_id, id) and fills
    observation_ids from the rows; the downgrade puts the key back."""
    eng = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = alembic_config(eng)
    command.upgrade(cfg, "f7a3c9e1b2d6")
    row = (
        "INSERT INTO observations (project_id, id, trace_id, type, start_time, level, "
        "environment, usage_details, cost_details, input_usage, output_usage, total_usage, "
        "merge_keys, created_at, updated_at) VALUES (?, ?, ?, 'SPAN', '2026-01-01 00:00:00', "
        "'DEFAULT', 'default', '{}', '{}', 0, 0, 0, '\"=\"', '2026-01-01 00:00:00', "
        "'2026-01-01 00:00:00')"
    )
    with eng.begin() as conn:
        hexed = ("p2", "00000000000000aa", "000000000000000000000000000000bb")
        for values in (("p1", "o1", "t1"), ("p1", "o2", "t1"), ("p2", "o1", "t7"), hexed):
            conn.exec_driver_sql(row, values)

    def key_origins(conn):
        return {r[3] for r in conn.exec_driver_sql("PRAGMA index_list(observations)")}

    command.upgrade(cfg, "head")
    with eng.connect() as conn:
        assert "pk" not in key_origins(conn)
        assert conn.exec_driver_sql("SELECT count(*) FROM observations").scalar() == 4
        ids = "SELECT project_id, id, trace_id FROM observation_ids"
        assert set(conn.exec_driver_sql(ids).fetchall()) == {
            ("p1", "o1", "t1"),
            ("p1", "o2", "t1"),
            ("p2", bytes.fromhex(hexed[1]), bytes.fromhex(hexed[2])),
            ("p2", "o1", "t7"),
        }
        assert get_observation(conn, "p2", "o1")["trace_id"] == "t7"
        assert get_observation(conn, "p2", "o2") is None
        assert get_observation(conn, *hexed[:2])["trace_id"] == hexed[2]
    command.downgrade(cfg, "f7a3c9e1b2d6")
    with eng.connect() as conn:
        assert "pk" in key_origins(conn)
        assert conn.exec_driver_sql("SELECT count(*) FROM observations").scalar() == 4
    eng.dispose()
