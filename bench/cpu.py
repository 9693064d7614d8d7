"""CPU time by process group, read from Linux's /proc: where a benchmark's runs spend their CPU.

    split = CpuSplit.around(worker_pid)   # the worker, its pool children, PostgreSQL, Redis
    before = split.sample(); ...; spent = split.since(before)   # CPU seconds by group
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far; None once it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / _TICK


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def named(name: str) -> list[int]:
    """Processes whose command name is ``name``."""
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class CpuSplit:
    """Named groups of processes whose CPU time is compared between two samples."""

    groups: dict[str, list[int]]

    @classmethod
    def around(cls, worker: int) -> CpuSplit:
        """A Celery worker's main process, its pool children, PostgreSQL's and Redis's."""
        return cls({"worker main": [worker], "worker children": children(worker),
                    "postgres": named("postgres"), "redis": named("redis-server")})  # fmt: skip

    def sample(self) -> dict[int, float]:
        """CPU seconds of every process now."""
        now = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return {pid: seconds for pid, seconds in now.items() if seconds is not None}

    def since(self, before: dict[int, float]) -> dict[str, float]:
        """CPU seconds each group spent since ``before`` (processes alive at both samples)."""
        after = self.sample()
        return {group: sum(after[p] - before[p] for p in pids if p in before and p in after)
                for group, pids in self.groups.items()}  # fmt: skip
