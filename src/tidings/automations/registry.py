"""An in-memory cache of automations and their (immutable) versions, and the trigger index."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.automations import triggers
from tidings.automations.definition import Definition, WaitStep, parse_definition
from tidings.automations.models import Automation, AutomationVersion

ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Loaded:
    automation_id: int
    name: str
    version: int
    definition: Definition

    allowed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        # Asked for every claimed row: computed once.
        object.__setattr__(
            self, "allowed", frozenset(s.value for s in self.definition.allow_statuses)
        )

    @property
    def needs_recheck(self) -> bool:
        """Goals and condition waits are re-checked when the contact's activities arrive."""
        d = self.definition
        return bool(d.goals) or any(
            isinstance(s, WaitStep) and s.wait.condition is not None for s in d.steps
        )


@dataclass(slots=True)
class Snapshot:
    current: dict[int, Loaded] = field(default_factory=dict)  # active automations by id
    by_name: dict[str, int] = field(default_factory=dict)
    status: dict[int, str] = field(default_factory=dict)
    index: dict[str, list[Loaded]] = field(default_factory=dict)  # activity type -> triggered
    recheck_ids: frozenset[int] = frozenset()

    def active_ids(self) -> list[int]:
        """The automations that run now (not paused)."""
        return [aid for aid, status in self.status.items() if status == "active"]


class Registry:
    """Reloads when automations change; versions are immutable and cached forever."""

    def __init__(self) -> None:
        self._versions: dict[tuple[int, int], Loaded] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self.snapshot = Snapshot()

    def refresh(self, session: Session) -> Snapshot:
        # The whole (small) automations table is the stamp: any rename, pause or edit shows.
        rows = session.execute(
            select(
                Automation.id, Automation.name, Automation.status, Automation.current_version
            ).order_by(Automation.id)
        ).all()
        stamp = tuple(tuple(row) for row in rows)
        with self._lock:
            if stamp == self._stamp:
                return self.snapshot
        snapshot = Snapshot()
        for automation_id, name, status, version in rows:
            snapshot.by_name[name] = automation_id
            snapshot.status[automation_id] = status
            if status != ACTIVE:
                continue
            loaded = self.version(session, automation_id, version)
            snapshot.current[automation_id] = loaded
            for activity_type in triggers.activity_types(loaded.definition.trigger):
                snapshot.index.setdefault(activity_type, []).append(loaded)
        snapshot.recheck_ids = frozenset(
            aid for aid, loaded in snapshot.current.items() if loaded.needs_recheck
        )
        with self._lock:
            self.snapshot, self._stamp = snapshot, stamp
        return snapshot

    def version(self, session: Session, automation_id: int, version: int) -> Loaded:
        key = (automation_id, version)
        with self._lock:
            cached = self._versions.get(key)
        if cached is not None:
            return cached
        name, definition = session.execute(
            select(Automation.name, AutomationVersion.definition)
            .join(AutomationVersion, AutomationVersion.automation_id == Automation.id)
            .where(Automation.id == automation_id, AutomationVersion.version == version)
        ).one()
        loaded = Loaded(automation_id, name, version, parse_definition(definition))
        with self._lock:
            self._versions[key] = loaded
        return loaded
