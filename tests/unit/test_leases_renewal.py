"""Renewers driven step by step with a FrozenClock (``beat()``), plus their background loops."""

from __future__ import annotations

import threading

import pytest

from agentcron.clock import SYSTEM_CLOCK, FrozenClock
from agentcron.leases import (
    Lease,
    MemoryCancelSignals,
    MemoryLeaseStore,
    TaskRenewer,
    ThreadRenewer,
)
from tests.services import wait_for


class Recorder:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.called = threading.Event()

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)
        self.called.set()


class FailingStore(MemoryLeaseStore):
    """A memory store whose renewals raise while ``failing`` is set."""

    failing = False

    def renew(self, lease: Lease, ttl: float) -> bool:
        if self.failing:
            raise ConnectionError("store unreachable")
        return super().renew(lease, ttl)


@pytest.fixture
def store(clock: FrozenClock) -> FailingStore:
    return FailingStore(clock)


def take(store: MemoryLeaseStore, ttl: float = 3.0) -> Lease:
    lease = store.acquire("job", "me", ttl)
    assert lease is not None
    return lease


def test_renews_every_third_of_the_ttl(store: FailingStore, clock: FrozenClock) -> None:
    lease = take(store)
    renewer = ThreadRenewer(store, lease, 3.0, clock=clock)
    clock.advance(0.5)
    renewer.beat()
    assert store.remaining("job") == pytest.approx(2.5)  # not due yet
    clock.advance(0.6)
    renewer.beat()
    assert store.remaining("job") == pytest.approx(3.0)
    for _ in range(10):  # held across 10 s of clock time with a 3 s TTL
        clock.advance(1.0)
        renewer.beat()
    assert store.holder("job") == lease and not renewer.lost


def test_lost_lease_calls_on_lost_once(store: FailingStore, clock: FrozenClock) -> None:
    lease = take(store)
    on_lost = Recorder()
    renewer = ThreadRenewer(store, lease, 3.0, clock=clock, on_lost=on_lost)
    assert store.release(lease)
    thief = store.acquire("job", "thief", 30)
    clock.advance(1.0)
    renewer.beat()
    assert renewer.lost and len(on_lost.reasons) == 1 and "lost" in on_lost.reasons[0]
    clock.advance(1.0)
    renewer.beat()
    assert len(on_lost.reasons) == 1
    assert store.holder("job") == thief


def test_raising_renewal_is_lost_only_when_the_lease_would_have_expired(
    store: FailingStore, clock: FrozenClock
) -> None:
    lease = take(store)
    on_lost = Recorder()
    renewer = ThreadRenewer(store, lease, 3.0, clock=clock, on_lost=on_lost)
    store.failing = True
    clock.advance(1.0)
    renewer.beat()
    clock.advance(1.0)
    renewer.beat()
    assert not renewer.lost  # 2 s since the lease was taken: it is still valid
    store.failing = False
    clock.advance(0.5)
    renewer.beat()  # recovered in time
    assert not renewer.lost and store.remaining("job") == pytest.approx(3.0)
    store.failing = True
    for _ in range(3):
        clock.advance(1.0)
        renewer.beat()
    assert renewer.lost and "ConnectionError" in on_lost.reasons[0]


def test_cancel_request_for_our_token_calls_on_cancel(
    store: FailingStore, clock: FrozenClock
) -> None:
    lease = take(store)
    signals = MemoryCancelSignals(clock)
    on_cancel = Recorder()
    renewer = ThreadRenewer(store, lease, 3.0, clock=clock, cancel_signals=signals,
                            on_cancel=on_cancel)
    signals.request("job", lease.token - 1)  # aimed at an older holder
    renewer.beat()
    assert not renewer.cancelled and on_cancel.reasons == []
    signals.request("job", lease.token)
    renewer.beat()
    renewer.beat()
    assert renewer.cancelled and len(on_cancel.reasons) == 1
    clock.advance(1.0)
    renewer.beat()  # keeps renewing until the run stops and the guard releases
    assert store.remaining("job") == pytest.approx(3.0)


