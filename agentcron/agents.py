"""Resolving an agent reference and calling it the way its kind wants.

An agent is a sync or async function called with the :class:`RunContext`, or an object with
``run``/``arun`` (or ``start``/``astart``, the names of common agent frameworks) given the task
text. The kind (sync or async) is decided here, once, when the job is registered.

No class is ever instantiated from a name: an agent reference names a function, or an object
the module itself created (``briefing = BriefingAgent()``); a class is refused. A reference
never reaches through one module into another (``mod:os.system``). Agents of runtime schedules
must come from declared modules (:class:`DeclaredModules`); the check happens before anything
is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import inspect
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentcron.context import RunContext
from agentcron.errors import ConfigError, Problem


class AgentKind(enum.StrEnum):
    """Which worker pool runs the agent."""

    SYNC = "sync"
    ASYNC = "async"


@dataclass(frozen=True)
class Agent:
    """A resolved agent: the target, its kind, and whether it takes the context or the task."""

    ref: str
    target: Any
    kind: AgentKind
    takes_task: bool

    def call_sync(self, ctx: RunContext) -> Any:
        """Run a sync agent in this thread."""
        argument: Any = ctx.task if self.takes_task else ctx
        return self.target(argument)

    async def call_async(self, ctx: RunContext) -> Any:
        """Run the agent on the running loop; a sync agent goes to a worker thread."""
        argument: Any = ctx.task if self.takes_task else ctx
        if self.kind is AgentKind.SYNC:
            return await asyncio.to_thread(self.target, argument)
        return await self.target(argument)


@contextlib.contextmanager
def import_paths(paths: Sequence[Path | str]) -> Iterator[None]:
    """Put ``paths`` first on ``sys.path`` for the duration of an import."""
    added = [str(Path(p).resolve()) for p in paths if str(Path(p).resolve()) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for path in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(path)


_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def module_of(ref: str, field: str = "agent") -> str:
    """The module part of ``"package.module:attr"``; ConfigError if it is not an import path."""
    module_name, sep, attr_path = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not sep or not _MODULE_NAME.fullmatch(module_name) or not attr_path:
        raise ConfigError([Problem(None, field, str(ref)[:200],
                                   "expected an import path 'module:attr'")])  # fmt: skip
    return module_name


@dataclass(frozen=True)
class DeclaredModules:
    """The modules agents of runtime schedules may come from.

    ``prefixes`` (``AGENTCRON_AGENT_MODULES``, comma-separated) allow a module and everything
    under it (``examples`` allows ``examples`` and ``examples.market``); ``exact`` are the
    modules the schedule file's jobs use (their agents and callbacks), allowed as they are.
    """

    prefixes: tuple[str, ...] = ()
    exact: frozenset[str] = frozenset()

    @classmethod
    def of(cls, setting: str, file_jobs: Iterable[Any] = (), strict: bool = True,
           ) -> DeclaredModules:  # fmt: skip
        """From ``AGENTCRON_AGENT_MODULES`` and the schedule file's jobs; an entry that is not a
        module name is a ConfigError (``strict=False``: left out)."""
        prefixes = tuple(p.strip() for p in setting.split(",") if p.strip())
        bad = [p for p in prefixes if not _MODULE_NAME.fullmatch(p)]
        if strict and bad:
            raise ConfigError([Problem(None, "AGENTCRON_AGENT_MODULES", ", ".join(bad),
                                       "not a module name (comma-separated module names)")])
        prefixes = tuple(p for p in prefixes if _MODULE_NAME.fullmatch(p))
        exact: set[str] = set()
        for job in file_jobs:
            for value in (job.agent, job.on_success, job.on_failure):
                found = _module_of_value(value)
                if found:
                    exact.add(found)
        return cls(prefixes, frozenset(exact))

    def allows(self, module: str | None) -> bool:
        """Whether agents may come from ``module``."""
        if not module:
            return False
        if module in self.exact:
            return True
        return any(module == p or module.startswith(p + ".") for p in self.prefixes)

    def check(self, ref: str, field: str = "agent") -> None:
        """Raise ConfigError unless ``ref``'s module is declared (nothing is imported)."""
        module = module_of(ref, field)
        if not self.allows(module):
            reason = (f"module {module!r} is not a declared agent module; declare it in "
                      "AGENTCRON_AGENT_MODULES or use it in a job of the schedule file")
            raise ConfigError([Problem(None, field, ref[:200], reason)])


