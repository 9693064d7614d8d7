"""Leader election: acquire, renew every TTL/3, standby takeover, step down without raising."""

from __future__ import annotations

from pathlib import Path

from agentcron.beat.leader import LeaderElection
from agentcron.clock import FrozenClock
from agentcron.keys import BEAT_LEADER
from agentcron.leases.base import Lease
from agentcron.leases.memory import MemoryLeaseStore


def test_one_leader_standby_takes_over_after_ttl() -> None:
    clock = FrozenClock()
    store = MemoryLeaseStore(clock)
    a = LeaderElection(store, clock, ttl=9, owner="a")
    b = LeaderElection(store, clock, ttl=9, owner="b")
    assert a.ensure() and not b.ensure()
    holder = store.holder(BEAT_LEADER)
    assert holder is not None and holder.owner == "a"
    clock.advance(9.5)  # a is paused past its TTL (kill -STOP)
    assert b.ensure()
    # a resumes: it must notice before dispatching, step down, and not raise
    assert not a.ensure()
    assert a.lease is None and a.step_downs == 1 and not a.leading
    assert not a.ensure()  # stays a quiet standby, no crash loop


def test_leader_renews_every_third_of_ttl_and_keeps_leading() -> None:
    clock = FrozenClock()
    store = MemoryLeaseStore(clock)
    a = LeaderElection(store, clock, ttl=9, owner="a")
    b = LeaderElection(store, clock, ttl=9, owner="b")
    assert a.ensure()
    for _ in range(10):
        clock.advance(3.1)
        assert a.ensure() and not b.ensure()
    assert a.elections == 1


class BrokenStore(MemoryLeaseStore):
    def renew(self, lease: Lease, ttl: float) -> bool:
        raise ConnectionError("store down")


def test_store_failure_steps_down_instead_of_raising() -> None:
    clock = FrozenClock()
    a = LeaderElection(BrokenStore(clock), clock, ttl=3, owner="a")
    assert a.ensure()
    clock.advance(1.5)
    assert not a.ensure() and a.lease is None


def test_close_releases_so_a_standby_need_not_wait() -> None:
    clock = FrozenClock()
    store = MemoryLeaseStore(clock)
    a = LeaderElection(store, clock, ttl=30, owner="a")
    b = LeaderElection(store, clock, ttl=30, owner="b")
    assert a.ensure()
    a.step_down("shutting down")
    assert b.ensure()


def test_beat_leads_through_the_ledger_even_with_redis_leases(tmp_path: Path) -> None:
    """Leadership lives where windows are recorded: a Redis outage cannot end it (issue 20)."""
    from celery import Celery

    from agentcron.beat.factory import build_beat
    from agentcron.leases.sql import SqlLeaseStore
    from agentcron.settings import Settings

    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:9/0",
                        database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
                        schedule_path=tmp_path / "none.py")  # fmt: skip
    assert settings.lease_backend == "redis"
    service = build_beat(Celery("t"), settings, FrozenClock())
    try:
        assert service.leader is not None and isinstance(service.leader.leases, SqlLeaseStore)
        assert service.leader.ensure()
    finally:
        service.close()


def test_renew_from_another_thread_steps_down_when_the_lease_was_taken() -> None:
    clock = FrozenClock()
    store = MemoryLeaseStore(clock)
    a = LeaderElection(store, clock, ttl=9, owner="a")
    assert a.ensure() and a.renew()
    clock.advance(9.5)
    assert LeaderElection(store, clock, ttl=9, owner="b").ensure()
    assert not a.renew() and a.lease is None and not a.leading
