"""Resolving an agent reference and calling it the way its kind wants.

An agent is a sync or async function called with the :class:`RunContext`, or an object with
``run``/``arun`` (or ``start``/``astart``, the names of common agent frameworks) given the task
text. A class is instantiated with no arguments. The kind (sync or async) is decided here, once,
when the job is registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import inspect
import sys
from collections.abc import Iterator, Sequence
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


def import_object(ref: str, search_paths: Sequence[Path | str] = (), field: str = "agent") -> Any:
    """Import ``"package.module:attr.sub"``; raise ConfigError naming the reference."""
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError([Problem(None, field, ref, "expected an import path 'module:attr'")])
    try:
        with import_paths([*search_paths, Path.cwd()]):
            target: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except Exception as exc:  # any import-time error is the user's to see
        reason = f"cannot import: {type(exc).__name__}: {exc}"
        raise ConfigError([Problem(None, field, ref, reason)]) from exc
    return target


def _is_async(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async __call__ objects
    )


def describe_target(target: Any) -> tuple[Any, AgentKind, bool] | None:
    """``(callable, kind, takes_task)`` for a target, or None if it is not an agent."""
    if inspect.isclass(target):
        try:
            target = target()
        except Exception:
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


def resolve_agent(agent: Any, search_paths: Sequence[Path | str] = ()) -> Agent:
    """Turn an import path, function or agent object into an :class:`Agent`."""
    ref = agent if isinstance(agent, str) else _ref_of(agent)
    target = import_object(agent, search_paths) if isinstance(agent, str) else agent
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
