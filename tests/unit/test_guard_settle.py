"""Runs ended in a prefork child are recorded by the main process: ``Guard.settle``.

With ``defer_settlement`` (set in prefork children) the guard stops before the fenced completion
and the lease release; the main process writes the completions of many runs in one ledger call
and releases their leases, then counts, observes and calls back once per recorded outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agentcron.guard import Guard, Outcome, RunReport
from agentcron.jobs import JobSpec
from agentcron.ledger.records import CompleteRequest, NewWindow, RunState
from agentcron.messages import RunMessage
from tests.unit.test_guard import World, counting, make_spec
from tests.unit.test_guard import world as world  # the fixture


def _state(world: World, spec: JobSpec, message: RunMessage) -> RunState:
    record = world.ledger.get(spec.name, message.window_start)
    assert record is not None
    return record.state


def spy_completions(world: World, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every ``complete_many`` call on the world's ledger."""
    sizes: list[int] = []
    real = world.ledger.complete_many

    def complete_many(requests: Sequence[CompleteRequest]) -> list[bool]:
        sizes.append(len(requests))
        return real(requests)

    monkeypatch.setattr(world.ledger, "complete_many", complete_many)
    return sizes


def deferred_runs(world: World, child: Guard, spec: JobSpec,
                  n: int) -> list[tuple[JobSpec, RunMessage, Outcome]]:  # fmt: skip
    runs = []
    for day in range(n):
        message = world.message(spec, slot=f"2026-03-{10 + day:02d}T06:00:00Z", trigger="manual")
        runs.append((spec, message, child.run_sync(spec, message)))
    return runs


def test_a_child_leaves_its_run_active_and_leased_until_the_main_settles_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[RunReport] = []
    agent, calls = counting()
    spec = make_spec(agent, on_success=reports.append, overlap="allow")
    child, main = world.guard("child"), world.guard("main")
    child.defer_settlement = True
    sizes = spy_completions(world, monkeypatch)
    runs = deferred_runs(world, child, spec, 5)
    assert calls == [1] * 5 and sizes == [] and reports == []  # nothing recorded by the child
    for _, message, outcome in runs:
        assert outcome.pending is not None and outcome.state is RunState.SUCCEEDED
        assert _state(world, spec, message) is RunState.RUNNING
        assert world.leases.holder(message.window_key) is not None
    assert child.stats()["deferred"] == 5 and child.stats()["successes"] == 0

    outcomes = main.settle(runs)

    assert sizes == [5]  # five completions, one ledger call
    assert [o.state for o in outcomes] == [RunState.SUCCEEDED] * 5
    assert all(o.pending is None and o.detail == "succeeded" for o in outcomes)
    for _, message, _ in runs:
        assert _state(world, spec, message) is RunState.SUCCEEDED
        assert world.leases.holder(message.window_key) is None
    assert sorted(r.window_key for r in reports) == sorted(m.window_key for _, m, _ in runs)
    assert main.stats()["successes"] == 5 and main.stats()["runs"] == 5


def test_a_settled_run_fenced_out_by_a_newer_holder_is_dropped_without_callbacks(
    world: World,
) -> None:
    reports: list[RunReport] = []
    failures: list[RunReport] = []
    agent, _ = counting()
    spec = make_spec(agent, on_success=reports.append, on_failure=failures.append)
    child, main = world.guard("child"), world.guard("main")
    child.defer_settlement = True
    [(_, message, outcome)] = deferred_runs(world, child, spec, 1)
    assert outcome.pending is not None
    world.leases.release(outcome.pending.lease)  # its lease lost; another run took the window
    newer = world.leases.acquire(spec.name, "other", 60)
    assert newer is not None
    window = NewWindow(message.job, message.window_start, message.window_key, message.slot,
                       message.trigger)  # fmt: skip
    assert world.ledger.claim(window, newer.token, "other", 3).status.value == "claimed"

    [settled] = main.settle([(spec, message, outcome)])

    assert settled.duplicate and "fenced out" in settled.detail
    assert reports == [] and failures == []
    assert main.stats()["stale"] == 1  # the newer holder's row and lease are untouched
    assert _state(world, spec, message) is RunState.CLAIMED
    assert world.leases.holder(spec.name) is not None


def test_failures_and_duplicates_mix_in_one_settlement(world: World) -> None:
    failures: list[RunReport] = []
    observed: list[Any] = []

    def boom(_: Any) -> None:
        raise RuntimeError("no")

    spec = make_spec(boom, on_failure=failures.append, overlap="allow", max_retries=1)
    child, main = world.guard("child"), world.guard("main")
    child.defer_settlement = True
    main.observers.append(lambda o, s, m: observed.append(o.state))
    done = world.message(spec, slot="2026-03-01T06:00:00Z", trigger="manual")
    assert main.run_sync(spec, done).state is RunState.FAILED
    failures.clear()
    observed.clear()
    runs = deferred_runs(world, child, spec, 2)
    runs.append((spec, done, child.run_sync(spec, done)))  # a redelivery: a duplicate
    assert runs[2][2].pending is None and runs[2][2].duplicate

    outcomes = main.settle(runs)

    assert [o.state for o in outcomes] == [RunState.FAILED, RunState.FAILED, None]
    assert len(failures) == 2 and observed == [RunState.FAILED, RunState.FAILED, None]
    assert main.stats()["failures"] == 3 and main.stats()["duplicates"] == 1
