"""Datasets, versioned dataset items, dataset runs and run items (SQL only).

Dataset items keep their history: each create, update or delete of an item closes the item's
open row (``valid_to``) and adds a new one from that moment (``valid_from``; a delete adds a row
with ``is_deleted``). An item as of time T is its row with ``valid_from <= T < valid_to`` (or
``valid_to`` NULL), unless that row is a deletion; the current state is the open rows.

Functions taking ``conn`` run on whatever connection they are given: reads on a plain
connection, writes inside the write path's transaction (``services.writer.run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, false, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from .schema import dataset_items, dataset_run_items, dataset_runs, datasets

d, di, dr, dri = datasets, dataset_items, dataset_runs, dataset_run_items

Row = dict[str, Any]


def _one(conn: Connection, query: Any) -> Row | None:
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def _all(conn: Connection, query: Any) -> list[Row]:
    return [dict(row) for row in conn.execute(query).mappings()]


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(query.subquery())).scalar_one())


# --- datasets --------------------------------------------------------------------------------


def get_dataset_by_name(conn: Connection, project_id: str, name: str) -> Row | None:
    """The dataset row (``id``, ``name``, ``description``, ``metadata``, ``input_schema``,
    ``expected_output_schema``, ``created_at``, ``updated_at``) of that name, or None."""
    return _one(conn, select(d).where(d.c.project_id == project_id, d.c.name == name))


def get_dataset_by_id(conn: Connection, project_id: str, dataset_id: str) -> Row | None:
    """The dataset row of that id, or None (same columns as ``get_dataset_by_name``)."""
    return _one(conn, select(d).where(d.c.project_id == project_id, d.c.id == dataset_id))


def list_datasets(
    conn: Connection, project_id: str, *, offset: int, limit: int
) -> tuple[list[Row], int]:
    """One page of the project's datasets, newest first, and the total."""
    query = select(d).where(d.c.project_id == project_id)
    rows = _all(conn, query.order_by(d.c.created_at.desc(), d.c.id).offset(offset).limit(limit))
    return rows, _count(conn, query)


def insert_dataset(conn: Connection, row: Row) -> None:
    conn.execute(insert(d).values(**row))


def update_dataset(conn: Connection, project_id: str, dataset_id: str, values: Row) -> None:
    conn.execute(
        update(d).where(d.c.project_id == project_id, d.c.id == dataset_id).values(**values)
    )


def delete_dataset(conn: Connection, project_id: str, dataset_id: str) -> None:
    """The dataset with every version of its items, its runs and all their run items."""
    runs = select(dr.c.id).where(dr.c.project_id == project_id, dr.c.dataset_id == dataset_id)
    items = select(di.c.id).where(di.c.project_id == project_id, di.c.dataset_id == dataset_id)
    conn.execute(
        delete(dri).where(
            dri.c.project_id == project_id,
            or_(dri.c.run_id.in_(runs), dri.c.dataset_item_id.in_(items)),
        )
    )
    conn.execute(delete(dr).where(dr.c.project_id == project_id, dr.c.dataset_id == dataset_id))
    conn.execute(delete(di).where(di.c.project_id == project_id, di.c.dataset_id == dataset_id))
    conn.execute(delete(d).where(d.c.project_id == project_id, d.c.id == dataset_id))


# --- dataset items ---------------------------------------------------------------------------

_ITEM_COLUMNS = [*di.c, d.c.name.label("dataset_name")]


def _item_select() -> Any:
    return select(*_ITEM_COLUMNS).join(
        d, and_(d.c.project_id == di.c.project_id, d.c.id == di.c.dataset_id)
    )


def _live_at(as_of: datetime | None) -> list[Any]:
    """The rows in effect at ``as_of`` (None: now), deletions excluded."""
    if as_of is None:
        return [di.c.valid_to.is_(None), di.c.is_deleted == false()]
    return [
        di.c.valid_from <= as_of,
        or_(di.c.valid_to.is_(None), di.c.valid_to > as_of),
        di.c.is_deleted == false(),
    ]


def open_item_row(
    conn: Connection, project_id: str, item_id: str, *, lock: bool = False
) -> Row | None:
    """The latest version row of an item (possibly a deletion), or None if it never existed.

    ``lock``: lock the row for the rest of the transaction (PostgreSQL; SQLite's writer is
    already exclusive).
    """
    query = select(di).where(
        di.c.project_id == project_id, di.c.id == item_id, di.c.valid_to.is_(None)
    )
    if lock:
        query = query.with_for_update()
    return _one(conn, query)


def get_item(
    conn: Connection, project_id: str, item_id: str, *, as_of: datetime | None = None
) -> Row | None:
    """An item (with ``dataset_name``) as it is now, or as of ``as_of``; None if it did not
    exist then or was deleted."""
    return _one(
        conn,
        _item_select().where(di.c.project_id == project_id, di.c.id == item_id, *_live_at(as_of)),
    )


