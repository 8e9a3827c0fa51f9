"""observation ids apart from the observations (SQLite)

Revision ID: d2e6b7a9c1f4
Revises: f7a3c9e1b2d6
Create Date: 2026-12-07 10:00:00.000000

On SQLite the observations table loses its primary key on (project_id, id): every new span landed
on a leaf page of that index of its own. The ids are kept in ``observation_ids`` (project, id →
trace), merged in key order from ``observation_id_log`` (see tracehouse.store.observation_ids).
SQLite cannot drop a primary key in place, so the table is rebuilt: its rows are copied once,
which takes a while on a large database (about the time of writing them once more). PostgreSQL
keeps its key; the three tables are created there too but stay empty.
"""

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d2e6b7a9c1f4"
down_revision: str | None = "f7a3c9e1b2d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The key clause as SQLAlchemy and Alembic's table rebuilds wrote it (named or not).
_KEY = re.compile(
    r",\s*(?:CONSTRAINT\s+\S+\s+)?PRIMARY KEY\s*\(\s*project_id\s*,\s*id\s*\)", re.IGNORECASE
)


def upgrade() -> None:
    op.create_table(
        "observation_ids",
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "observation_id_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(), nullable=False),
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("trace_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "observation_id_merge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merged_upto", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO observation_id_merge (id, merged_upto) VALUES (1, 0)")
    if op.get_bind().dialect.name != "sqlite":
        return
    _rebuild_observations(_without_key)
    _fill_observation_ids()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Rows that share an id (none, as the write path keeps ids unique) would fail here.
        _rebuild_observations(
            lambda sql: sql.rstrip()[:-1].rstrip()
            + ",\n\tCONSTRAINT pk_observations PRIMARY KEY (project_id, id)\n)"
        )
    op.drop_table("observation_id_merge")
    op.drop_table("observation_id_log")
    op.drop_table("observation_ids")


# As tracehouse.store.observation_ids stores them: lowercase hex ids of 16 or 32 digits as bytes.
_HEX_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


def _packed(text: str) -> str | bytes:
    return bytes.fromhex(text) if _HEX_ID.fullmatch(text) else text


def _fill_observation_ids() -> None:
    """Every stored observation's id and trace, in key order (log number 0: older than any)."""
    conn = op.get_bind()
    rows = conn.exec_driver_sql(
        "SELECT project_id, id, trace_id FROM observations ORDER BY project_id, id"
    )
    while batch := rows.fetchmany(10_000):
        conn.exec_driver_sql(
            "INSERT INTO observation_ids (project_id, id, trace_id, seq) VALUES (?, ?, ?, 0)",
            [(p, _packed(i), _packed(t)) for p, i, t in batch],
        )


def _without_key(create: str) -> str:
    new, found = _KEY.subn("", create, count=1)
    if not found:
        raise RuntimeError(f"no primary key (project_id, id) found in: {create}")
    return new


def _rebuild_observations(change: Callable[[str], str]) -> None:
    """Copy the observations into a table made from the stored definition as ``change``d, then
    put it in place with the same indexes."""
    conn = op.get_bind()
    (create,) = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'observations'"
    ).one()
    indexes = [
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations' "
            "AND sql IS NOT NULL"
        )
    ]
    new = change(create)
    new = re.sub(r"^CREATE TABLE\s+\"?observations\"?", "CREATE TABLE observations_rebuilt", new)
    op.execute(new)
    op.execute("INSERT INTO observations_rebuilt SELECT * FROM observations")
    op.execute("DROP TABLE observations")
    op.execute("ALTER TABLE observations_rebuilt RENAME TO observations")
    for sql in indexes:
        op.execute(sql)
