"""Score configs: SQL, and the per-project cache that score validation reads through.

The cache (:class:`ConfigCache`) holds every config of a project (archived ones too), loaded by
one query the first time a score of that project names a ``configId``. An entry lives
``ttl_s`` seconds (default 5): changes made through this process invalidate it at once
(``invalidate``), changes made by another process (``serve --workers N``, another host) are seen
after at most the TTL. Scores without a ``configId`` never touch it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from ..domain.score_configs import ScoreConfig
from .schema import score_configs

c = score_configs


def insert_config(conn: Connection, config: ScoreConfig) -> None:
    conn.execute(c.insert().values(**config.row()))


def update_config(conn: Connection, config: ScoreConfig) -> None:
    row = config.row()
    del row["project_id"], row["id"], row["created_at"]
    conn.execute(
        update(c).where(c.c.project_id == config.project_id, c.c.id == config.id).values(**row)
    )


def get_config(conn: Connection, project_id: str, config_id: str) -> ScoreConfig | None:
    row = (
        conn.execute(select(c).where(c.c.project_id == project_id, c.c.id == config_id))
        .mappings()
        .first()
    )
    return ScoreConfig.from_row(row) if row else None


def list_configs(
    conn: Connection, project_id: str, *, page: int, limit: int
) -> tuple[list[ScoreConfig], int]:
    """One page of the project's configs, newest first, and their total count."""
    total = conn.execute(
        select(func.count()).select_from(c).where(c.c.project_id == project_id)
    ).scalar_one()
    rows = conn.execute(
        select(c)
        .where(c.c.project_id == project_id)
        .order_by(c.c.created_at.desc(), c.c.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    ).mappings()
    return [ScoreConfig.from_row(r) for r in rows], int(total)


def project_configs(conn: Connection, project_id: str) -> dict[str, ScoreConfig]:
    """Every config of the project (archived ones too), by id."""
    rows = conn.execute(select(c).where(c.c.project_id == project_id)).mappings()
    return {r["id"]: ScoreConfig.from_row(r) for r in rows}


CONFIG_CACHE_TTL_S = 5.0
"""How long a process trusts its snapshot of a project's configs (changes made by other
processes are seen within this time; its own changes at once)."""


class ConfigCache:
    """Per-project snapshot of the configs, for checking scores at request time. Thread-safe.

    ``get`` may run in worker threads; a miss reads the project's configs with one query.
    At most ``max_projects`` projects are kept (least recently used go first).
    """

    def __init__(self, engine: Engine, *, ttl_s: float = 5.0, max_projects: int = 10_000) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._max_projects = max_projects
        self._entries: OrderedDict[str, tuple[float, int, dict[str, ScoreConfig]]] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._lock = threading.Lock()

    def cached(self, project_id: str) -> dict[str, ScoreConfig] | None:
        """The project's configs if a fresh snapshot is held (no I/O)."""
        with self._lock:
            entry = self._entries.get(project_id)
            if entry is None or entry[0] < time.monotonic():
                return None
            self._entries.move_to_end(project_id)
            return entry[2]

    def get(self, project_id: str) -> dict[str, ScoreConfig]:
        """The project's configs, from the snapshot or read now."""
        hit = self.cached(project_id)
        if hit is not None:
            return hit
        with self._lock:
            generation = self._generation.get(project_id, 0)
        with self._engine.connect() as conn:
            configs = project_configs(conn, project_id)
        with self._lock:
            # An invalidation that raced with the read wins: keep the result for this call only.
            if self._generation.get(project_id, 0) == generation:
                expires = time.monotonic() + self._ttl_s
                self._entries[project_id] = (expires, generation, configs)
                self._entries.move_to_end(project_id)
                while len(self._entries) > self._max_projects:
                    self._entries.popitem(last=False)
        return configs

    def invalidate(self, project_id: str) -> None:
        """Forget the project's snapshot (call after this process changed one of its configs)."""
        with self._lock:
            self._entries.pop(project_id, None)
            self._generation[project_id] = self._generation.get(project_id, 0) + 1
