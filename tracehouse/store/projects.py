"""Organizations, projects, users and API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from .schema import api_keys, org_memberships, organizations, projects, users


def _now() -> datetime:
    return datetime.now(UTC)


def get_organization(conn: Connection, org_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(organizations).where(organizations.c.id == org_id)).mappings().first()
    return dict(row) if row else None


def ensure_organization(conn: Connection, org_id: str, name: str) -> None:
    if get_organization(conn, org_id) is None:
        conn.execute(insert(organizations).values(id=org_id, name=name, created_at=_now()))
    else:
        conn.execute(update(organizations).where(organizations.c.id == org_id).values(name=name))


def get_project(conn: Connection, project_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(projects).where(projects.c.id == project_id)).mappings().first()
    return dict(row) if row else None


def ensure_project(conn: Connection, project_id: str, org_id: str, name: str) -> None:
    if get_project(conn, project_id) is None:
        conn.execute(
            insert(projects).values(
                id=project_id, org_id=org_id, name=name, metadata={}, created_at=_now()
            )
        )
    else:
        conn.execute(
            update(projects).where(projects.c.id == project_id).values(name=name, org_id=org_id)
        )


def count_projects(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(projects)).scalar_one())


def list_projects(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r) for r in conn.execute(select(projects).order_by(projects.c.created_at)).mappings()
    ]


def find_api_key(conn: Connection, public_key: str) -> dict[str, Any] | None:
    stmt = (
        select(api_keys, projects.c.org_id)
        .join(projects, projects.c.id == api_keys.c.project_id)
        .where(api_keys.c.public_key == public_key)
    )
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


def put_api_key(
    conn: Connection,
    *,
    key_id: str,
    project_id: str,
    public_key: str,
    secret_hash: str,
    display_secret_key: str,
    note: str | None = None,
) -> None:
    """Create the key, or re-point an existing public key at this project and secret."""
    existing = conn.execute(
        select(api_keys.c.id).where(api_keys.c.public_key == public_key)
    ).first()
    values = {
        "project_id": project_id,
        "secret_hash": secret_hash,
        "display_secret_key": display_secret_key,
        "note": note,
    }
    if existing is None:
        conn.execute(
            insert(api_keys).values(id=key_id, public_key=public_key, created_at=_now(), **values)
        )
    else:
        conn.execute(update(api_keys).where(api_keys.c.public_key == public_key).values(**values))


def ensure_user(
    conn: Connection, *, user_id: str, email: str, name: str | None, password_hash: str | None
) -> str:
    row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
    if row is None:
        conn.execute(
            insert(users).values(
                id=user_id, email=email, name=name, password_hash=password_hash, created_at=_now()
            )
        )
        return user_id
    values: dict[str, Any] = {"name": name}
    if password_hash is not None:
        values["password_hash"] = password_hash
    conn.execute(update(users).where(users.c.id == row.id).values(**values))
    return str(row.id)


def ensure_membership(conn: Connection, org_id: str, user_id: str, role: str) -> None:
    exists = conn.execute(
        select(org_memberships.c.role).where(
            org_memberships.c.org_id == org_id, org_memberships.c.user_id == user_id
        )
    ).first()
    if exists is None:
        conn.execute(insert(org_memberships).values(org_id=org_id, user_id=user_id, role=role))
