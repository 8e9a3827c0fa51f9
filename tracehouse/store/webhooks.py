"""Webhooks of a project and their delivery outbox (SQL only)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from .schema import webhook_deliveries, webhooks


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enqueue_prompt_event(
    conn: Connection, project_id: str, action: str, prompt: dict[str, Any], now: datetime
) -> int:
    """Queue one delivery per active webhook of the project that wants this event.

    Runs inside the transaction of the prompt change, so a delivery exists exactly when the
    change was committed. Returns the number of deliveries queued.
    """
    hooks = conn.execute(
        select(webhooks.c.id, webhooks.c.actions, webhooks.c.prompt_names).where(
            webhooks.c.project_id == project_id, webhooks.c.active.is_(True)
        )
    ).all()
    rows = []
    body = {k: v for k, v in prompt.items() if k not in ("resolutionGraph", "createdBy")}
    for hook in hooks:
        if action not in (hook.actions or []):
            continue
        if hook.prompt_names is not None and prompt["name"] not in hook.prompt_names:
            continue
        event_id = str(uuid.uuid4())
        payload = {
            "id": event_id,
            "timestamp": _iso(now),
            "type": "prompt-version",
            "apiVersion": "v1",
            "action": action,
            "prompt": body,
        }
        rows.append(
            {
                "project_id": project_id,
                "id": event_id,
                "webhook_id": hook.id,
                "action": action,
                "payload": orjson.dumps(payload).decode(),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "locked_until": None,
                "created_at": now,
            }
        )
    if rows:
        conn.execute(insert(webhook_deliveries), rows)
    return len(rows)


# --- webhook configuration -------------------------------------------------------------------

ACTIONS = ("created", "updated", "deleted")
"""The prompt-version actions a webhook can subscribe to, in their canonical order."""


@dataclass
class Webhook:
    project_id: str
    id: str
    name: str
    url: str
    secret: str
    headers: dict[str, str]
    actions: list[str]
    prompt_names: list[str] | None
    active: bool
    created_at: datetime
    updated_at: datetime


def _webhook(row: Any) -> Webhook:
    return Webhook(
        project_id=row.project_id,
        id=row.id,
        name=row.name,
        url=row.url,
        secret=row.secret,
        headers=dict(row.headers or {}),
        actions=list(row.actions or []),
        prompt_names=None if row.prompt_names is None else list(row.prompt_names),
        active=bool(row.active),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def insert_webhook(conn: Connection, hook: Webhook) -> None:
    conn.execute(
        insert(webhooks).values(
            project_id=hook.project_id,
            id=hook.id,
            name=hook.name,
            url=hook.url,
            secret=hook.secret,
            headers=hook.headers,
            actions=hook.actions,
            prompt_names=hook.prompt_names,
            active=hook.active,
            created_at=hook.created_at,
            updated_at=hook.updated_at,
        )
    )


def list_webhooks(conn: Connection, project_id: str) -> list[Webhook]:
    """Oldest first."""
    rows = conn.execute(
        select(webhooks)
        .where(webhooks.c.project_id == project_id)
        .order_by(webhooks.c.created_at, webhooks.c.id)
    )
    return [_webhook(row) for row in rows]


def get_webhook(conn: Connection, project_id: str, webhook_id: str) -> Webhook | None:
    row = conn.execute(
        select(webhooks).where(webhooks.c.project_id == project_id, webhooks.c.id == webhook_id)
    ).first()
    return None if row is None else _webhook(row)


def update_webhook(
    conn: Connection, project_id: str, webhook_id: str, values: dict[str, Any]
) -> Webhook | None:
    """Set ``values`` (column names) on the webhook; the updated webhook, or None if missing."""
    if values:
        done = conn.execute(
            update(webhooks)
            .where(webhooks.c.project_id == project_id, webhooks.c.id == webhook_id)
            .values(**values)
        )
        if not done.rowcount:
            return None
    return get_webhook(conn, project_id, webhook_id)


def delete_webhook(conn: Connection, project_id: str, webhook_id: str) -> bool:
    """Delete the webhook. Its delivery rows stay; pending ones are failed by the job."""
    done = conn.execute(
        delete(webhooks).where(webhooks.c.project_id == project_id, webhooks.c.id == webhook_id)
    )
    return bool(done.rowcount)


# --- the delivery log ------------------------------------------------------------------------


@dataclass
class Delivery:
    project_id: str
    id: str
    webhook_id: str
    action: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    locked_until: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _delivery(row: Any) -> Delivery:
    return Delivery(
        project_id=row.project_id,
        id=row.id,
        webhook_id=row.webhook_id,
        action=row.action,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        locked_until=row.locked_until,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


def list_deliveries(
    conn: Connection,
    project_id: str,
    webhook_id: str,
    page: int,
    limit: int,
    status: str | None = None,
) -> tuple[list[Delivery], int]:
    """One page of the webhook's deliveries, newest first, and how many there are."""
    where = [
        webhook_deliveries.c.project_id == project_id,
        webhook_deliveries.c.webhook_id == webhook_id,
    ]
    if status is not None:
        where.append(webhook_deliveries.c.status == status)
    total = conn.execute(select(func.count()).select_from(webhook_deliveries).where(*where))
    rows = conn.execute(
        select(webhook_deliveries)
        .where(*where)
        .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    )
    return [_delivery(row) for row in rows], int(total.scalar_one())


