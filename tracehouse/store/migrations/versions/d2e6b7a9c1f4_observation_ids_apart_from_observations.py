"""observation ids apart from the observations (SQLite), withdrawn

Revision ID: d2e6b7a9c1f4
Revises: f7a3c9e1b2d6
Create Date: 2026-12-07 10:00:00.000000

As first shipped, this revision rebuilt the SQLite observations table without its key on
(project_id, id) and kept the ids in three tables of their own (``observation_ids``,
``observation_id_log``, ``observation_id_merge``). That design was withdrawn: it saved time under
the writers' lock but no throughput, and took more disk than the key. The revision now changes
nothing, so a database that never ran it is not rebuilt twice; a9c4e2f7d815 puts back the key and
drops the tables of a database that did run it (``restore``), as the downgrade here does too.
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d2e6b7a9c1f4"
down_revision: str | None = "f7a3c9e1b2d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TABLES = ("observation_id_merge", "observation_id_log", "observation_ids")
_KEY = re.compile(r"PRIMARY KEY\s*\(\s*project_id\s*,\s*id\s*\)", re.IGNORECASE)


def upgrade() -> None:
    pass


def downgrade() -> None:
    restore()


def restore() -> None:
    """Whatever the first version of this revision left: the SQLite table rebuilt with its key
    if it has none (its rows copied once), and the id tables dropped where they exist."""
    conn = op.get_bind()
    present = set(sa.inspect(conn).get_table_names())
    for name in ID_TABLES:
        if name in present:
            op.drop_table(name)
    if conn.dialect.name != "sqlite":
        return
    (create,) = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'observations'"
    ).one()
    if _KEY.search(create):
        return
    indexes = [
        row[0]
        for row in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observations' "
            "AND sql IS NOT NULL"
        )
    ]
    # Rows that share an id (none: the write path kept ids unique) would fail the copy.
    keyed = (
        create.rstrip()[:-1].rstrip()
        + ",\n\tCONSTRAINT pk_observations PRIMARY KEY (project_id, id)\n)"
    )
    op.execute(
        re.sub(r"^CREATE TABLE\s+\"?observations\"?", "CREATE TABLE observations_rebuilt", keyed)
    )
    op.execute("INSERT INTO observations_rebuilt SELECT * FROM observations")
    op.execute("DROP TABLE observations")
    op.execute("ALTER TABLE observations_rebuilt RENAME TO observations")
    for sql in indexes:
        op.execute(sql)
