"""Engines for the embedded (SQLite) and server (PostgreSQL) stores, and migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import QueuePool

from ..config import Settings
from .types import unpack_text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# sqlite3 binds str, int and float directly, but asks its adapter registry about every other
# parameter, None, bytes and bool included: a lookup that misses, then two failed attribute lookups
# (``__adapt__``, ``__conform__``) whose AttributeError messages get formatted and thrown away.
# A written row has dozens of NULLs and a few packed BLOBs, so that cost more than SQLite's own
# insert. Registered adapters that return the value as it is make it one dict lookup and a C
# call; what gets bound does not change (None is NULL, bytes a BLOB, a bool 0 or 1).
# Process-wide, like the registry itself.
_none: Callable[[None], None] = cast(Any, {}).get  # {}.get(None) is None: a C call
sqlite3.register_adapter(type(None), _none)
sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b for bytes
sqlite3.register_adapter(bool, int)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL in WAL mode survives a killed
    # process (only an OS crash/power loss can drop the last commits), see README "Durability".
    # 8 KiB pages (a new database only; an existing file keeps its own): rows of a few hundred
    # bytes to a few KB waste less of a page than with 4 KiB.
    cur.execute("PRAGMA page_size=8192")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    # 16 MiB of page cache per connection (the OS caches the file as well); no mmap, so the
    # process's RSS stays its own memory and does not grow with the database file.
    cur.execute("PRAGMA cache_size=-16384")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()
    # SQL over packed JSON columns (filters on input, output, metadata) reads them through this.
    dbapi_conn.create_function("th_unpack", 1, unpack_text, deterministic=True)


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=8,
            max_overflow=16,
            connect_args={"check_same_thread": False, "timeout": 10},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    # No server-side prepared statements (psycopg prepares a query after its 5th run): the
    # generic plan PostgreSQL then keeps for `id IN (...)` lookups of the write path can be a
    # sequential scan while a table has no statistics yet (a fresh database, autovacuum off),
    # which slowed a worker's batches to seconds; and PgBouncer's transaction pooling cannot
    # carry prepared statements across connections anyway.
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"prepare_threshold": None},
    )


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def is_reachable(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
