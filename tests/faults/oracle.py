"""The oracle of every fault test (../shared/reliability.md).

Every expected window ends with exactly one successful run, or with one terminal row that says
why; no window is lost, none succeeds twice (its side effect happened once), and no agentcron
key but the fencing counters lives without a TTL.

One side effect per success is what the system can promise except where a test killed the
process between the agent's side effect and the commit of its success: nothing can tell that
execution from one killed just before its side effect, and the window runs again. A test that
kills at random (the soak) passes the pids it killed; effects written by those count as
``redone_after_kill`` (reported), not as duplicates. Every other extra effect is a duplicate.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentcron.clock import SYSTEM_CLOCK
from agentcron.delivery.outbox import Outbox
from agentcron.ledger.records import RunState
from agentcron.schedules import parse_schedule
from agentcron.windows import window_key
from tests.faults.harness import Cluster


@dataclass
class Verdict:
    """What the oracle found; :meth:`assert_ok` fails with every problem listed."""

    expected: int = 0
    succeeded: int = 0
    terminal_other: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    redone_after_kill: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    leases_without_ttl: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)  # "state: reason" of the non-successes

    @property
    def problems(self) -> list[str]:
        out = [f"lost (no terminal row): {w}" for w in self.lost]
        out += [f"side effect more than once: {w}" for w in self.duplicates]
        out += [f"terminal without a reason: {w}" for w in self.unexplained]
        out += [f"key without TTL: {k}" for k in self.leases_without_ttl]
        return out

    def assert_ok(self, logs: str = "") -> None:
        assert not self.problems, "\n".join(self.problems) + "\n" + logs[-12000:]

    def summary(self) -> str:
        return (f"expected={self.expected} succeeded={self.succeeded} "
                f"other={dict(self.terminal_other)} duplicates={len(self.duplicates)} "
                f"redone_after_kill={len(self.redone_after_kill)} lost={len(self.lost)}")  # fmt: skip


def expected_windows(schedule: str, job: str, start: datetime, end: datetime) -> list[str]:
    """Window keys of ``job``'s slots in ``[start, end)`` (slot windows)."""
    return [window_key(job, slot) for slot in parse_schedule(schedule).fires_between(start, end)
            if slot < end]  # fmt: skip


def check(cluster: Cluster, windows: list[str], killed: frozenset[int] = frozenset()) -> Verdict:
    """Apply the oracle to ``windows`` (window keys) and to the broker's keys; ``killed``: pids
    the test killed with -9 (see the module docstring)."""
    verdict = Verdict(expected=len(windows))
    effects: Counter[str] = Counter()
    by_killed: Counter[str] = Counter()
    for row in cluster.rows("effects"):
        effects[row[0]] += 1
        by_killed[row[0]] += row[2] in killed
    for key in windows:
        record = cluster.ledger.get_by_key(key)
        if record is None or not record.state.terminal:
            verdict.lost.append(f"{key} ({record.state.value if record else 'no row'})")
            continue
        others = effects[key] - by_killed[key]  # effects of processes that lived on
        if record.state is RunState.SUCCEEDED:
            verdict.succeeded += 1
            if effects[key] == 0 or others > 1:
                verdict.duplicates.append(f"{key}: {effects[key]} side effects for one success")
            elif effects[key] > 1:
                verdict.redone_after_kill.append(f"{key}: {effects[key]} side effects, "
                                                 f"{by_killed[key]} by killed processes")
        else:
            verdict.terminal_other[record.state.value] += 1
            verdict.reasons[f"{record.state.value}: {_reason(record.error_message)}"] += 1
            if not record.error_message:
                verdict.unexplained.append(f"{key} {record.state.value}")
            if others > 1:
                verdict.duplicates.append(f"{key}: {effects[key]} side effects")
    verdict.leases_without_ttl = keys_without_ttl(cluster)
    return verdict


def _reason(text: str | None) -> str:
    """A reason with its numbers and tokens blanked, so that like reasons count together."""
    return re.sub(r"\d+(\.\d+)?", "N", (text or "no reason")[:80])


def availability(verdict: Verdict) -> str:
    """Windows expected, succeeded, and ended otherwise with each reason (one line)."""
    rate = verdict.succeeded / verdict.expected if verdict.expected else 1.0
    reasons = "; ".join(f"{n}x {reason}" for reason, n in verdict.reasons.most_common())
    return (f"availability {rate:.1%}: expected={verdict.expected} "
            f"succeeded={verdict.succeeded} otherwise={sum(verdict.reasons.values())}"
            + (f" ({reasons})" if reasons else ""))


def keys_without_ttl(cluster: Cluster) -> list[str]:
    """agentcron keys (fencing counters excepted) that would never expire."""
    if cluster.redis_proc is None:
        return []
    client = cluster.redis()
    try:
        bad = []
        for raw in client.scan_iter(match="agentcron:*", count=1000):
            name = raw.decode()
            if name.startswith("agentcron:fence:"):
                continue
            if client.pttl(name) == -1:
                bad.append(name)
        return bad
    finally:
        client.close()


def check_deliveries(cluster: Cluster, windows: list[str], received: list[Any],
                     kills: int) -> list[str]:  # fmt: skip
    """The outbox oracle over ``windows``: problems found (an empty list is a pass).

    A succeeded window has exactly one delivery row per target, ``sent``, and the receiver got
    1 to 1 + ``kills`` copies of its email, all with one Message-ID; a window that did not
    succeed has no delivery row and no email. ``received``: email.message objects.
    """
    problems = []
    rows = Outbox(cluster.ledger.engine, SYSTEM_CLOCK).list(limit=1000)
    copies = Counter(m["X-Agentcron-Window"] for m in received)
    ids = {w: {m["Message-ID"] for m in received if m["X-Agentcron-Window"] == w} for w in copies}
    for key in windows:
        record = cluster.ledger.get_by_key(key)
        mine = [r for r in rows if r.window_key == key]
        if record is not None and record.state.value == "succeeded":
            if [r.state for r in mine] != ["sent"]:
                problems.append(f"{key}: deliveries {[r.state for r in mine]}, expected one sent")
            if not 1 <= copies[key] <= 1 + kills or len(ids.get(key, ())) != 1:
                problems.append(f"{key}: {copies[key]} emails, Message-IDs {ids.get(key)}")
        elif mine or copies[key]:
            problems.append(f"{key}: not succeeded, yet {len(mine)} rows, {copies[key]} emails")
    return problems
