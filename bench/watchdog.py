"""Watchdog pass time for N daily jobs whose windows are all 'scheduled' with no broker message.

    .venv/bin/python -m bench.watchdog --jobs 10000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test_watch

Every window is re-published (to an in-memory publisher): the worst case of one pass.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence

from agentcron.alerts import Alerter
from agentcron.clock import FrozenClock
from agentcron.emission.envelope import emission_for
from agentcron.emission.publisher import Outgoing
from agentcron.instants import parse_instant
from agentcron.jobs import Job, compile_job
from agentcron.leases.memory import MemoryLeaseStore
from agentcron.ledger.store import Ledger
from agentcron.watch.watchdog import Watchdog


class Sink:
    def __init__(self) -> None:
        self.sent = 0

    def publish(self, batch: Sequence[Outgoing]) -> None:
        self.sent += len(batch)


class Empty:
    def window_keys(self) -> set[str]:
        return set()


def agent(ctx: object) -> int:
    return 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--database", default="sqlite:///bench-watchdog.sqlite")
    args = parser.parse_args()
    slot = parse_instant("2026-03-17T06:00:00Z")
    ledger = Ledger(args.database, FrozenClock(slot))
    ledger.upgrade()
    tag = uuid.uuid4().hex[:6]
    specs = [compile_job(Job(f"bench{tag}_{i}", agent=agent, schedule="0 6 * * *"))
             for i in range(args.jobs)]
    ledger.record_scheduled([emission_for(s, slot).window for s in specs])
    clock = FrozenClock("2026-03-17T06:10:00Z")
    sink = Sink()
    watchdog = Watchdog(ledger, sink, clock, Alerter(), MemoryLeaseStore(clock), queued=Empty())
    started = time.perf_counter()
    report = watchdog.check(specs)
    elapsed = time.perf_counter() - started
    print(f"{args.jobs} jobs: one watchdog pass {elapsed:.2f} s ({report.summary()}; sent {sink.sent})")
    ledger.close()


if __name__ == "__main__":
    main()
