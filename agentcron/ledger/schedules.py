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

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Table, Text, case, func, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite

from agentcron.agents import DeclaredModules, _ref_of
from agentcron.clock import SYSTEM_CLOCK, Clock
from agentcron.errors import ConfigError, Problem
from agentcron.jobs import Job
from agentcron.ledger.engine import begin_read, begin_write
from agentcron.ledger.models import ScheduleRow
from agentcron.secrets import redact

log = logging.getLogger(__name__)
SCHEDULES = cast(Table, ScheduleRow.__table__)
REMOVED = "removed"
LEFT_FILE = "file-removed"
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job) if f.name not in ("name", "_")]


@dataclass(frozen=True)
class ScheduleEntry:
    """One row of the schedules table."""

    name: str
    definition: dict[str, Any]
    enabled: bool
    source: str
    revision: int
    updated_at: datetime | None

    @property
    def removed(self) -> bool:
        """True for the tombstone of a removed job."""
        return self.source == REMOVED

    def job(self) -> Job:
        """The :class:`Job` this row declares (with the row's enabled flag)."""
        return job_from_definition(self.name, self.definition, enabled=self.enabled)


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, datetime):
        return value.isoformat()
    if callable(value):
        return _ref_of(value)
    return value


def definition_of(job: Job) -> dict[str, Any]:
    """A JSON-safe dict of ``job``'s fields (callables become ``module:name`` references)."""
    return {name: _plain(getattr(job, name)) for name in _JOB_FIELDS if name != "enabled"}


def stored_definition(job: Job, source: str) -> dict[str, Any]:
    """What the table keeps: a file job's secret-looking config text is masked (the file is its
    source; workers never read it back), a runtime job's is kept (it is the only copy)."""
    definition = definition_of(job)
    return redact(definition) if source == "file" else definition


def job_from_definition(name: str, definition: dict[str, Any], enabled: bool = True) -> Job:
    """Rebuild a :class:`Job` from a stored definition; unknown keys are an error."""
    unknown = sorted(set(definition) - set(_JOB_FIELDS))
    if unknown:
        raise ConfigError([Problem(name, "definition", ", ".join(unknown), "unknown fields")])
    values = {k: v for k, v in definition.items() if k != "enabled"}
    if "schedule" not in values or "agent" not in values:
        raise ConfigError([Problem(name, "definition", str(definition)[:80],
                                   "needs at least agent and schedule")])  # fmt: skip
    return Job(name, enabled=enabled, **values)


class _Definitions:
    """Stored definitions of many jobs, each distinct one built once: jobs whose fields are the
    same objects (a comprehension in the schedule file) share it. Keyed by the fields' ids (an
    empty config counts as one), so it must not outlive the jobs it was given (one
    ``sync_file`` or ``upsert`` call)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._built: dict[tuple[int, ...], tuple[dict[str, Any], Any]] = {}

    @staticmethod
    def _key(job: Job) -> tuple[int, ...]:
        values = (getattr(job, name) for name in _JOB_FIELDS)
        return tuple(-1 if isinstance(v, dict) and not v else id(v) for v in values)  # {}: default

    def _entry(self, job: Job) -> tuple[dict[str, Any], Any]:
        key = self._key(job)
        found = self._built.get(key)
        if found is None:
            definition = stored_definition(job, self.source)
            found = self._built[key] = (definition, None)
        return found

    def of(self, job: Job) -> dict[str, Any]:
        """What the table keeps for ``job``."""
        return self._entry(job)[0]

    def as_read(self, job: Job) -> Any:
        """:meth:`of` as it reads back from the table (JSON round trip)."""
        key = self._key(job)
        definition, read = self._entry(job)
        if read is None:
            read = json.loads(json.dumps(definition, default=str))
            self._built[key] = (definition, read)
        return read


def _differs(entry: ScheduleEntry | None, job: Job, definitions: _Definitions | None = None,
             ) -> bool:  # fmt: skip
    if entry is None or entry.source != "file":
        return True
    stored = (definitions or _Definitions("file")).as_read(job)
    return bool(entry.definition != stored)


def _definition_of(text: str | None, decoded: dict[str, Any]) -> dict[str, Any]:
    """A fresh dict of the JSON ``text`` (its nested lists and dicts fresh too), decoding each
    distinct text once."""
    if not text:
        return {}
    value = decoded.get(text)
    if value is None:
        value = decoded[text] = json.loads(text)
    return dict(_fresh(value) or {})


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


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
        self, since: int | None = None, include_removed: bool = False, runtime_only: bool = False
    ) -> list[ScheduleEntry]:
        """Rows (all, or those with ``revision >= since``), by name; ``runtime_only``: none of
        the schedule file's (a worker reading 100,000 file rows it skips peaked 150 MB higher)."""
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
        with begin_read(self.engine) as conn:
            rows = conn.execute(query).all()
        decoded: dict[str, Any] = {}
        return [ScheduleEntry(r.name, _definition_of(r.definition, decoded), bool(r.enabled),
                              r.source, int(r.revision), r.updated_at) for r in rows]  # fmt: skip

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
            now = self.clock.now()
            definitions = _Definitions(source)
            rows = [{"name": job.name, "definition": definitions.of(job),
                     "enabled": job.enabled, "source": source, "revision": revision, "updated_at": now}
                    for job in jobs]  # fmt: skip
            if not rows:
                return revision
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
        current = {e.name: e for e in self.entries(include_removed=True)}
        definitions = _Definitions("file")
        changed = [job for job in jobs if _differs(current.get(job.name), job, definitions)]
        if changed:
            self.upsert(changed, "file")
        names = {job.name for job in jobs}
        gone = [n for n, e in current.items() if e.source == "file" and n not in names]
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


def check_declared(job: Job, declared: DeclaredModules) -> None:
    """A ConfigError naming ``job`` unless its agent and callbacks come from ``declared``."""
    for name in ("agent", "on_success", "on_failure"):
        value = getattr(job, name)
        if value is None:
            continue
        try:
            declared.check(value if isinstance(value, str) else _ref_of(value), name)
        except ConfigError as exc:
            raise exc.for_job(job.name) from None


def env_declared_modules() -> DeclaredModules:
    """``AGENTCRON_AGENT_MODULES`` plus the modules of the configured schedule file's jobs."""
    from agentcron.schedule_file import load_schedule_file
    from agentcron.settings import Settings

    settings = Settings.from_env()
    path = settings.schedule_path
    return DeclaredModules.of(settings.agent_modules,
                              load_schedule_file(path) if path.is_file() else [])
