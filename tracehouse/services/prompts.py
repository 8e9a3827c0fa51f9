"""Prompt management use cases, shared by the public API and the MCP server.

Writes run as one transaction on the write path (``run(fn)``); each bumps the project's prompt
counter first, checks references (missing targets, cycles) against the state it is about to
commit, and queues webhook deliveries in the same transaction. Reads of one version by name and
label or version are served from ``PromptCache``, which holds the encoded reply per project and
trusts it only while the project's counter is unchanged.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection, Engine

from ..domain import prompts as rules
from ..domain.prompts import LATEST, PRODUCTION, PromptReferenceError, Reference, StoredRef
from ..errors import InvalidInput, NotFound
from ..store import prompts as store
from ..store import webhooks as webhook_store
from ..store.prompts import ListFilters, PromptVersion

Run = Callable[[Callable[[Connection], Any]], Awaitable[Any]]
"""The write path's ``run``: ``fn(conn)`` in a write transaction."""


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prompt_json(
    v: PromptVersion, *, prompt: Any = None, graph: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The public ``Prompt`` shape of a version (``prompt`` overrides the stored content)."""
    return {
        "id": v.id,
        "projectId": v.project_id,
        "name": v.name,
        "version": v.version,
        "type": v.type,
        "prompt": v.prompt if prompt is None else prompt,
        "config": v.config,
        "labels": v.labels,
        "tags": v.tags,
        "commitMessage": v.commit_message,
        "resolutionGraph": graph,
        "createdBy": v.created_by,
        "createdAt": iso(v.created_at),
        "updatedAt": iso(v.updated_at),
    }


def _stored_ref(v: PromptVersion) -> StoredRef:
    return StoredRef(id=v.id, name=v.name, version=v.version, type=v.type, prompt=v.prompt)


def _lookup(conn: Connection, project_id: str) -> Callable[[Reference], StoredRef | None]:
    def lookup(ref: Reference) -> StoredRef | None:
        if ref.version is not None:
            found = store.get_version(conn, project_id, ref.name, ref.version)
        else:
            assert ref.label is not None
            found = store.get_by_label(conn, project_id, ref.name, ref.label)
        return None if found is None else _stored_ref(found)

    return lookup


def resolved(conn: Connection, v: PromptVersion) -> tuple[Any, dict[str, Any] | None]:
    """The version's content with references replaced, and its resolution graph."""
    return rules.resolve(_stored_ref(v), _lookup(conn, v.project_id))


# --- the read cache --------------------------------------------------------------------------


class PromptCache:
    """Encoded replies of ``get`` by (project, name, label, version), least recently used out.

    An entry holds the project's prompt counter read *before* the reply was built; it is served
    only while a fresh read of the counter gives the same number, so no process ever serves a
    prompt older than the last committed change (one primary-key read per request). Bounded by
    entries and by bytes; a reply larger than a tenth of the byte budget is not kept.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 64 * 2**20) -> None:
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, bytes]] = OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], generation: int) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != generation:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: tuple[Any, ...], generation: int, body: bytes) -> None:
        if len(body) > self._max_bytes // 10:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[key] = (generation, body)
            self._bytes += len(body)
            while len(self._entries) > self._max or self._bytes > self._max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    @property
    def size_bytes(self) -> int:
        return self._bytes


# --- the service -----------------------------------------------------------------------------


@dataclass
class _Change:
    """What a write did, for webhooks: versions created, updated (labels/tags) and deleted."""

    created: list[PromptVersion]
    updated: list[PromptVersion]
    deleted: list[PromptVersion]


def _not_found(name: str, label: str | None, version: int | None) -> NotFound:
    which = f"version {version}" if version is not None else f"label {label!r}"
    return NotFound(f"Prompt not found: {name!r} with {which}")


class PromptService:
    def __init__(self, engine: Engine, run: Run, cache: PromptCache | None = None) -> None:
        self._engine = engine
        self._run = run
        self.cache = cache or PromptCache()
        self._inline = (
            store.SqliteGenerationReader(engine) if engine.dialect.name == "sqlite" else None
        )

    # -- reads ----------------------------------------------------------------------------

    @staticmethod
    def _key(
        project_id: str, name: str, version: int | None, label: str | None
    ) -> tuple[tuple[Any, ...], str | None]:
        if version is not None and label is not None:
            raise InvalidInput("label", "give either a label or a version, not both")
        if version is None and label is None:
            label = PRODUCTION
        return (project_id, name, label, version), label

    def cached_json(
        self, project_id: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> tuple[int, bytes | None]:
        """The project's prompt counter and, if still current, the cached resolved reply.

        One primary-key read, cheap enough for the event loop on SQLite (``inline_reads``).
        """
        key, _ = self._key(project_id, name, version, label)
        generation = self._inline.read(project_id) if self._inline is not None else None
        if generation is None:
            with self._engine.connect() as conn:
                generation = store.generation(conn, project_id)
        return generation, self.cache.get(key, generation)

    def close(self) -> None:
        if self._inline is not None:
            self._inline.close()

    @property
    def inline_reads(self) -> bool:
        """Whether ``cached_json`` may run on the event loop: a local SQLite read takes
        microseconds, where handing it to a thread costs more (and, under load, waits for the
        GIL); a database server is a network round trip, kept off the loop."""
        return self._inline is not None

    def get_json(
        self,
        project_id: str,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        resolve: bool = True,
        generation: int | None = None,
    ) -> bytes:
        """The encoded ``Prompt`` reply (cached when resolved). ``generation``: the counter
        the caller already read (then the cache was already asked)."""
        key, label = self._key(project_id, name, version, label)
        with self._engine.connect() as conn:
            if generation is None:
                generation = store.generation(conn, project_id)
                if resolve:
                    hit = self.cache.get(key, generation)
                    if hit is not None:
                        return hit
            found = self._find(conn, project_id, name, version, label)
            if resolve:
                content, graph = resolved(conn, found)
                body = orjson.dumps(prompt_json(found, prompt=content, graph=graph))
                self.cache.put(key, generation, body)
            else:
                body = orjson.dumps(prompt_json(found))
        return body

    def get(
        self,
        project_id: str,
        name: str,
        *,
        version: int | None = None,
        label: str | None = None,
        resolve: bool = True,
    ) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(
            self.get_json(project_id, name, version=version, label=label, resolve=resolve)
        )
        return result

    @staticmethod
    def _find(
        conn: Connection, project_id: str, name: str, version: int | None, label: str | None
    ) -> PromptVersion:
        if version is not None:
            found = store.get_version(conn, project_id, name, version)
        else:
            assert label is not None
            found = store.get_by_label(conn, project_id, name, label)
        if found is None:
            raise _not_found(name, label, version)
        return found

    def list(
        self, project_id: str, filters: ListFilters, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """``PromptMeta`` per name (versions matching the filters) and the number of names."""
        with self._engine.connect() as conn:
            groups, total = store.list_names(conn, project_id, filters, page, limit)
        data = []
        for name, versions in groups:
            newest = max(versions, key=lambda v: v.updated_at)
            labels = sorted({label for v in versions for label in v.labels})
            data.append(
                {
                    "name": name,
                    "type": versions[-1].type,
                    "versions": [v.version for v in versions],
                    "labels": labels,
                    "tags": versions[-1].tags,
                    "lastUpdatedAt": iso(newest.updated_at),
                    "lastConfig": versions[-1].config,
                }
            )
        return data, total

    def versions(self, project_id: str, name: str) -> builtins.list[PromptVersion]:
        with self._engine.connect() as conn:
            found = store.versions_of(conn, project_id, name)
        if not found:
            raise NotFound(f"Prompt not found: {name!r}")
        return found

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self, project_id: str, body: Any, *, created_by: str = "API"
    ) -> dict[str, Any]:
        """Create the next version of ``body['name']``; returns the stored (unresolved) prompt."""
        new = rules.parse_create(body)
        version_id = str(uuid.uuid4())

        def write(conn: Connection) -> dict[str, Any]:
            now = datetime.now(UTC)
            store.bump_generation(conn, project_id)
            existing = store.versions_of(conn, project_id, new.name)
            if existing and existing[-1].type != new.type:
                raise InvalidInput(
                    "type",
                    f"prompt {new.name!r} is a {existing[-1].type} prompt; a new version "
                    "must have the same type",
                )
            number = (existing[-1].version if existing else 0) + 1
            tags = new.tags if new.tags is not None else (existing[-1].tags if existing else [])
            version = PromptVersion(
                id=version_id,
                project_id=project_id,
                name=new.name,
                version=number,
                type=new.type,
                prompt=new.prompt,
                config=new.config,
                tags=tags,
                labels=[],
                commit_message=new.commit_message,
                created_by=created_by,
                created_at=now,
                updated_at=now,
            )
            store.insert_version(conn, version)
            updated_ids: set[str] = set()
            if new.tags is not None:
                updated_ids |= {v.id for v in existing if v.tags != tags}
                store.set_tags(conn, project_id, new.name, tags, now)
            holders = {label: v for v in existing for label in v.labels}
            for label in [*new.labels, LATEST]:
                if label != LATEST and label in holders:
                    updated_ids.add(holders[label].id)
                store.point_label(conn, project_id, new.name, label, number)
            store.touch(
                conn,
                project_id,
                new.name,
                [v.version for v in existing if v.id in updated_ids],
                now,
            )
            store.insert_dependencies(conn, project_id, version_id, new.references)
            stored = store.get_version(conn, project_id, new.name, number)
            assert stored is not None
            resolved(conn, stored)  # missing targets, chat targets, cycles: 400 and rollback
            updated = store.by_ids(conn, project_id, updated_ids)
            self._notify(conn, project_id, _Change([stored], updated, []), now)
            return prompt_json(stored)

        result: dict[str, Any] = await self._run(write)
        return result

    async def set_labels(
        self, project_id: str, name: str, version: int, new_labels: Any
    ) -> dict[str, Any]:
        """The version's labels become ``new_labels`` (each moved off the version it was on);
        ``latest`` stays where the server keeps it."""
        if not isinstance(new_labels, list):
            raise InvalidInput("newLabels", "must be a list of strings")
        labels = rules.check_labels(new_labels, "newLabels")

        def write(conn: Connection) -> dict[str, Any]:
            now = datetime.now(UTC)
            store.bump_generation(conn, project_id)
            target = store.get_version(conn, project_id, name, version)
            if target is None:
                raise NotFound(f"Prompt not found: {name!r} with version {version}")
            holders = store.labels_by_version(conn, project_id, name)
            losers = {
                v
                for v, held in holders.items()
                for label in held
                if label in labels and v != version
            }
            removed = store.drop_labels(conn, project_id, name, version, labels)
            for label in labels:
                store.point_label(conn, project_id, name, label, version)
            changed = set(removed) | (set(labels) - set(target.labels))
            if not changed:
                return prompt_json(target)
            store.touch(conn, project_id, name, {version, *losers}, now)
            _check_dependents(conn, project_id, name, gone_labels=set(removed))
            stored = store.get_version(conn, project_id, name, version)
            assert stored is not None
            # References by label that now lead here may close a cycle, which then runs
            # through this version: resolving it finds any.
            resolved(conn, stored)
            others = [v for v in store.versions_of(conn, project_id, name) if v.version in losers]
            self._notify(conn, project_id, _Change([], [stored, *others], []), now)
            return prompt_json(stored)

        result: dict[str, Any] = await self._run(write)
        return result

    async def delete(
        self, project_id: str, name: str, *, label: str | None = None, version: int | None = None
    ) -> int:
        """Delete all versions of ``name``, or those with ``label``, or ``version``; 404 if none.

        Refused (400) while another prompt references a version that would go away.
        """
        if label is not None:
            rules.check_label(label, "label", allow_latest=True)

        def write(conn: Connection) -> int:
            now = datetime.now(UTC)
            store.bump_generation(conn, project_id)
            every = store.versions_of(conn, project_id, name)
            doomed = [
                v
                for v in every
                if (version is None or v.version == version)
                and (label is None or label in v.labels)
            ]
            if not doomed:
                which = (
                    f" with version {version}"
                    if version is not None
                    else (f" with label {label!r}" if label is not None else "")
                )
                raise NotFound(f"Prompt not found: {name!r}{which}")
            doomed_ids = {v.id for v in doomed}
            left = [v for v in every if v.id not in doomed_ids]
            store.delete_versions(conn, project_id, name, doomed)
            _check_dependents(
                conn,
                project_id,
                name,
                gone_versions={v.version for v in doomed},
                gone_labels={lb for v in doomed for lb in v.labels if lb != LATEST},
                ignore_parents=doomed_ids,
                nothing_left=not left,
            )
            self._notify(conn, project_id, _Change([], [], doomed), now)
            return len(doomed)

        count: int = await self._run(write)
        return count

    @staticmethod
    def _notify(conn: Connection, project_id: str, change: _Change, now: datetime) -> None:
        for action, versions in (
            ("created", change.created),
            ("updated", change.updated),
            ("deleted", change.deleted),
        ):
            for v in versions:
                webhook_store.enqueue_prompt_event(conn, project_id, action, prompt_json(v), now)


def _check_dependents(
    conn: Connection,
    project_id: str,
    name: str,
    *,
    gone_versions: set[int] | None = None,
    gone_labels: set[str] | None = None,
    ignore_parents: set[str] | None = None,
    nothing_left: bool = False,
) -> None:
    """400 if another prompt references ``name`` by a version or label that is going away."""
    broken = []
    for dep in store.dependents(conn, project_id, name):
        if ignore_parents and dep.parent_id in ignore_parents:
            continue
        if dep.child_version is not None:
            lost = dep.child_version in (gone_versions or set())
        else:
            lost = (nothing_left or dep.child_label in (gone_labels or set())) and (
                store.version_with_label(conn, project_id, name, dep.child_label or "") is None
            )
        if lost:
            which = (
                f"version {dep.child_version}"
                if dep.child_version is not None
                else f"label {dep.child_label!r}"
            )
            broken.append(f"{dep.parent_name!r} version {dep.parent_version} ({which})")
    if broken:
        raise PromptReferenceError(
            f"prompt {name!r} is referenced by "
            + ", ".join(sorted(set(broken)))
            + "; update or delete those versions first"
        )
