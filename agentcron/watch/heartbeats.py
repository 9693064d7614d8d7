"""Heartbeats: the beat and every worker say they are alive, with a TTL.

Redis (distributed): key ``agentcron:heartbeat:{role}:{id}`` (:func:`agentcron.keys.heartbeat`),
a JSON value, ``PX`` = the TTL, so a dead process disappears on its own. Embedded mode (one
machine, no Redis): one JSON file per process under ``{data_dir}/heartbeats/`` holding its expiry.
``agentcron status`` reads them; a :class:`Heartbeater` thread writes them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from agentcron import keys
from agentcron.clock import Clock
from agentcron.instants import format_instant, parse_instant
from agentcron.settings import Settings

log = logging.getLogger("agentcron.heartbeats")
BEAT = "beat"
WORKER = "worker"


@dataclass(frozen=True)
class Heartbeat:
    """One process's latest sign of life."""

    role: str
    ident: str
    at: datetime
    queues: list[str] = field(default_factory=list)
    leader: bool = False
    host: str = ""
    pid: int = 0

    def to_json(self) -> str:
        """The stored value."""
        data = asdict(self)
        data["at"] = format_instant(self.at)
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Heartbeat:
        """Parse a stored value (ValueError if malformed)."""
        data = json.loads(raw)
        data["at"] = parse_instant(str(data["at"]))
        known = {k: data[k] for k in ("role", "ident", "at", "queues", "leader", "host", "pid")
                 if k in data}  # fmt: skip
        return cls(**known)


class HeartbeatStore(Protocol):
    """Where heartbeats live."""

    def beat(self, heartbeat: Heartbeat, ttl: float) -> None:
        """Write ``heartbeat``; it expires ``ttl`` seconds from now."""
        ...

    def alive(self, role: str | None = None) -> list[Heartbeat]:
        """Unexpired heartbeats (of one role)."""
        ...

    def remove(self, role: str, ident: str) -> None:
        """Forget a process (a clean shutdown)."""
        ...


def _parse_all(raws: Sequence[Any]) -> list[Heartbeat]:
    out = []
    for raw in raws:
        if raw is None:
            continue
        try:
            out.append(Heartbeat.from_json(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed heartbeat")
    return sorted(out, key=lambda h: (h.role, h.ident))


class RedisHeartbeats:
    """Heartbeats as Redis keys with a PX TTL."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def beat(self, heartbeat: Heartbeat, ttl: float) -> None:
        """SET the key with PX."""
        key = keys.heartbeat(heartbeat.role, heartbeat.ident)
        self.client.set(key, heartbeat.to_json(), px=max(int(ttl * 1000), 1))

    def alive(self, role: str | None = None) -> list[Heartbeat]:
        """SCAN the heartbeat keys, then MGET them."""
        pattern = keys.heartbeat(role or "*", "*")
        names = list(self.client.scan_iter(match=pattern, count=500))
        return _parse_all(self.client.mget(names) if names else [])

    def remove(self, role: str, ident: str) -> None:
        """DEL the key."""
        self.client.delete(keys.heartbeat(role, ident))


class FileHeartbeats:
    """Heartbeats as small JSON files (embedded mode: every process is on this machine)."""

    def __init__(self, folder: Path, clock: Clock) -> None:
        self.folder = folder
        self.clock = clock

    def _path(self, role: str, ident: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "._-@" else "_" for c in ident)
        return self.folder / f"{role}--{safe}.json"

    def beat(self, heartbeat: Heartbeat, ttl: float) -> None:
        """Write the file atomically, with its expiry."""
        self.folder.mkdir(parents=True, exist_ok=True)
        expires = format_instant(self.clock.now() + timedelta(seconds=ttl))
        path = self._path(heartbeat.role, heartbeat.ident)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"expires": expires, "heartbeat": heartbeat.to_json()}))
        tmp.replace(path)

    def alive(self, role: str | None = None) -> list[Heartbeat]:
        """Files whose expiry is still ahead."""
        now = self.clock.now()
        raws = []
        for path in self.folder.glob(f"{role or '*'}--*.json"):
            try:
                data = json.loads(path.read_text())
                if parse_instant(data["expires"]) > now:
                    raws.append(data["heartbeat"])
            except (OSError, ValueError, KeyError):
                continue
        return _parse_all(raws)

    def remove(self, role: str, ident: str) -> None:
        """Delete the file."""
        self._path(role, ident).unlink(missing_ok=True)


def open_heartbeats(settings: Settings, clock: Clock) -> HeartbeatStore:
    """Redis when the settings have one, else files in the data folder."""
    if settings.redis_url:
        from agentcron.timeouts import redis_client

        return RedisHeartbeats(redis_client(settings.redis_url, settings))
    return FileHeartbeats(settings.data_dir / "heartbeats", clock)


def process_heartbeat(role: str, ident: str, clock: Clock, queues: Sequence[str] = (),
                      leader: bool = False) -> Heartbeat:  # fmt: skip
    """A heartbeat of this process."""
    return Heartbeat(role, ident, clock.now(), list(queues), leader, socket.gethostname(),
                     os.getpid())  # fmt: skip


class Heartbeater:
    """A daemon thread that writes this process's heartbeat every ``interval`` seconds.

    ``describe`` is called before each write, so the beat can report whether it leads now.
    """

    def __init__(self, store: HeartbeatStore, describe: Callable[[], Heartbeat],
                 interval: float, ttl: float, clock: Clock) -> None:  # fmt: skip
        self.store = store
        self.describe = describe
        self.interval = interval
        self.ttl = ttl
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: Heartbeat | None = None

    def beat_once(self) -> bool:
        """Write one heartbeat now; False (logged) if the store failed."""
        try:
            heartbeat = replace(self.describe(), at=self.clock.now())
            self.store.beat(heartbeat, self.ttl)
            self.last = heartbeat
            return True
        except Exception as exc:
            log.warning("heartbeat not written (%s)", type(exc).__name__)
            return False

    def start(self) -> None:
        """Write now, then keep writing in a daemon thread."""
        self.beat_once()
        self._thread = threading.Thread(target=self._loop, name="agentcron-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat_once()

    def stop(self, remove: bool = True) -> None:
        """Stop writing and (by default) delete the heartbeat: a clean exit."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if remove and self.last is not None:
            try:
                self.store.remove(self.last.role, self.last.ident)
            except Exception as exc:
                log.warning("heartbeat not removed (%s)", type(exc).__name__)