# --- the delivery job ------------------------------------------------------------------------
#
# A delivery is due when it is pending, its next_attempt_at has passed and nobody holds a lease
# on it (locked_until null or past). A process claims it by compare-and-set on locked_until:
# the UPDATE names the value it read, so of several processes only one changes the row
# (rowcount 1); the others see rowcount 0 and skip it. Results are written only while the
# lease is still the claimer's own.


@dataclass
class Claimed:
    """A delivery this process holds a lease on, with what it needs to send it."""

    delivery: Delivery
    url: str
    secret: str
    headers: dict[str, str]
    lease: datetime


def next_due(conn: Connection, now: datetime) -> datetime | None:
    """The earliest next_attempt_at of a pending delivery nobody holds a lease on."""
    c = webhook_deliveries.c
    value = conn.execute(
        select(func.min(c.next_attempt_at)).where(
            c.status == "pending",
            c.next_attempt_at.is_not(None),
            or_(c.locked_until.is_(None), c.locked_until <= now),
        )
    ).scalar_one_or_none()
    return None if value is None else _utc(value)


def _utc(value: Any) -> datetime:
    """min() keeps the column type, but be safe with what a driver may hand back."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _take_lease(conn: Connection, d: Delivery, now: datetime, lease: datetime) -> bool:
    c = webhook_deliveries.c
    held = c.locked_until.is_(None) if d.locked_until is None else c.locked_until == d.locked_until
    done = conn.execute(
        update(webhook_deliveries)
        .where(
            c.project_id == d.project_id,
            c.id == d.id,
            c.status == "pending",
            c.next_attempt_at <= now,
            held,
        )
        .values(locked_until=lease)
    )
    return done.rowcount == 1


def claim_due(
    conn: Connection, now: datetime, lease: datetime, limit: int
) -> tuple[list[Claimed], list[tuple[Delivery, str]]]:
    """Lease up to ``limit`` due deliveries.

    Returns the claimed deliveries of active webhooks, and the deliveries of deleted or inactive
    webhooks (each with the reason), which are marked failed here without being sent.
    """
    c = webhook_deliveries.c
    rows = conn.execute(
        select(webhook_deliveries, webhooks.c.url, webhooks.c.secret, webhooks.c.headers)
        .add_columns(webhooks.c.active, webhooks.c.id.label("hook_id"))
        .select_from(
            webhook_deliveries.outerjoin(
                webhooks,
                and_(webhooks.c.project_id == c.project_id, webhooks.c.id == c.webhook_id),
            )
        )
        .where(
            c.status == "pending",
            c.next_attempt_at <= now,
            or_(c.locked_until.is_(None), c.locked_until <= now),
        )
        .order_by(c.next_attempt_at, c.created_at)
        .limit(limit)
    ).all()
    claimed: list[Claimed] = []
    dropped: list[tuple[Delivery, str]] = []
    for row in rows:
        d = _delivery(row)
        if not _take_lease(conn, d, now, lease):
            continue  # another process got there first
        if row.hook_id is None or not row.active:
            reason = "webhook deleted" if row.hook_id is None else "webhook is inactive"
            finish(conn, d, lease, status="failed", attempts=d.attempts, error=reason, now=now)
            dropped.append((d, reason))
            continue
        claimed.append(
            Claimed(
                delivery=d,
                url=row.url,
                secret=row.secret,
                headers=dict(row.headers or {}),
                lease=lease,
            )
        )
    return claimed, dropped


def finish(
    conn: Connection,
    d: Delivery,
    lease: datetime,
    *,
    status: str,
    attempts: int,
    now: datetime,
    status_code: int | None = None,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Record an attempt's outcome and release the lease; False if the lease was lost."""
    c = webhook_deliveries.c
    done = conn.execute(
        update(webhook_deliveries)
        .where(c.project_id == d.project_id, c.id == d.id, c.locked_until == lease)
        .values(
            status=status,
            attempts=attempts,
            last_status_code=status_code,
            last_error=error,
            next_attempt_at=next_attempt_at,
            locked_until=None,
            delivered_at=now if status == "delivered" else None,
        )
    )
    return done.rowcount == 1
