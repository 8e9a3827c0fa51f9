"""A project's own model definitions: list, get, insert, delete (SQL only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from ..pricing.definitions import ModelDefinition, parse_model, to_stored
from .schema import models


def _definition(row: Any) -> ModelDefinition:
    return parse_model(
        row.definition,  # JsonText: already the parsed object
        project_id=row.project_id,
        model_id=row.id,
        now=row.created_at,
        make_id=lambda: None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def project_models(conn: Connection, project_id: str) -> list[ModelDefinition]:
    """Newest first."""
    rows = conn.execute(
        select(models)
        .where(models.c.project_id == project_id)
        .order_by(models.c.created_at.desc(), models.c.id)
    )
    return [_definition(row) for row in rows]


def loader(engine: Engine) -> Any:
    """``project_id -> definitions``, each call on a fresh connection (for the registry)."""

    def load(project_id: str) -> list[ModelDefinition]:
        with engine.connect() as conn:
            return project_models(conn, project_id)

    return load


def get_model(conn: Connection, project_id: str, model_id: str) -> ModelDefinition | None:
    row = conn.execute(
        select(models).where(models.c.project_id == project_id, models.c.id == model_id)
    ).first()
    return None if row is None else _definition(row)


def insert_model(conn: Connection, model: ModelDefinition) -> None:
    assert model.project_id is not None
    conn.execute(
        insert(models).values(
            project_id=model.project_id,
            id=model.id,
            model_name=model.model_name,
            definition=to_stored(model),
            created_at=model.created_at,
            updated_at=model.updated_at,
        )
    )


def delete_model(conn: Connection, project_id: str, model_id: str) -> bool:
    done = conn.execute(
        delete(models).where(models.c.project_id == project_id, models.c.id == model_id)
    )
    return bool(done.rowcount)
