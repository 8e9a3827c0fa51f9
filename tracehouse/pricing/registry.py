"""Which model definition prices an observation: project definitions first, then built-ins.

Among candidates that match, a project's own definitions come before the built-in ones, and
within each group the newest ``start_date`` first (definitions without one last). Lookups are
cached per project and model name, so pricing a stream of generations costs a dict lookup; the
cache of a project is dropped when its definitions change here, and re-read after
``refresh_seconds`` so that a change made by another tracehouse process is seen too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .definitions import ModelDefinition

_OLDEST = datetime.min.replace(tzinfo=UTC)
MAX_CACHED_NAMES = 10_000  # per project; beyond it the name cache starts over


def match_order(models: Sequence[ModelDefinition]) -> tuple[ModelDefinition, ...]:
    """Newest start date first, definitions without a start date last; stable otherwise."""
    return tuple(sorted(models, key=lambda m: m.start_date or _OLDEST, reverse=True))


@dataclass(slots=True)
class _ProjectModels:
    candidates: tuple[ModelDefinition, ...]
    loaded_at: float
    by_name: dict[str, ModelDefinition | None] = field(default_factory=dict)


class ModelRegistry:
    def __init__(
        self,
        builtins: Sequence[ModelDefinition],
        load_project: Callable[[str], Sequence[ModelDefinition]],
        *,
        refresh_seconds: float = 10.0,
    ) -> None:
        self.builtins = match_order(builtins)
        self._load_project = load_project
        self._refresh = refresh_seconds
        self._projects: dict[str, _ProjectModels] = {}
        self._lock = threading.Lock()

    def _project(self, project_id: str) -> _ProjectModels:
        entry = self._projects.get(project_id)
        now = time.monotonic()
        if entry is None or now - entry.loaded_at > self._refresh:
            own = match_order(self._load_project(project_id))
            entry = _ProjectModels(own + self.builtins, now)
            with self._lock:
                self._projects[project_id] = entry
        return entry

    def match(self, project_id: str, model_name: str | None) -> ModelDefinition | None:
        """The definition that prices ``model_name`` in this project, or None."""
        if not model_name:
            return None
        entry = self._project(project_id)
        try:
            return entry.by_name[model_name]
        except KeyError:
            pass
        found = next((m for m in entry.candidates if m.matches(model_name)), None)
        if len(entry.by_name) >= MAX_CACHED_NAMES:
            entry.by_name.clear()
        entry.by_name[model_name] = found
        return found

    def invalidate(self, project_id: str) -> None:
        """Forget a project's definitions (after one was created or deleted)."""
        with self._lock:
            self._projects.pop(project_id, None)
