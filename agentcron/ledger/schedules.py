"""The schedules table: jobs kept in the ledger, changed at runtime (dynamic schedules).

``agentcron schedules add|list|pause|resume|remove`` and this module's :class:`ScheduleStore`
write rows; a running beat polls :meth:`ScheduleStore.revision` (one indexed ``max()``) and
reads only the rows whose ``revision`` moved, so picking up a change costs nothing per job.
Jobs of ``beat_schedule.py`` are upserted at beat start with ``source='file'`` (a runtime
pause survives that); a file job that disappeared from the file is disabled
(``source='file-removed'``), its history kept, and comes back enabled when it reappears. A
removed job keeps its row as a tombstone (``source='removed'``) so running beats see it.

How rows become job specs (and which are refused) is :mod:`agentcron.catalogue`'s business.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, Text, case, func, or_, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite

from agentcron.agents import DeclaredModules
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.jobs import Job
from agentcron.ledger.definitions import (
    JOB_FIELDS,
    Decoded,
    Definitions,
    check_declared,
    definition_of,
    fresh,
    job_from_definition,
    stored_definition,
)
from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.models import ScheduleRow

__all__ = ["JOB_FIELDS", "ScheduleEntry", "ScheduleStore", "check_declared", "definition_of",
           "env_declared_modules", "job_from_definition", "stored_definition"]  # fmt: skip
log = logging.getLogger(__name__)
SCHEDULES = cast(Table, ScheduleRow.__table__)
REMOVED = "removed"
LEFT_FILE = "file-removed"


@dataclass(frozen=True)
class ScheduleEntry:
    """One row of the schedules table."""

    name: str
    shared: tuple[dict[str, Any], tuple[str, ...]]  # the decoded definition, shared by rows
    enabled: bool
    source: str
    revision: int
    updated_at: datetime | None

    @functools.cached_property
    def definition(self) -> dict[str, Any]:
        """The row's definition: its own copy, made when first asked for (a beat never reads
        the stored definitions of the file's jobs: it compiles those from the file)."""
        return fresh(self.shared)

    @property
    def removed(self) -> bool:
        """True for the tombstone of a removed job."""
        return self.source == REMOVED

    def job(self) -> Job:
        """The :class:`Job` this row declares (with the row's enabled flag)."""
        return job_from_definition(self.name, self.definition, enabled=self.enabled)


def _differs(entry: ScheduleEntry | None, job: Job, definitions: Definitions | None = None,
             ) -> bool:  # fmt: skip
    if entry is None or entry.source != "file":
        return True
    stored = (definitions or Definitions("file")).as_read(job)
    return bool(entry.shared[0] != stored)


def _upsert_sql(source: str) -> Any:
    """PostgreSQL: many rows in ONE statement of fixed text; each distinct definition sent once
    (``:defs``, a JSON array) and joined by its 1-based index (``:indexes``)."""
    enabled = ("CASE WHEN schedules.source IN ('removed', 'file-removed') THEN excluded.enabled"
               " ELSE schedules.enabled END" if source == "file" else "excluded.enabled")
    return text(
        "WITH d(definition, i) AS (SELECT * FROM json_array_elements(CAST(:defs AS json))"
        " WITH ORDINALITY),"
        " u(name, i, enabled) AS (SELECT * FROM unnest(string_to_array(:names, chr(10)),"
        " CAST(string_to_array(:indexes, ',') AS bigint[]),"
        " CAST(string_to_array(:enabled, ',') AS boolean[])))"
        " INSERT INTO schedules (name, definition, enabled, source, revision, updated_at)"
        " SELECT u.name, d.definition, u.enabled, :source, :revision, :now FROM u JOIN d USING (i)"
        " ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,"
        f" enabled = {enabled}, source = excluded.source, revision = excluded.revision,"
        " updated_at = excluded.updated_at"
    )  # fmt: skip


