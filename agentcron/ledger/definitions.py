"""Stored job definitions: a :class:`~agentcron.jobs.Job` as the schedules table keeps it.

A definition is a JSON-safe dict of the job's fields (callables become ``module:name``
references); a file job's secret-looking config text is masked. Reading many rows decodes each
distinct text once (100,000 jobs from one comprehension share one) and copies it per row only
when a row's definition is used.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from agentcron.agents import DeclaredModules, _ref_of
from agentcron.errors import ConfigError, Problem
from agentcron.jobs import Job
from agentcron.secrets import redact

JOB_FIELDS = [f.name for f in dataclasses.fields(Job) if f.name not in ("name", "_")]
_KNOWN = frozenset(JOB_FIELDS)
_EMPTY: dict[type, int] = {dict: -1, list: -2, tuple: -3}


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
    return {name: _plain(getattr(job, name)) for name in JOB_FIELDS if name != "enabled"}


def stored_definition(job: Job, source: str) -> dict[str, Any]:
    """What the table keeps: a file job's secret-looking config text is masked (the file is its
    source; workers never read it back), a runtime job's is kept (it is the only copy)."""
    definition = definition_of(job)
    return redact(definition) if source == "file" else definition


def job_from_definition(name: str, definition: dict[str, Any], enabled: bool = True) -> Job:
    """Rebuild a :class:`Job` from a stored definition; unknown keys are an error."""
    unknown = sorted(definition.keys() - _KNOWN)
    if unknown:
        raise ConfigError([Problem(name, "definition", ", ".join(unknown), "unknown fields")])
    values = {k: v for k, v in definition.items() if k != "enabled"}
    if "schedule" not in values or "agent" not in values:
        raise ConfigError([Problem(name, "definition", str(definition)[:80],
                                   "needs at least agent and schedule")])  # fmt: skip
    return Job(name, enabled=enabled, **values)


class Definitions:
    """Stored definitions of many jobs, each distinct one built once: jobs whose fields are the
    same objects (a comprehension in the schedule file) share it. Keyed by the fields' ids (an
    empty dict, list or tuple counts as one), so it must not outlive the jobs it was given (one
    ``sync_file`` or ``upsert`` call)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._built: dict[tuple[int, ...], list[Any]] = {}  # [definition, as read, JSON text]

    @staticmethod
    def _key(job: Job) -> tuple[int, ...]:
        values = iter(vars(job).values())
        next(values)  # the name
        return tuple(_EMPTY[type(v)] if type(v) in _EMPTY and not v else id(v) for v in values)

    def _entry(self, job: Job) -> list[Any]:
        key = self._key(job)
        found = self._built.get(key)
        if found is None:
            found = self._built[key] = [stored_definition(job, self.source), None, None]
        return found

    def of(self, job: Job) -> dict[str, Any]:
        """What the table keeps for ``job``."""
        return self._entry(job)[0]  # type: ignore[no-any-return]

    def text(self, job: Job) -> str:
        """:meth:`of` as JSON text (as the driver would send it)."""
        entry = self._entry(job)
        if entry[2] is None:
            entry[2] = json.dumps(entry[0])
        return entry[2]  # type: ignore[no-any-return]

    def as_read(self, job: Job) -> Any:
        """:meth:`of` as it reads back from the table (JSON round trip)."""
        entry = self._entry(job)
        if entry[1] is None:
            entry[1] = json.loads(json.dumps(entry[0], default=str))
        return entry[1]


class Decoded:
    """Definition texts read from the table, each distinct one decoded once; :meth:`fresh`
    gives a row its own copy (nested dicts and lists copied too)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}

    def shared(self, text: str | None) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The decoded definition of ``text`` (shared: never mutate it) and its keys that hold
        a dict or a list."""
        if not text:
            return {}, ()
        found = self._values.get(text)
        if found is None:
            value = json.loads(text)
            if not isinstance(value, dict):
                value = {}
            nested = tuple(k for k, v in value.items() if isinstance(v, dict | list))
            found = self._values[text] = (value, nested)
        return found


def fresh(shared: tuple[dict[str, Any], tuple[str, ...]]) -> dict[str, Any]:
    """A copy of a :meth:`Decoded.shared` definition that its reader may change."""
    value, nested = shared
    copy = dict(value)
    for key in nested:
        copy[key] = _fresh(value[key])
    return copy


def _fresh(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


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
