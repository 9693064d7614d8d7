"""Stranded runs: rows left ``claimed`` / ``running`` by a run that is gone.

A live run always holds the lease it runs under (the job's name, or the window key for
``overlap="allow"``) under the fencing token its row records, and renews it every TTL/3. When
that lease is free, or held under another token, the row's run died (a prefork child terminated
on a broker connection loss, a killed worker) and will never end the window by itself. If its
message is still on the broker, kombu redelivers it; if the message was lost too (its restore
went to a broker that was shutting down: scenario 6), the watchdog re-publishes the window,
and the guard's claim takes the row over with a newer token (the ledger fences on tokens).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agentcron.emission.envelope import task_for
from agentcron.emission.publisher import Outgoing
from agentcron.jobs import JobSpec
from agentcron.leases.base import Lease, LeaseStore
from agentcron.ledger.records import RunRecord
from agentcron.messages import RunMessage


def stranded_rows(rows: Iterable[RunRecord], specs: Mapping[str, JobSpec],
                  leases: LeaseStore) -> list[tuple[JobSpec, RunRecord]]:  # fmt: skip
    """The rows whose token does not hold their lease (their run is gone), with their job."""
    holders: dict[str, Lease | None] = {}
    out: list[tuple[JobSpec, RunRecord]] = []
    for row in rows:
        spec = specs.get(row.job)
        if spec is None:
            continue
        name = spec.lease_name(row.window_key)
        if name not in holders:
            holders[name] = leases.holder(name)
        holder = holders[name]
        if holder is not None and row.token is not None and holder.token == row.token:
            continue  # alive: it holds (and renews) its lease
        out.append((spec, row))
    return out


def again(spec: JobSpec, row: RunRecord) -> Outgoing:
    """The run message of ``row`` once more, with the next attempt number."""
    return Outgoing(task_for(spec), spec.queue, RunMessage.from_record(row, row.next_attempt))


def rescue_batch(stranded: Iterable[tuple[JobSpec, RunRecord]], queued: set[str] | None,
                 once: LeaseStore, ttl: float) -> list[Outgoing]:  # fmt: skip
    """The messages to re-send for stranded rows whose message is on no queue.

    ``queued`` is the broker's view (None: cannot be inspected). Blind, each stranded row (by
    its token: a takeover makes it a new row) is re-sent at most once per ``ttl`` seconds,
    remembered as the lease ``rescue:{window_key}:{token}``.
    """
    batch: list[Outgoing] = []
    for spec, row in stranded:
        if queued is not None:
            if row.window_key in queued:
                continue  # kombu still holds it: its redelivery takes the row over
        elif once.acquire(f"rescue:{row.window_key}:{row.token}", "watchdog", ttl) is None:
            continue
        batch.append(again(spec, row))
    return batch