class ScheduleStore:
    """CRUD over the schedules table, with a global revision counter."""

    def __init__(self, engine: Engine, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def revision(self) -> int:
        """The highest revision (cheap: one indexed max)."""
        with begin_read(self.engine) as conn:
            return int(conn.execute(select(func.coalesce(func.max(SCHEDULES.c.revision), 0)))
                       .scalar_one())  # fmt: skip

    def entries(
        self, since: int | None = None, include_removed: bool = False, runtime_only: bool = False,
        file_only: bool = False,
    ) -> list[ScheduleEntry]:
        """Rows (all, or those with ``revision >= since``), by name; ``runtime_only``: none of
        the schedule file's (a worker reading 100,000 file rows it skips peaked 150 MB higher);
        ``file_only``: only the rows of the file's current jobs (``source='file'``)."""
        c = SCHEDULES.c
        # the definition as text, decoded once per distinct text (100,000 jobs from one
        # comprehension share one): json.loads was 2.8 s of reading 100,000 rows
        query = select(c.name, sql_cast(c.definition, Text).label("definition"), c.enabled, c.source,
                       c.revision, c.updated_at).order_by(c.name)  # fmt: skip
        if since is not None:
            query = query.where(c.revision >= since)
        if not include_removed:
            query = query.where(c.source != REMOVED)
        if runtime_only:
            query = query.where(c.source.not_in(["file", LEFT_FILE]))
        if file_only:
            query = query.where(c.source == "file")
        with begin_read(self.engine) as conn:
            rows = conn.execute(query).all()
        shared = Decoded().shared
        return [ScheduleEntry(r.name, shared(r.definition), bool(r.enabled), r.source,
                              int(r.revision), r.updated_at) for r in rows]  # fmt: skip

    def get(self, name: str) -> ScheduleEntry | None:
        """One live row, or None."""
        found = [e for e in self.entries() if e.name == name]
        return found[0] if found else None

    def add(self, job: Job, source: str = "api", declared: DeclaredModules | None = None) -> int:
        """Insert or replace ``job``; returns the new revision. Its agent and callbacks must come
        from ``declared`` modules (by default ``AGENTCRON_AGENT_MODULES`` and the schedule
        file's modules, as workers load them): else a ConfigError, nothing imported or written.
        """
        check_declared(job, declared if declared is not None else env_declared_modules())
        return self.upsert([job], source)

    def upsert(self, jobs: Sequence[Job], source: str) -> int:
        """Insert or replace many jobs in one transaction; returns the new revision."""
        with begin_write(self.engine) as conn:
            revision = self._next_revision(conn)
            if not jobs:
                return revision
            now = self.clock.now()
            definitions = Definitions(source)
            names = [job.name for job in jobs]
            if (self.engine.dialect.name == "postgresql" and len(set(names)) == len(names)
                    and not any("\n" in name for name in names)):  # fmt: skip
                conn.execute(_upsert_sql(source), self._pg_params(jobs, definitions, source,
                                                                  revision, now))  # fmt: skip
                return revision
            rows = [{"name": job.name, "definition": definitions.of(job),
                     "enabled": job.enabled, "source": source, "revision": revision, "updated_at": now}
                    for job in jobs]  # fmt: skip
            statement = self._insert(SCHEDULES)
            changes: dict[str, Any] = {
                name: getattr(statement.excluded, name)
                for name in ("definition", "enabled", "source", "revision", "updated_at")
            }
            if source == "file":  # keep a pause made at runtime across beat restarts
                changes["enabled"] = case(
                    (or_(SCHEDULES.c.source == REMOVED, SCHEDULES.c.source == LEFT_FILE),
                     statement.excluded.enabled),
                    else_=SCHEDULES.c.enabled,
                )
            conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_=changes),
                         rows)  # fmt: skip
            return revision

    @staticmethod
    def _pg_params(jobs: Sequence[Job], definitions: Definitions, source: str, revision: int,
                   now: datetime) -> dict[str, Any]:  # fmt: skip
        """Parameters of :func:`_upsert_sql`: 100,000 rows in one statement (executemany of
        the same rows took ~3 s, most of it serialising one definition per row)."""
        index: dict[str, int] = {}
        indexes = [index.setdefault(definitions.text(job), len(index) + 1) for job in jobs]
        return {"defs": "[" + ",".join(index) + "]", "names": "\n".join(j.name for j in jobs),
                "indexes": ",".join(map(str, indexes)),
                "enabled": ",".join("t" if j.enabled else "f" for j in jobs),
                "source": source, "revision": revision, "now": now.astimezone(UTC)}  # fmt: skip

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Pause (False) or resume (True) a job; False if there is no such live job."""
        return self._change([name], enabled=enabled)

    def pause(self, name: str) -> bool:
        """Stop scheduling ``name`` (its history is kept)."""
        return self.set_enabled(name, False)

    def resume(self, name: str) -> bool:
        """Schedule ``name`` again."""
        return self.set_enabled(name, True)

    def remove(self, name: str) -> bool:
        """Delete ``name`` from the schedules (a tombstone row; its run history is kept)."""
        return self._change([name], enabled=False, source=REMOVED)

    def sync_file(self, jobs: Iterable[Job]) -> int:
        """Upsert the file's jobs (``source='file'``); disable file jobs no longer in it.

        Only rows that changed are written, so restarting a beat with the same file does not
        move the revision (and running beats re-read nothing).
        """
        jobs = list(jobs)
        # only the file's rows: any other row differs from a file job whatever it holds
        current = {e.name: e for e in self.entries(include_removed=True, file_only=True)}
        definitions = Definitions("file")
        changed = [job for job in jobs if _differs(current.get(job.name), job, definitions)]
        if changed:
            self.upsert(changed, "file")
        names = {job.name for job in jobs}
        gone = [n for n in current if n not in names]
        if gone:
            self._change(gone, enabled=False, source=LEFT_FILE)
        return self.revision()

    def _change(self, names: Sequence[str], **values: Any) -> bool:
        with begin_write(self.engine) as conn:
            revision = self._next_revision(conn)
            result = conn.execute(
                update(SCHEDULES)
                .where(SCHEDULES.c.name.in_(list(names)), SCHEDULES.c.source != REMOVED)
                .values(revision=revision, updated_at=self.clock.now(), **values)
            )
            return bool(result.rowcount)

    @staticmethod
    def _next_revision(conn: Any) -> int:
        current = conn.execute(select(func.coalesce(func.max(SCHEDULES.c.revision), 0)))
        return int(current.scalar_one()) + 1


def env_declared_modules() -> DeclaredModules:
    """``AGENTCRON_AGENT_MODULES`` plus the modules of the configured schedule file's jobs."""
    from agentcron.schedule_file import load_schedule_file
    from agentcron.settings import Settings

    settings = Settings.from_env()
    path = settings.schedule_path
    return DeclaredModules.of(settings.agent_modules,
                              load_schedule_file(path) if path.is_file() else [])