def test_a_failing_callback_does_not_stop_the_renewer(
    store: FailingStore, clock: FrozenClock
) -> None:
    lease = take(store)
    signals = MemoryCancelSignals(clock)

    def broken(reason: str) -> None:
        raise RuntimeError(reason)

    renewer = ThreadRenewer(store, lease, 3.0, clock=clock, cancel_signals=signals,
                            on_cancel=broken)
    signals.request("job", lease.token)
    clock.advance(1.0)
    renewer.beat()
    assert renewer.cancelled and store.remaining("job") == pytest.approx(3.0)


async def test_task_renewer_beats_like_the_thread_one(
    store: FailingStore, clock: FrozenClock
) -> None:
    lease = take(store)
    signals = MemoryCancelSignals(clock)
    on_lost, on_cancel = Recorder(), Recorder()
    renewer = TaskRenewer(store, lease, 3.0, clock=clock, on_lost=on_lost,
                          cancel_signals=signals, on_cancel=on_cancel)
    clock.advance(1.0)
    await renewer.beat()
    assert store.remaining("job") == pytest.approx(3.0)
    signals.request("job", lease.token)
    await renewer.beat()
    assert renewer.cancelled and len(on_cancel.reasons) == 1
    store.release(lease)
    clock.advance(1.0)
    await renewer.beat()
    assert renewer.lost and len(on_lost.reasons) == 1


def test_thread_renewer_loop_keeps_the_lease_and_reports_a_loss() -> None:
    store = MemoryLeaseStore(SYSTEM_CLOCK)
    lease = store.acquire("job", "me", 0.3)
    assert lease is not None
    on_lost = Recorder()
    with ThreadRenewer(store, lease, 0.3, clock=SYSTEM_CLOCK, on_lost=on_lost) as renewer:
        # Three renewals must happen (remaining resets to ~0.3 s), and the lease never lapses.
        seen: list[float | None] = []

        def sample() -> bool:
            seen.append(store.remaining("job"))
            return len(seen) > 20

        wait_for(sample, timeout=5, interval=0.05)  # ~1 s: more than three 0.3 s TTLs
        assert all(left is not None for left in seen)
        store.release(lease)
        assert on_lost.called.wait(5)
        assert renewer.lost
    assert not renewer._thread.is_alive()


def test_leaving_the_context_stops_the_thread_at_once() -> None:
    store = MemoryLeaseStore(SYSTEM_CLOCK)
    lease = store.acquire("job", "me", 60)
    assert lease is not None
    with ThreadRenewer(store, lease, 60, clock=SYSTEM_CLOCK) as renewer:
        pass
    assert not renewer._thread.is_alive()  # did not wait the 20 s renewal period
    assert store.holder("job") == lease  # releasing is the guard's job


async def test_task_renewer_loop_reports_a_loss_and_stops() -> None:
    store = MemoryLeaseStore(SYSTEM_CLOCK)
    lease = store.acquire("job", "me", 0.3)
    assert lease is not None
    on_lost = Recorder()
    async with TaskRenewer(store, lease, 0.3, clock=SYSTEM_CLOCK, on_lost=on_lost) as renewer:
        store.release(lease)
        assert store.acquire("job", "thief", 30) is not None
        for _ in range(100):
            if renewer.lost:
                break
            await SYSTEM_CLOCK.asleep(0.05)
        assert renewer.lost and on_lost.reasons
    assert renewer._task is not None and renewer._task.done()


def test_poll_interval_is_capped_by_the_renewal_period(
    store: FailingStore, clock: FrozenClock
) -> None:
    lease = take(store)
    assert ThreadRenewer(store, lease, 3.0, clock=clock)._state.poll_every == 1.0
    assert ThreadRenewer(store, lease, 3.0, clock=clock, poll_interval=0.1)._state.poll_every == 0.1
    assert ThreadRenewer(store, lease, 3.0, clock=clock, poll_interval=9)._state.poll_every == 1.0
    with pytest.raises(ValueError):
        ThreadRenewer(store, lease, 0, clock=clock)
