"""Fenced, renewable leases: one protocol, Redis / SQL / in-memory implementations."""

from agentcron.leases.base import AsyncLeaseStore, Lease, LeaseStore
from agentcron.leases.cancel import (
    AsyncCancelSignals,
    CancelSignals,
    MemoryCancelSignals,
    RedisCancelSignals,
    SqlCancelSignals,
)
from agentcron.leases.factory import (
    open_async_cancel_signals,
    open_async_lease_store,
    open_cancel_signals,
    open_lease_store,
)
from agentcron.leases.hub import LeaseHub
from agentcron.leases.memory import MemoryLeaseStore
from agentcron.leases.redis import AsyncRedisLeaseStore, RedisLeaseStore
from agentcron.leases.sql import SqlLeaseStore

__all__ = [
    "AsyncCancelSignals",
    "AsyncLeaseStore",
    "AsyncRedisLeaseStore",
    "CancelSignals",
    "Lease",
    "LeaseHub",
    "LeaseStore",
    "MemoryCancelSignals",
    "MemoryLeaseStore",
    "RedisCancelSignals",
    "RedisLeaseStore",
    "SqlCancelSignals",
    "SqlLeaseStore",
    "open_async_cancel_signals",
    "open_async_lease_store",
    "open_cancel_signals",
    "open_lease_store",
]
