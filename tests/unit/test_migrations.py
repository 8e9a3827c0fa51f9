"""Migrations: one head, and upgrade → downgrade → upgrade works on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

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


_OBSERVATION = (
    "INSERT INTO observations (project_id, id, trace_id, type, start_time, level, "
    "environment, usage_details, cost_details, input_usage, output_usage, total_usage, "
    "merge_keys, created_at, updated_at) VALUES (?, ?, ?, 'SPAN', '2026-01-01 00:00:00', "
    "'DEFAULT', 'default', '{}', '{}', 0, 0, 0, '\"=\"', '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:00')"
)
_STORED = {("p1", "o1", "t1"), ("p1", "o2", "t1"), ("p2", "o1", "t7")}
_ID_TABLES = {"observation_ids", "observation_id_log", "observation_id_merge"}


def _observations_at(tmp_path, revision):
    eng = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    cfg = alembic_config(eng)
    command.upgrade(cfg, revision)
    with eng.begin() as conn:
        for values in sorted(_STORED):
            conn.exec_driver_sql(_OBSERVATION, values)
    return eng, cfg


def _table_sql(conn):
    q = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'observations'"
    return conn.exec_driver_sql(q).scalar()


def _assert_keyed_and_whole(conn):
    assert "pk" in {r[3] for r in conn.exec_driver_sql("PRAGMA index_list(observations)")}
    assert set(conn.exec_driver_sql("SELECT project_id, id, trace_id FROM observations")) == (
        _STORED
    )
    assert not _ID_TABLES & set(inspect(conn).get_table_names())
    assert get_observation(conn, "p2", "o1")["trace_id"] == "t7"
    with pytest.raises(IntegrityError):
        conn.exec_driver_sql(_OBSERVATION, ("p1", "o1", "t9"))


def test_sqlite_observations_are_not_rebuilt_by_the_withdrawn_id_revisions(tmp_path):
    eng, cfg = _observations_at(tmp_path, "f7a3c9e1b2d6")
    with eng.connect() as conn:
        before = _table_sql(conn)
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "f7a3c9e1b2d6")
    command.upgrade(cfg, "head")
    with eng.connect() as conn:
        assert _table_sql(conn) == before
        _assert_keyed_and_whole(conn)
    eng.dispose()


@pytest.mark.parametrize("way", ["upgrade", "downgrade"])
def test_sqlite_observations_get_their_id_key_back_after_the_first_d2e6b7a9c1f4(tmp_path, way):
    """The first version of d2e6b7a9c1f4 rebuilt the table without its key on (project_id, id)
    and added three id tables. a9c4e2f7d815 (and d2e6b7a9c1f4's downgrade) undo that, keeping
    every row and every other index."""
    eng, cfg = _observations_at(tmp_path, "f7a3c9e1b2d6")
    with eng.begin() as conn:
        indexes = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'"))
        keyless = re.sub(
            r",\s*CONSTRAINT pk_observations PRIMARY KEY \(project_id, id\)", "", _table_sql(conn)
        )
        assert keyless != _table_sql(conn)
        index_sql = [
            r[0]
            for r in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations' "
                "AND sql IS NOT NULL"
            )
        ]
        conn.exec_driver_sql(keyless.replace("observations", "observations_old_shape", 1))
        conn.exec_driver_sql("INSERT INTO observations_old_shape SELECT * FROM observations")
        conn.exec_driver_sql("DROP TABLE observations")
        conn.exec_driver_sql("ALTER TABLE observations_old_shape RENAME TO observations")
        for sql in index_sql:
            conn.exec_driver_sql(sql)
        for name in _ID_TABLES:
            conn.exec_driver_sql(f"CREATE TABLE {name} (x INTEGER)")
        assert "pk" not in {r[3] for r in conn.exec_driver_sql("PRAGMA index_list(observations)")}
    command.stamp(cfg, "d2e6b7a9c1f4")
    if way == "upgrade":
        command.upgrade(cfg, "head")
    else:
        command.downgrade(cfg, "f7a3c9e1b2d6")
    with eng.connect() as conn:
        _assert_keyed_and_whole(conn)
        after = set(conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'"))
        assert after == indexes
    eng.dispose()
