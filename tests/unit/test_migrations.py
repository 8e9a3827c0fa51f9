"""Migrations: one head, and upgrade → downgrade → upgrade works on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PG_ADMIN_URL
from tracehouse.store.db import alembic_config
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
