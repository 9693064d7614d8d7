"""The lease hub driven beat by beat with a FrozenClock: renewal, loss, cancel, batching."""

from __future__ import annotations

import pytest

from agentcron.clock import FrozenClock
from agentcron.leases import Lease, MemoryCancelSignals, MemoryLeaseStore
from agentcron.leases.hub import LeaseHub


class FailingStore(MemoryLeaseStore):
    """A memory store whose renewals raise while ``failing`` is set; counts renewals."""

    failing = False
    renewals = 0

    def renew(self, lease: Lease, ttl: float) -> bool:
        self.renewals += 1
        if self.failing:
            raise ConnectionError("store unreachable")
        return super().renew(lease, ttl)


@pytest.fixture
def store(clock: FrozenClock) -> FailingStore:
    return FailingStore(clock)


def take(store: MemoryLeaseStore, name: str = "job", ttl: float = 3.0) -> Lease:
    lease = store.acquire(name, f"{name}-owner", ttl)
    assert lease is not None
    return lease


def test_renews_every_third_of_the_ttl(store: FailingStore, clock: FrozenClock) -> None:
    hub = LeaseHub(store, None, clock)
    lease = take(store)
    stops: list[str] = []
    with hub.hold(lease, 3.0, stops.append):
        for _ in range(9):  # 9 s of a 3 s lease
            clock.advance(1.0)
            hub.beat()
            assert store.holder("job") == lease
    assert store.renewals == 9 and stops == []
    clock.advance(1.0)
    hub.beat()  # no longer held: not renewed
    assert store.renewals == 9


def test_a_lost_lease_stops_the_run_once(store: FailingStore, clock: FrozenClock) -> None:
    hub = LeaseHub(store, None, clock)
    lease = take(store)
    stops: list[str] = []
    with hub.hold(lease, 3.0, stops.append):
        store.release(lease)
        thief = take(store, ttl=30)
        for _ in range(3):
            clock.advance(1.0)
            hub.beat()
    assert len(stops) == 1 and "lost" in stops[0]
    assert store.holder("job") == thief


def test_a_raising_renewal_is_lost_only_when_the_lease_would_have_expired(
    store: FailingStore, clock: FrozenClock
) -> None:
    hub = LeaseHub(store, None, clock)
    lease = take(store)
    stops: list[str] = []
    with hub.hold(lease, 3.0, stops.append):
        store.failing = True
        clock.advance(1.0)
        hub.beat()
        clock.advance(1.0)
        hub.beat()
        assert stops == []  # 2 s since the last good renewal of a 3 s lease
        clock.advance(1.0)
        hub.beat()
    assert len(stops) == 1


def test_cancel_requests_are_matched_by_token(store: FailingStore, clock: FrozenClock) -> None:
    signals = MemoryCancelSignals(clock)
    hub = LeaseHub(store, signals, clock)
    mine, other = take(store, "a"), take(store, "b")
    stops_a: list[str] = []
    stops_b: list[str] = []
    with hub.hold(mine, 3.0, stops_a.append), hub.hold(other, 3.0, stops_b.append):
        signals.request("a", mine.token + 100)  # aimed at somebody else
        hub.beat()
        assert stops_a == []
        signals.request("a", mine.token)
        hub.beat()
        hub.beat()
    assert len(stops_a) == 1 and "cancel" in stops_a[0] and stops_b == []


def test_a_failing_stop_callback_does_not_break_the_hub(
    store: FailingStore, clock: FrozenClock
) -> None:
    signals = MemoryCancelSignals(clock)
    hub = LeaseHub(store, signals, clock)
    bad, good = take(store, "bad"), take(store, "good")

    def explode(reason: str) -> None:
        raise RuntimeError("callback broke")

    with hub.hold(bad, 3.0, explode), hub.hold(good, 3.0, lambda r: None):
        signals.request("bad", bad.token)
        hub.beat()
        clock.advance(1.0)
        hub.beat()
    assert store.holder("good") == good


def test_tick_follows_the_shortest_ttl(store: FailingStore, clock: FrozenClock) -> None:
    hub = LeaseHub(store, None, clock, max_tick=1.0)
    assert hub.tick() == 1.0
    with hub.hold(take(store, "short", 0.6), 0.6, lambda r: None):
        assert hub.tick() == pytest.approx(0.2)
    assert hub.tick() == 1.0


def test_a_vanished_lease_is_reacquired_with_a_fresh_token_when_the_row_names_us(
    store: FailingStore, clock: FrozenClock,
) -> None:
    """Evicted (gone, nobody else holds it) and the ledger row still names the holder: the run
    goes on under a fresh token, released when the holding ends (issue 20, item 3)."""
    from agentcron.leases.reacquire import Reacquire

    hub = LeaseHub(store, None, clock)
    lease = take(store)
    moves: list[tuple[int, int]] = []
    stops: list[str] = []
    reacquire = Reacquire(store, 3.0, lambda old, new: moves.append((old, new)) or True)  # type: ignore[func-returns-value]
    with hub.hold(lease, 3.0, stops.append, reacquire) as holding:
        store._held.pop("job")  # evicted
        clock.advance(1.1)
        hub.beat()
        assert stops == [] and moves == [(lease.token, lease.token + 1)]
        assert holding.lease.token == lease.token + 1 and store.holder("job") == holding.lease
    assert store.holder("job") is None  # the hub released the lease it took


def test_a_lease_taken_over_or_a_row_moved_on_still_stops_the_run(
    store: FailingStore, clock: FrozenClock,
) -> None:
    from agentcron.leases.reacquire import Reacquire

    hub = LeaseHub(store, None, clock)
    for taken_over in (True, False):
        lease = take(store)
        stops: list[str] = []
        with hub.hold(lease, 3.0, stops.append, Reacquire(store, 3.0, lambda old, new: False)):
            store._held.pop("job")
            if taken_over:
                take(store)  # another holder got it meanwhile
            clock.advance(1.1)
            hub.beat()
            assert stops and "was lost" in stops[0]
        store._held.pop("job", None)