def list_items(
    conn: Connection,
    project_id: str,
    *,
    dataset_id: str | None = None,
    as_of: datetime | None = None,
    source_trace_id: str | None = None,
    source_observation_id: str | None = None,
    statuses: Sequence[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[Row], int]:
    """Items (with ``dataset_name``) as they are now, or as they were at ``as_of``: newest
    first (by creation), and the total. ``limit=None`` returns them all."""
    conds = [di.c.project_id == project_id, *_live_at(as_of)]
    if dataset_id is not None:
        conds.append(di.c.dataset_id == dataset_id)
    if source_trace_id is not None:
        conds.append(di.c.source_trace_id == source_trace_id)
    if source_observation_id is not None:
        conds.append(di.c.source_observation_id == source_observation_id)
    if statuses is not None:
        conds.append(di.c.status.in_(list(statuses)))
    query = _item_select().where(*conds)
    page = query.order_by(di.c.created_at.desc(), di.c.id).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    rows = _all(conn, page)
    total = len(rows) if limit is None and offset == 0 else _count(conn, query)
    return rows, total


def items_as_of(
    conn: Connection, project_id: str, dataset_id: str, as_of: datetime | None = None
) -> list[Row]:
    """Every item of a dataset (all statuses) as of ``as_of`` (None: now), newest first."""
    rows, _ = list_items(conn, project_id, dataset_id=dataset_id, as_of=as_of)
    return rows


def add_item_version(
    conn: Connection, project_id: str, item_id: str, valid_from: datetime, row: Row
) -> None:
    """Close the item's open row at ``valid_from`` and add ``row`` as the version from then.

    ``row`` holds the other columns (dataset_id, status, input, ..., created_at, is_deleted).
    The caller makes ``valid_from`` later than the open row's.
    """
    conn.execute(
        update(di)
        .where(di.c.project_id == project_id, di.c.id == item_id, di.c.valid_to.is_(None))
        .values(valid_to=valid_from)
    )
    conn.execute(
        insert(di).values(
            project_id=project_id,
            id=item_id,
            valid_from=valid_from,
            valid_to=None,
            updated_at=valid_from,
            **row,
        )
    )


# --- runs and run items ----------------------------------------------------------------------

_RUN_COLUMNS = [*dr.c, d.c.name.label("dataset_name")]


def _run_select() -> Any:
    return select(*_RUN_COLUMNS).join(
        d, and_(d.c.project_id == dr.c.project_id, d.c.id == dr.c.dataset_id)
    )


def get_run(conn: Connection, project_id: str, dataset_id: str, name: str) -> Row | None:
    """A run (with ``dataset_name``) of a dataset by name, or None."""
    return _one(
        conn,
        _run_select().where(
            dr.c.project_id == project_id, dr.c.dataset_id == dataset_id, dr.c.name == name
        ),
    )


def get_run_by_id(conn: Connection, project_id: str, run_id: str) -> Row | None:
    return _one(conn, _run_select().where(dr.c.project_id == project_id, dr.c.id == run_id))


def list_runs(
    conn: Connection, project_id: str, dataset_id: str, *, offset: int, limit: int
) -> tuple[list[Row], int]:
    query = _run_select().where(dr.c.project_id == project_id, dr.c.dataset_id == dataset_id)
    rows = _all(conn, query.order_by(dr.c.created_at.desc(), dr.c.id).offset(offset).limit(limit))
    return rows, _count(conn, query)


def insert_run(conn: Connection, row: Row) -> None:
    conn.execute(insert(dr).values(**row))


def update_run(conn: Connection, project_id: str, run_id: str, values: Row) -> None:
    conn.execute(
        update(dr).where(dr.c.project_id == project_id, dr.c.id == run_id).values(**values)
    )


def delete_run(conn: Connection, project_id: str, run_id: str) -> None:
    """The run and its run items (scores naming the run are left alone)."""
    conn.execute(delete(dri).where(dri.c.project_id == project_id, dri.c.run_id == run_id))
    conn.execute(delete(dr).where(dr.c.project_id == project_id, dr.c.id == run_id))


_RUN_ITEM_COLUMNS = [*dri.c, dr.c.name.label("run_name")]


def _run_item_select() -> Any:
    return select(*_RUN_ITEM_COLUMNS).join(
        dr, and_(dr.c.project_id == dri.c.project_id, dr.c.id == dri.c.run_id)
    )


def insert_run_item(conn: Connection, row: Row) -> None:
    conn.execute(insert(dri).values(**row))


def get_run_item(conn: Connection, project_id: str, run_item_id: str) -> Row | None:
    return _one(
        conn, _run_item_select().where(dri.c.project_id == project_id, dri.c.id == run_item_id)
    )


def list_run_items(
    conn: Connection,
    project_id: str,
    run_id: str,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[Row], int]:
    """A run's items (with ``run_name``), newest first, and the total."""
    query = _run_item_select().where(dri.c.project_id == project_id, dri.c.run_id == run_id)
    page = query.order_by(dri.c.created_at.desc(), dri.c.id).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    rows = _all(conn, page)
    total = len(rows) if limit is None and offset == 0 else _count(conn, query)
    return rows, total


def delete_run_items_of_item(conn: Connection, project_id: str, item_id: str) -> None:
    conn.execute(
        delete(dri).where(dri.c.project_id == project_id, dri.c.dataset_item_id == item_id)
    )
