"""Start-up initialisation: Langfuse's LANGFUSE_INIT_* variables, or a default project."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from ..auth.secrets import display_secret, hash_secret, new_key_pair, verify_secret
from ..config import Settings
from ..store import projects as store
from ..store.db import migrate


@dataclass
class CreatedKeys:
    project_id: str
    public_key: str
    secret_key: str


def create_api_key(engine: Engine, project_id: str, note: str | None = None) -> CreatedKeys:
    """A fresh key pair for a project; the secret is returned once and stored only hashed."""
    public_key, secret_key = new_key_pair()
    with engine.begin() as conn:
        if store.get_project(conn, project_id) is None:
            raise LookupError(f"project {project_id!r} does not exist")
        store.put_api_key(
            conn,
            key_id=str(uuid.uuid4()),
            project_id=project_id,
            public_key=public_key,
            secret_hash=hash_secret(secret_key),
            display_secret_key=display_secret(secret_key),
            note=note,
        )
    return CreatedKeys(project_id, public_key, secret_key)


def prepare_store(engine: Engine, settings: Settings) -> CreatedKeys | None:
    """What a server does before it serves: migrate (with ``auto_migrate``), then initialise.

    Returns fresh keys when a default project was created.
    """
    if settings.auto_migrate:
        migrate(engine)
    return initialize(engine, settings)


def initialize(engine: Engine, settings: Settings) -> CreatedKeys | None:
    """Apply headless init idempotently. Returns fresh keys when a default project was created."""
    s = settings
    with engine.begin() as conn:
        if s.init_org_id:
            store.ensure_organization(conn, s.init_org_id, s.init_org_name or s.init_org_id)
        if s.init_project_id:
            if not s.init_org_id:
                raise ValueError("LANGFUSE_INIT_PROJECT_ID needs LANGFUSE_INIT_ORG_ID")
            store.ensure_project(
                conn, s.init_project_id, s.init_org_id, s.init_project_name or s.init_project_id
            )
        if s.init_project_public_key or s.init_project_secret_key:
            if not (s.init_project_id and s.init_project_public_key and s.init_project_secret_key):
                raise ValueError(
                    "LANGFUSE_INIT_PROJECT_PUBLIC_KEY and LANGFUSE_INIT_PROJECT_SECRET_KEY "
                    "need each other and LANGFUSE_INIT_PROJECT_ID"
                )
            row = store.find_api_key(conn, s.init_project_public_key)
            if (
                row is None
                or row["project_id"] != s.init_project_id
                or not verify_secret(s.init_project_secret_key, row["secret_hash"])
            ):
                store.put_api_key(
                    conn,
                    key_id=str(uuid.uuid4()),
                    project_id=s.init_project_id,
                    public_key=s.init_project_public_key,
                    secret_hash=hash_secret(s.init_project_secret_key),
                    display_secret_key=display_secret(s.init_project_secret_key),
                    note="LANGFUSE_INIT_PROJECT_*",
                )
        if s.init_user_email:
            user_id = store.ensure_user(
                conn,
                user_id=str(uuid.uuid4()),
                email=s.init_user_email,
                name=s.init_user_name,
                password_hash=hash_secret(s.init_user_password) if s.init_user_password else None,
            )
            if s.init_org_id:
                store.ensure_membership(conn, s.init_org_id, user_id, "OWNER")
        if store.count_projects(conn) > 0:
            return None
        store.ensure_organization(conn, "default", "Default organization")
        store.ensure_project(conn, "default", "default", "Default project")
    return create_api_key(engine, "default", note="created at first start")