def _module_of_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.partition(":")[0] or None
    module = getattr(value, "__module__", None)
    return module if isinstance(module, str) else type(value).__module__


def import_object(
    ref: str, search_paths: Sequence[Path | str] = (), field: str = "agent",
    declared: DeclaredModules | None = None,
) -> Any:  # fmt: skip
    """Import ``"package.module:attr.sub"``; raise ConfigError naming the reference.

    With ``declared``, the module must be declared (checked before it is imported), and a
    function must be defined in a declared module (not imported into it from elsewhere). The
    path never walks through a module (``mod:os.system`` is refused).
    """
    module_name = module_of(ref, field)
    attr_path = ref.partition(":")[2]
    if declared is not None:
        declared.check(ref, field)
    try:
        target: Any = sys.modules.get(module_name)
        if target is None or _initializing(target):  # imported: no sys.path work (12 s a
            with import_paths([*search_paths, Path.cwd()]):  # 100,000-job start-up)
                target = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
            if inspect.ismodule(target):
                raise ConfigError([Problem(None, field, ref, f"{attr!r} is a module; name the "
                                           "agent in the module that defines it")])  # fmt: skip
    except ConfigError:
        raise
    except Exception as exc:  # any import-time error is the user's to see
        reason = f"cannot import: {type(exc).__name__}: {exc}"
        raise ConfigError([Problem(None, field, ref, reason)]) from exc
    if declared is not None and inspect.isroutine(target) and not inspect.ismethod(target):
        origin = getattr(target, "__module__", None)
        if not declared.allows(origin):
            reason = f"defined in {origin!r}, which is not a declared agent module"
            raise ConfigError([Problem(None, field, ref, reason)])
    return target


def _initializing(module: Any) -> bool:
    """True while ``module`` is still being imported (by another thread, say): then
    ``import_module`` waits for it, where ``sys.modules`` would hand out a half-made module."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async __call__ objects
    )


CLASS_REFUSED = ("is a class; agentcron never instantiates a class from a name: create the "
                 "agent in its module (agent = MyAgent()) and name that instance")


def describe_target(target: Any) -> tuple[Any, AgentKind, bool] | None:
    """``(callable, kind, takes_task)`` for a target, or None if it is not an agent (a class is
    not one: it is never instantiated)."""
    if inspect.isclass(target):
        return None
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        kind = AgentKind.ASYNC if _is_async(target) else AgentKind.SYNC
        return target, kind, False
    for name in ("arun", "astart", "run", "start"):
        method = getattr(target, name, None)
        if callable(method):
            return method, AgentKind.ASYNC if _is_async(method) else AgentKind.SYNC, True
    if callable(target):
        return target, AgentKind.ASYNC if _is_async(target) else AgentKind.SYNC, False
    return None


def resolve_agent(
    agent: Any, search_paths: Sequence[Path | str] = (), declared: DeclaredModules | None = None
) -> Agent:
    """Turn an import path, function or agent object into an :class:`Agent` (with
    ``declared``, only from declared modules; see :func:`import_object`)."""
    ref = agent if isinstance(agent, str) else _ref_of(agent)
    if isinstance(agent, str):
        target = import_object(agent, search_paths, declared=declared)
    elif declared is not None:
        raise ConfigError([Problem(None, "agent", ref, "must be an import path 'module:attr'")])
    else:
        target = agent
    if inspect.isclass(target):
        raise ConfigError([Problem(None, "agent", ref, CLASS_REFUSED)])
    described = describe_target(target)
    if described is None:
        reason = (
            "neither a sync nor an async callable, nor an object with "
            "run()/arun()/start()/astart()"
        )
        raise ConfigError([Problem(None, "agent", ref, reason)])
    func, kind, takes_task = described
    return Agent(ref=ref, target=func, kind=kind, takes_task=takes_task)


def _ref_of(obj: Any) -> str:
    if not callable(obj) and not any(hasattr(obj, m) for m in ("run", "arun", "start", "astart")):
        return repr(obj)[:80]
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}:{name}"
