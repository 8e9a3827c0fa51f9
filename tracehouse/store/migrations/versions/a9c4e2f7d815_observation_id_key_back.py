"""observations keep their key on (project_id, id) (SQLite)

Revision ID: a9c4e2f7d815
Revises: d2e6b7a9c1f4
Create Date: 2026-12-07 12:00:00.000000

For a database that ran the first, withdrawn version of d2e6b7a9c1f4: its SQLite observations
table gets its key back (the rows are copied once) and the id tables are dropped. Any other
database is left as it is. Nothing to undo on downgrade.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

revision: str = "a9c4e2f7d815"
down_revision: str | None = "d2e6b7a9c1f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Alembic loads revision files by path, not as modules of a package; so is this one.
    path = Path(__file__).with_name("d2e6b7a9c1f4_observation_ids_apart_from_observations.py")
    spec = importlib.util.spec_from_file_location("_tracehouse_revision_d2e6b7a9c1f4", path)
    assert spec is not None and spec.loader is not None
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    previous.restore()


def downgrade() -> None:
    pass
