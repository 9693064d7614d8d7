"""The job catalogue: the schedule file's jobs and the ``schedules`` table, merged into specs.

One set of rules for the beat (:class:`~agentcron.beat.sources.SpecSource`), the workers
(:func:`load_specs`, through :func:`agentcron.runtime.dynamic_specs`) and the watchdog
(:func:`watched_specs`, through :func:`agentcron.watch.watchdog.enabled_specs`):

- a removed row (a tombstone) is never a job;
- a paused row is a job only with ``include_paused=True``: the workers include it (a window
  queued before the pause may still run), the beat and the watchdog do not (not scheduled, not
  watched);
- a ``file`` row compiles from the schedule file's own ``Job`` when the caller has the file (it
  may hold callables; a job disabled in the file is no job); any other row from its stored
  definition, with its agent and callbacks only from declared modules
  (:func:`declared_modules`), checked before anything is imported;
- budget and limit names resolve with ``declarations`` (the file's BUDGETS and LIMITS) when the
  caller has them (the workers); the beat and the watchdog need only the schedule;
- a row that does not compile is refused: logged and alerted once per process and reason
  (:func:`refuse_entry`), never fatal to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import Engine

from agentcron.agents import DeclaredModules
from agentcron.alerts import Alert, safe_alerter
from agentcron.errors import ConfigError
from agentcron.jobs import Declared, Job, JobSpec
from agentcron.ledger.schedules import ScheduleEntry, ScheduleStore
from agentcron.settings import Settings
from agentcron.spec_cache import SpecCache

log = logging.getLogger("agentcron.catalogue")


def declared_modules(settings: Settings, file_jobs: Iterable[Job] = ()) -> DeclaredModules:
    """Where runtime schedules' agents may come from: ``AGENTCRON_AGENT_MODULES`` plus the
    modules of the schedule file's jobs."""
    file_jobs = list(file_jobs)
    try:
        return DeclaredModules.of(settings.agent_modules, file_jobs)
    except ConfigError as exc:  # a running process goes on with the valid entries
        log.error("%s; ignoring the entries that are not module names", exc)
        return DeclaredModules.of(settings.agent_modules, file_jobs, strict=False)


_ALERTED: dict[str, str] = {}


def refuse_entry(settings: Settings, name: str, error: ConfigError | str) -> None:
    """Log and alert (once per process and reason) that the schedule row ``name`` is ignored."""
    reason = str(error)
    if _ALERTED.get(name) == reason:
        return
    _ALERTED[name] = reason
    safe_alerter(settings).alert(Alert(name, "-", "refused",
                                       f"schedule ignored: {reason}"[:2000]))  # fmt: skip


class Catalogue:
    """How rows of the schedules table (and the schedule file's jobs) become specs."""

    def __init__(self, settings: Settings, file_jobs: Iterable[Job] = (), *,
                 search_paths: Sequence[Path] | None = None, config_max_bytes: int | None = None,
                 declarations: Declared | None = None,
                 file_specs: Iterable[JobSpec] = ()) -> None:  # fmt: skip
        self.settings = settings
        self.file_jobs = {job.name: job for job in file_jobs}
        self.search_paths = (list(search_paths) if search_paths is not None
                             else [settings.schedule_path.parent.resolve()])  # fmt: skip
        self.config_max_bytes = (settings.config_max_bytes if config_max_bytes is None
                                 else config_max_bytes)  # fmt: skip
        self.declared = declared_modules(settings, self.file_jobs.values())
        self.declarations = declarations
        # the file's jobs as the caller already compiled them (the beat validates the whole file
        # first): used as they are, never compiled a second time
        self.file_specs = {spec.name: spec for spec in file_specs}
        self._file_cache = SpecCache(self.search_paths, self.config_max_bytes,
                                     declarations=declarations)  # fmt: skip
        self._runtime_cache = SpecCache(self.search_paths, self.config_max_bytes, self.declared,
                                        declarations)  # fmt: skip

    def file_spec(self, job: Job) -> JobSpec | None:
        """The spec of a schedule-file job; None when the file disables it. Raises ConfigError."""
        if not job.enabled:
            return None
        known = self.file_specs.get(job.name)
        if known is not None and known.job is job:
            return known
        return self._file_cache.compile(job)

    def is_file_row(self, entry: ScheduleEntry) -> bool:
        """True when ``entry`` is compiled from the schedule file's own job."""
        return entry.source == "file" and entry.name in self.file_jobs

    def spec_of(self, entry: ScheduleEntry, *, include_paused: bool) -> JobSpec | None:
        """The spec of one row; None when the row is no job for this caller (removed, paused
        without ``include_paused``, disabled in the file). Raises ConfigError."""
        if entry.removed or (not entry.enabled and not include_paused):
            return None
        if self.is_file_row(entry):
            return self.file_spec(self.file_jobs[entry.name])
        # a runtime row: its agent and callbacks only from the declared modules (checked
        # before anything is imported), never a class; a budget or limits named from the
        # schedule file's declarations; compiled once per template. Raises ConfigError.
        return self._runtime_cache.compile(entry.job())

    def refuse(self, name: str, error: ConfigError | str) -> None:
        """Log and alert (once per process and reason) that the row ``name`` is ignored."""
        refuse_entry(self.settings, name, error)


def load_specs(engine: Engine, settings: Settings, file_jobs: Iterable[Job] = (),
               declarations: Declared | None = None) -> list[JobSpec]:  # fmt: skip
    """The workers' specs of the jobs added at runtime (not the file's: the workers compile those
    from the file), paused ones included. Rows that do not compile (an unknown budget or limit
    name among them), or whose agent is not from a declared module, are refused."""
    catalogue = Catalogue(settings, file_jobs, declarations=declarations)
    specs: list[JobSpec] = []
    for entry in ScheduleStore(engine).entries(runtime_only=True):  # the file's rows: not read
        try:
            spec = catalogue.spec_of(entry, include_paused=True)
        except ConfigError as exc:
            catalogue.refuse(entry.name, exc)
            continue
        if spec is not None:
            specs.append(spec)
    return specs


def watched_specs(known: Iterable[JobSpec], store: ScheduleStore,
                  catalogue: Catalogue) -> list[JobSpec]:  # fmt: skip
    """The watchdog's jobs: the enabled ``known`` specs (a process's own catalogue) less the rows
    paused or removed in the table, plus the table's jobs this process does not know yet."""
    specs = {spec.name: spec for spec in known if spec.job.enabled}
    try:
        entries = store.entries(include_removed=True)
    except Exception as exc:  # no schedules table yet: the file is all there is
        log.debug("no dynamic schedules (%s)", type(exc).__name__)
        return list(specs.values())
    for entry in entries:
        if entry.removed or not entry.enabled:
            specs.pop(entry.name, None)
            continue
        if entry.name in specs:
            continue
        try:
            spec = catalogue.spec_of(entry, include_paused=False)
        except ConfigError as exc:
            catalogue.refuse(entry.name, exc)
            continue
        except Exception as exc:
            log.warning("job %r not watched: %s", entry.name, exc)
            continue
        if spec is not None:
            specs[entry.name] = spec
    return list(specs.values())
