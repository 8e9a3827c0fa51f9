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
    text,
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
    Column("metadata", JsonText(packed=True, repeats=True)),
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
    Column("metadata", JsonText(packed=True, repeats=True)),
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
    # Experiment linkage sent by the SDKs' experiment runners (langfuse.experiment.* span
    # attributes, propagated to every span of an item): the experiment, the item, the item's
    # root observation, and the rest (name, description, metadata, dataset id, item version,
    # expected output, item metadata) as JSON.
    Column("experiment_id", String),
    Column("experiment_item_id", String),
    Column("experiment_root_observation_id", String),
    Column("experiment", JsonText(packed=True, repeats=True)),
    Column("merge_keys", JsonText(packed=True), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    # A trace's observations come in time order straight from the index (detail, v2 by trace).
    Index(None, "project_id", "trace_id", "start_time", "id"),
    Index(None, "project_id", "start_time"),
    Index(None, "project_id", "type", "start_time", "id"),  # lists of one type (generations)
    # Generations linked to a prompt (prompt metrics, filters): partial, so the many
    # observations without a prompt cost the write path nothing here.
    Index(
        None,
        "project_id",
        "prompt_name",
        "prompt_version",
        sqlite_where=text("prompt_name IS NOT NULL"),
        postgresql_where=text("prompt_name IS NOT NULL"),
    ),
    Index(
        None,
        "project_id",
        "experiment_id",
        "start_time",
        sqlite_where=text("experiment_id IS NOT NULL"),
        postgresql_where=text("experiment_id IS NOT NULL"),
    ),
    # Experiment items (each item's root observation), newest first across experiments.
    Index(
        "ix_observations_experiment_items",
        "project_id",
        "start_time",
        "id",
        sqlite_where=text("id = experiment_root_observation_id"),
        postgresql_where=text("id = experiment_root_observation_id"),
    ),
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
    Index(None, "project_id", "dataset_run_id"),  # run-level scores of experiments and runs
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

# Prompt management. One row per prompt version; the content (a string for text prompts, a list
# of messages for chat prompts) and the config are JSON. Tags are the same on every version of a
# name (written to all of them). A label points at one version of a name at a time, so labels
# live in their own table keyed by (project, name, label); "latest" is kept there too, by the
# server. The dependencies of a version (its @@@langfusePrompt…@@@ references) are rows of
# prompt_dependencies, so the prompts that use a name are found without reading every prompt.
prompts = Table(
    "prompts",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("type", String, nullable=False),  # text | chat
    Column("prompt", JsonText, nullable=False),
    Column("config", JsonText, nullable=False),
    Column("tags", JsonText, nullable=False),
    Column("commit_message", Text),
    Column("created_by", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "name", "version", unique=True),
    Index(None, "project_id", "updated_at"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("project_id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("project_id", "name", "label"),
    Index(None, "project_id", "name", "version"),
)

prompt_dependencies = Table(
    "prompt_dependencies",
    metadata,
    Column("project_id", String, nullable=False),
    Column("parent_id", String, nullable=False),  # the referencing version (prompts.id)
    Column("child_name", Text, nullable=False),
    Column("child_label", Text),  # exactly one of label and version is set
    Column("child_version", Integer),
    Index(None, "project_id", "parent_id"),
    Index(None, "project_id", "child_name"),
)

# One counter per project, raised by every prompt change in the same transaction: a process
# serves prompts from its cache while the counter it cached them under is still current, so a
# change made by any process (or the CLI) is seen by the next read everywhere.
prompt_generations = Table(
    "prompt_generations",
    metadata,
    Column("project_id", String, primary_key=True),
    Column("generation", Integer, nullable=False),
)

# Webhooks on prompt changes, configured per project. The signing secret has to be kept
# readable (it signs every delivery). Deliveries are an outbox: a prompt change inserts its
# deliveries in its own transaction, and the webhook job sends them afterwards with retries;
# the rows stay as the delivery log.
webhooks = Table(
    "webhooks",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("headers", JsonText, nullable=False),  # custom static headers
    Column("actions", JsonText, nullable=False),  # of created | updated | deleted
    Column("prompt_names", JsonText),  # only these prompts (null: every prompt)
    Column("active", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("webhook_id", String, nullable=False),
    Column("action", String, nullable=False),
    Column("payload", Text, nullable=False),  # the exact JSON body that is signed and sent
    Column("status", String, nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("locked_until", UtcDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "project_id", "webhook_id", "created_at"),
)

# Evaluation data. Score configs define what a score of a name may hold; a score that names a
# config is checked against it.
score_configs = Table(
    "score_configs",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("data_type", String, nullable=False),  # NUMERIC | CATEGORICAL | BOOLEAN
    Column("is_archived", Boolean, nullable=False),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("categories", JsonText),  # [{"label", "value"}] for CATEGORICAL (BOOLEAN: fixed)
    Column("description", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "name"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("metadata", JsonText),
    Column("input_schema", JsonText),
    Column("expected_output_schema", JsonText),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "name", unique=True),
)

# Dataset items keep their history: every create, update or delete of an item adds a row
# (valid_from = when it took effect) and closes the previous one (valid_to), so a dataset can be
# read as of any past time ("version"). The current state is the rows with valid_to NULL and
# is_deleted false.
dataset_items = Table(
    "dataset_items",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("valid_from", UtcDateTime, nullable=False),
    Column("valid_to", UtcDateTime),
    Column("is_deleted", Boolean, nullable=False),
    Column("dataset_id", String, nullable=False),
    Column("status", String, nullable=False),  # ACTIVE | ARCHIVED
    Column("input", JsonText(packed=True)),
    Column("expected_output", JsonText(packed=True)),
    Column("metadata", JsonText(packed=True)),
    Column("source_trace_id", String),
    Column("source_observation_id", String),
    Column("created_at", UtcDateTime, nullable=False),  # when the item was first created
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id", "valid_from"),
    Index(None, "project_id", "dataset_id", "valid_to", "created_at"),
    Index(None, "project_id", "source_trace_id"),
)

# Dataset runs and their items, as the v2/v3 SDKs and the legacy routes create them
# (POST /api/public/dataset-run-items). Newer SDKs send experiments over OTLP instead; those are
# read from the observations' experiment columns (see observations).
dataset_runs = Table(
    "dataset_runs",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("dataset_id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("metadata", JsonText),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "dataset_id", "name", unique=True),
)

dataset_run_items = Table(
    "dataset_run_items",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("run_id", String, nullable=False),
    Column("dataset_item_id", String, nullable=False),
    Column("trace_id", String, nullable=False),
    Column("observation_id", String),
    Column("dataset_version", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "run_id", "created_at"),
    Index(None, "project_id", "dataset_item_id"),
    Index(None, "project_id", "trace_id"),
)

comments = Table(
    "comments",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("object_type", String, nullable=False),  # TRACE | OBSERVATION | SESSION | PROMPT
    Column("object_id", String, nullable=False),
    Column("content", Text, nullable=False),
    Column("author_user_id", String),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "object_type", "object_id", "created_at"),
)

annotation_queues = Table(
    "annotation_queues",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("score_config_ids", JsonText, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "name", unique=True),
)

annotation_queue_items = Table(
    "annotation_queue_items",
    metadata,
    Column("project_id", String, nullable=False),
    Column("id", String, nullable=False),
    Column("queue_id", String, nullable=False),
    Column("object_id", String, nullable=False),
    Column("object_type", String, nullable=False),  # TRACE | OBSERVATION | SESSION
    Column("status", String, nullable=False),  # PENDING | COMPLETED
    Column("completed_at", UtcDateTime),
    Column("annotator_user_id", String),
    Column("locked_by_user_id", String),
    Column("locked_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "id"),
    Index(None, "project_id", "queue_id", "status", "created_at"),
    Index(None, "project_id", "object_type", "object_id"),
)

annotation_queue_assignments = Table(
    "annotation_queue_assignments",
    metadata,
    Column("project_id", String, nullable=False),
    Column("queue_id", String, nullable=False),
    Column("user_id", String, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("project_id", "queue_id", "user_id"),
)

TABLE_BY_KIND = {"trace": traces, "observation": observations, "score": scores}
