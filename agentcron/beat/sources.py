"""Where the beat's jobs come from: ``beat_schedule.py`` and the dynamic schedules.

At start the file's jobs are upserted into the schedules table, then every enabled row is
compiled into a :class:`~agentcron.jobs.JobSpec` by the catalogue's rules
(:class:`~agentcron.catalogue.Catalogue`, paused rows excluded: file rows from the file's own
``Job`` objects, which may hold callables; API rows from their stored definitions).
:meth:`SpecSource.poll` costs one indexed ``max(revision)`` when nothing changed, and reads only
the changed rows when something did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentcron.catalogue import Catalogue
from agentcron.emission.envelope import task_for
from agentcron.errors import ConfigError
from agentcron.jobs import DEFAULT_CONFIG_MAX_BYTES, Job, JobSpec
from agentcron.ledger.schedules import ScheduleEntry, ScheduleStore
from agentcron.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changes:
    """What a poll found: specs to (re)plan and job names to stop planning."""

    upserted: list[JobSpec] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class SpecSource:
    """The current job specs, kept in step with the schedules table."""

    def __init__(
        self,
        store: ScheduleStore | None,
        file_jobs: Sequence[Job] = (),
        search_paths: Sequence[Path] = (),
        config_max_bytes: int = DEFAULT_CONFIG_MAX_BYTES,
        settings: Settings | None = None,
        file_specs: Sequence[JobSpec] = (),
    ) -> None:
        self.store = store
        self.file_jobs = {job.name: job for job in file_jobs}
        self.settings = settings or Settings()
        self.catalogue = Catalogue(self.settings, file_jobs, search_paths=search_paths,
                                   config_max_bytes=config_max_bytes,
                                   file_specs=file_specs)  # fmt: skip
        self.specs: dict[str, JobSpec] = {}
        self.revision = -1
        self.failed: dict[str, str] = {}

    def load(self) -> dict[str, JobSpec]:
        """Upsert the file's jobs, then compile every enabled job."""
        if self.store is None:
            self.specs = {n: s for n, j in self.file_jobs.items() if (s := self._compile(j))}
            return dict(self.specs)
        self.store.sync_file(self.file_jobs.values())
        self.revision = self.store.revision()
        self.specs = {}
        for entry in self.store.entries():
            spec = self._spec_of(entry)
            if spec is not None:
                self.specs[entry.name] = spec
        return dict(self.specs)

    def poll(self) -> Changes | None:
        """Changes since the last load or poll; None when the revision did not move."""
        if self.store is None:
            return None
        revision = self.store.revision()
        if revision == self.revision:
            return None
        entries = self.store.entries(since=self.revision, include_removed=True)
        self.revision = revision
        changes = Changes()
        for entry in entries:
            spec = self._spec_of(entry)
            if spec is None:
                if self.specs.pop(entry.name, None) is not None:
                    changes.removed.append(entry.name)
            elif self.specs.get(entry.name) != spec:
                self.specs[entry.name] = spec
                changes.upserted.append(spec)
        return changes

    def route(self, job: str) -> tuple[str, str] | None:
        """``(task, queue)`` of a known job, for re-publishing its pending rows."""
        spec = self.specs.get(job)
        return None if spec is None else (task_for(spec), spec.queue)

    def _spec_of(self, entry: ScheduleEntry) -> JobSpec | None:
        try:
            spec = self.catalogue.spec_of(entry, include_paused=False)
        except ConfigError as exc:
            if not self.catalogue.is_file_row(entry):  # a runtime row: alerted when refused
                self.catalogue.refuse(entry.name, exc)
            self._reject(entry.name, str(exc))
            return None
        if spec is not None:
            self.failed.pop(entry.name, None)
        return spec

    def _compile(self, job: Job) -> JobSpec | None:
        try:
            spec = self.catalogue.file_spec(job)
        except ConfigError as exc:
            self._reject(job.name, str(exc))
            return None
        if spec is not None:
            self.failed.pop(job.name, None)
        return spec

    def _reject(self, name: str, reason: str) -> None:
        if self.failed.get(name) != reason:
            log.error("job %r is not scheduled: %s", name, reason)
        self.failed[name] = reason
