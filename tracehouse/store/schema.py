"""SQLAlchemy Core tables: one metadata for SQLite and PostgreSQL.

Tracing tables are keyed by ``(project_id, id)``: ids are the strings clients sent, unique per
project. Every table of project data carries ``project_id`` so one project never sees another's.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from .types import JsonText, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String, primary_key=True),
    Column("org_id", String, ForeignKey("organizations.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("metadata", JsonText),
    Column("retention_days", Integer),
    Column("created_at", UtcDateTime, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String, primary_key=True),
    Column("email", String, nullable=False, unique=True),
    Column("name", Text),
    Column("password_hash", Text),
    Column("created_at", UtcDateTime, nullable=False),
)

org_memberships = Table(
    "org_memberships",
    metadata,
    Column("org_id", String, ForeignKey("organizations.id"), nullable=False),
    Column("user_id", String, ForeignKey("users.id"), nullable=False),
    Column("role", String, nullable=False),
    PrimaryKeyConstraint("org_id", "user_id"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String, primary_key=True),
    Column("project_id", String, ForeignKey("projects.id"), nullable=False, index=True),
    Column("public_key", String, nullable=False, unique=True),
    Column("secret_hash", Text, nullable=False),
    Column("display_secret_key", Text, nullable=False),
    Column("note", Text),
    Column("created_at", UtcDateTime, nullable=False),
)

traces = Table(
    "traces",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("name", Text),
    Column("user_id", Text),
    Column("session_id", Text),
    Column("release", Text),
    Column("version", Text),
    Column("environment", String, nullable=False),
    Column("public", Boolean, nullable=False),
    Column("bookmarked", Boolean, nullable=False),
    Column("tags", JsonText, nullable=False),
    Column("input", JsonText(packed=True)),
    Column("output", JsonText(packed=True)),
    Column("metadata", JsonText(packed=True)),
    Column("merge_keys", JsonText(packed=True), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "timestamp"),
    # A user's or session's traces come newest first straight from these (no sort, no scan).
    Index(None, "project_id", "user_id", "timestamp", "id"),
    Index(None, "project_id", "session_id", "timestamp", "id"),
    Index(None, "project_id", "name"),
    # Tag filters count over this covering index on SQLite; PostgreSQL has a GIN index on
    # CAST(tags AS jsonb) instead, created by migration c4a1f2d9e7b3 (an expression index).
    Index(None, "project_id", "tags").ddl_if(dialect="sqlite"),
)

observations = Table(
    "observations",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("type", String, nullable=False),
    Column("name", Text),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime),
    Column("completion_start_time", UtcDateTime),
    Column("model", Text),
    Column("model_parameters", JsonText),
    Column("input", JsonText(packed=True)),
    Column("output", JsonText(packed=True)),
    Column("metadata", JsonText(packed=True)),
    Column("level", String, nullable=False),
    Column("status_message", Text),
    Column("parent_observation_id", String),
    Column("version", Text),
    Column("environment", String, nullable=False),
    # What the client sent, and the final figures derived from it (see domain.merge).
    Column("provided_usage_details", JsonText),
    Column("provided_cost_details", JsonText),
    Column("usage_details", JsonText, nullable=False),
    Column("cost_details", JsonText, nullable=False),
    Column("input_usage", Float, nullable=False),
    Column("output_usage", Float, nullable=False),
    Column("total_usage", Float, nullable=False),
    Column("input_cost", Float),
    Column("output_cost", Float),
    Column("total_cost", Float),
    Column("internal_model_id", String),
    # The pricing tier that priced the usage, and its unit prices (for display).
    Column("pricing_tier_id", String),
    Column("pricing_tier_name", Text),
    Column("input_price", Float),
    Column("output_price", Float),
    Column("total_price", Float),
    Column("prompt_id", String),
    Column("prompt_name", Text),
    Column("prompt_version", Integer),
    Column("merge_keys", JsonText(packed=True), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    # A trace's observations come in time order straight from the index (detail, v2 by trace).
    Index(None, "project_id", "trace_id", "start_time", "id"),
    Index(None, "project_id", "start_time"),
    Index(None, "project_id", "type", "start_time", "id"),  # lists of one type (generations)
)

# A project's own model definitions (the built-in ones ship with the package, not in the store).
models = Table(
    "models",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("model_name", Text, nullable=False),
    Column("definition", JsonText, nullable=False),  # match pattern, tokenizer, pricing tiers
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "model_name"),
)

scores = Table(
    "scores",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("name", Text, nullable=False),
    Column("value", Float),
    Column("string_value", Text),
    Column("data_type", String, nullable=False),
    Column("source", String, nullable=False),
    Column("trace_id", String),
    Column("observation_id", String),
    Column("session_id", String),
    Column("dataset_run_id", String),
    Column("comment", Text),
    Column("metadata", JsonText),
    Column("config_id", String),
    Column("queue_id", String),
    Column("author_user_id", String),
    Column("execution_trace_id", String),
    Column("environment", String, nullable=False),
    Column("merge_keys", JsonText(packed=True), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "trace_id"),
    Index(None, "project_id", "timestamp"),
    Index(None, "project_id", "session_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("environment", String, nullable=False),
    Column("bookmarked", Boolean, nullable=False, default=False),
    Column("public", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
)

TABLE_BY_KIND = {"trace": traces, "observation": observations, "score": scores}
