"""Callables posted from any thread, run on the consumer's event loop (kombu's hub) at once.

Why not ``Hub.call_soon``: what a ``call_soon`` callback does is run between two polls, and
Celery acknowledges a message with ``call_soon`` too (``Consumer.call_soon_ack``). From inside
such a callback the hub is not woken for it (it is its own thread), so the acknowledgement waits
for the next poll to return: up to a second on a quiet worker, while the message holds its place
in the prefetch. A posted callable runs as a poll event instead, like a pool result, and what it
schedules with ``call_soon`` runs right after it.

The mailbox is a socket pair read by the hub. A hub that was reset (a lost broker connection:
Celery resets it and registers its readers again) drops every reader; the mailbox registers
itself again on the next loop iteration (an ``on_tick`` callback).
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

log = logging.getLogger("agentcron.claims")


class HubMailbox:
    """Run callables on ``hub``'s thread as soon as its loop turns (see the module)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._posted: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._pending = False  # a byte is on its way: the next post needs none
        hub.on_tick.add(self._keep_registered)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the hub's thread (callable from any thread)."""
        self._posted.append((fn, args))
        with self._lock:
            wake, self._pending = not self._pending, True
        if wake:
            with suppress(OSError):  # closed: the worker is gone
                self._writer.send(b"\0")

    def _keep_registered(self) -> None:
        if self._reader.fileno() not in self.hub.readers:
            self.hub.add_reader(self._reader, self._run)

    def _run(self, *_: Any) -> None:
        with suppress(OSError):
            self._reader.recv(4096)
        with self._lock:  # cleared before the queue is read: a later post sends a byte again
            self._pending = False
        while self._posted:
            fn, args = self._posted.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("a callback posted to the consumer's loop failed")


_MAILBOXES: weakref.WeakKeyDictionary[Any, HubMailbox] = weakref.WeakKeyDictionary()


def mailbox_for(hub: Any) -> HubMailbox:
    """``hub``'s mailbox (one per hub, made on first use on the hub's thread)."""
    found = _MAILBOXES.get(hub)
    if found is None:
        found = _MAILBOXES[hub] = HubMailbox(hub)
    return found
