"""Calling user callbacks, sync or async, without ever failing the caller."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("agentcron.callbacks")

Callback = Callable[..., Any]


def _run_in_fresh_loop(awaitable: Awaitable[Any]) -> None:
    async def wrap() -> Any:
        return await awaitable

    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(wrap())
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="agentcron-callback", daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def safe_call(callback: Callback | None, *args: Any) -> bool:
    """Call a sync or async ``callback``; log and swallow its errors. True if it succeeded.

    An async callback is awaited to completion: with ``asyncio.run`` when no loop runs in this
    thread, or on a helper thread's own loop when one does (use :func:`asafe_call` from async
    code instead, which awaits it on the caller's loop).
    """
    if callback is None:
        return True
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(_as_coroutine(result))
            else:
                _run_in_fresh_loop(result)
    except Exception:
        log.exception("callback %s failed; the run's outcome stands", _name(callback))
        return False
    return True


async def asafe_call(callback: Callback | None, *args: Any) -> bool:
    """Async twin of :func:`safe_call`: awaits an async callback on the running loop."""
    if callback is None:
        return True
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("callback %s failed; the run's outcome stands", _name(callback))
        return False
    return True


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)
