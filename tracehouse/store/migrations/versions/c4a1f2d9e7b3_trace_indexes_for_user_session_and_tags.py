"""trace indexes for user, session and tag lists

Revision ID: c4a1f2d9e7b3
Revises: 89ab2980960e
Create Date: 2026-11-23 15:00:00.000000

A user's or session's traces are listed newest first: (project_id, user_id, timestamp, id)
serves that without a sort (the old (project_id, user_id) index made SQLite walk the whole
project by time). Tag filters: a covering (project_id, tags) index on SQLite, a GIN index on the
jsonb cast the filter compiler uses on PostgreSQL.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "c4a1f2d9e7b3"
down_revision: str | None = "89ab2980960e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index("ix_traces_project_id_user_id")
        batch_op.drop_index("ix_traces_project_id_session_id")
        batch_op.create_index(
            "ix_traces_project_id_user_id_timestamp_id",
            ["project_id", "user_id", "timestamp", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_traces_project_id_session_id_timestamp_id",
            ["project_id", "session_id", "timestamp", "id"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_traces_tags_gin ON traces USING gin ((CAST(tags AS jsonb)))")
    else:
        op.create_index("ix_traces_project_id_tags", "traces", ["project_id", "tags"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_traces_tags_gin")
    else:
        op.drop_index("ix_traces_project_id_tags", table_name="traces")
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index("ix_traces_project_id_session_id_timestamp_id")
        batch_op.drop_index("ix_traces_project_id_user_id_timestamp_id")
        batch_op.create_index("ix_traces_project_id_session_id", ["project_id", "session_id"])
        batch_op.create_index("ix_traces_project_id_user_id", ["project_id", "user_id"])
