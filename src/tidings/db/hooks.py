"""Commit hooks of a Database: what happens around the commit of a session it made.

A transaction that made work for the automation workers (it wrote activities, or enrolled
contacts by hand) marks its session with `mark_work`. When that session commits:
- just before the commit, on PostgreSQL, it sends `NOTIFY tidings_automations`: the database
  delivers it to the workers of every process at commit, and only if the transaction commits;
- after the commit, the Database's work listeners run (`CommitHooks.on_work_committed`: the
  wake-ups of the workers in this process).
A rollback forgets the mark.

The hooks are attached to the session factory that `create_database` builds, not to the
Session class: importing a module changes no session, and two Databases in one process (the
simulator's copy, tests) do not wake each other's workers.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

WORK_CHANNEL = "tidings_automations"
_WORK = "tidings_work"  # the mark, in Session.info


def mark_work(session: Session) -> None:
    """`session`'s transaction made work for the automation workers: wake them when it commits."""
    session.info[_WORK] = True


class CommitHooks:
    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._notify = False

    def on_work_committed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each commit of marked work; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def attach(self, factory: sessionmaker[Session], *, notify: bool) -> None:
        """Run these hooks for every session `factory` makes; `notify`: send NOTIFY too
        (PostgreSQL)."""
        self._notify = notify
        event.listen(factory, "before_commit", self._before_commit)
        event.listen(factory, "after_commit", self._after_commit)
        event.listen(factory, "after_rollback", self._after_rollback)

    def _before_commit(self, session: Session) -> None:
        if self._notify and session.info.get(_WORK):
            session.execute(text(f"NOTIFY {WORK_CHANNEL}"))

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_WORK, False):
            for listener in list(self._listeners):
                listener()

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_WORK, None)
