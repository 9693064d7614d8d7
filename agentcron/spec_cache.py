"""Compiling many jobs that differ only by their names, once.

A schedule file's comprehension (``[Job(f"j{i}", agent=..., schedule=...) for i in ...]``) or
the rows an API wrote from one template declare thousands of jobs whose fields, the name
aside, are equal. Validating each one cost ~40 µs (agent import, durations, config, schedule):
4 s per 100,000 jobs. :class:`SpecCache` compiles the first job of each distinct set of fields
with :func:`~agentcron.jobs.compile_job` and gives the others a copy of its spec holding their
own ``Job``. Only the name differs, and nothing in a spec depends on the name except its
validity (checked for each job) and a budget (jobs with one are always compiled alone).
A job whose fields cannot be keyed by value, or that fails, is compiled alone as well, so every
problem still names its job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentcron.agents import DeclaredModules
from agentcron.jobs import DEFAULT_CONFIG_MAX_BYTES, Declared, Job, JobSpec, compile_job
from agentcron.windows import is_job_name

_FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name not in ("name", "_"))
_PLAIN = (str, int, float, bool, type(None))


def _frozen(value: Any, depth: int = 0) -> Hashable:
    """A hashable key equal only for equal values of the same types (``1``, ``1.0`` and
    ``True`` differ); raises TypeError for what cannot be keyed by value."""
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if depth > 8:
        raise TypeError("too deep")
    if isinstance(value, Mapping):
        return (type(value), tuple((_frozen(k, depth + 1), _frozen(v, depth + 1))
                                   for k, v in value.items()))  # fmt: skip
    if isinstance(value, list | tuple):
        return (type(value), tuple(_frozen(v, depth + 1) for v in value))
    hash(value)  # a callable, a datetime, a timedelta: by identity or by value
    return (type(value), value)


_EMPTY: dict[type, int] = {dict: -1, list: -2, tuple: -3}


def identity_key(job: Job) -> tuple[int, ...]:
    """The identities of ``job``'s fields but its name (an empty dict, list or tuple counts as
    one): jobs of one comprehension share every field object. Meaningful only while the field
    objects are alive: the cache keeps them alive by keeping the job it compiled."""
    values = iter(vars(job).values())
    next(values)  # the name
    return tuple(_EMPTY[type(v)] if type(v) in _EMPTY and not v else id(v) for v in values)


def template_key(job: Job) -> Hashable | None:
    """What ``job``'s spec depends on besides its name; None when it cannot be shared."""
    if job.budget is not None:
        return None
    try:
        return tuple(_frozen(getattr(job, name)) for name in _FIELDS)
    except TypeError:
        return None


class SpecCache:
    """:func:`~agentcron.jobs.compile_job` with fixed arguments, once per distinct template."""

    MAX_TEMPLATES = 4096

    def __init__(self, search_paths: Sequence[Path] = (),
                 config_max_bytes: int = DEFAULT_CONFIG_MAX_BYTES,
                 declared: DeclaredModules | None = None,
                 declarations: Declared | None = None) -> None:  # fmt: skip
        self.search_paths = list(search_paths)
        self.config_max_bytes = config_max_bytes
        self.declared = declared
        self.declarations = declarations
        self._specs: dict[Hashable, JobSpec] = {}
        self._by_ids: dict[tuple[int, ...], tuple[JobSpec, Job]] = {}

    def compile(self, job: Job) -> JobSpec:
        """The spec of ``job``; raises ConfigError as :func:`compile_job` does."""
        if not is_job_name(job.name) or job.budget is not None:
            return self._compile(job)
        ids = identity_key(job)
        held = self._by_ids.get(ids)
        if held is not None:
            found = held[0]
        else:
            key = template_key(job)
            if key is None:
                return self._compile(job)
            if len(self._by_ids) >= self.MAX_TEMPLATES:  # a long-lived catalogue: bounded
                self._specs.clear()
                self._by_ids.clear()
            known = self._specs.get(key)
            found = known if known is not None else self._compile(job)
            self._specs[key] = found
            self._by_ids[ids] = found, job  # holding the job keeps the objects of ``ids`` alive
        if found.job is job:
            return found
        spec = object.__new__(JobSpec)  # a copy holding this job: its one per-job field
        vars(spec).update(vars(found), job=job)
        return spec

    def _compile(self, job: Job) -> JobSpec:
        return compile_job(job, self.search_paths, self.config_max_bytes, self.declared,
                           self.declarations)  # fmt: skip
