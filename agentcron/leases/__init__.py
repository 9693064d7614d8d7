"""Fenced, renewable leases: one protocol, Redis / SQL / in-memory implementations."""

from agentcron.leases.base import Lease, LeaseStore

__all__ = ["Lease", "LeaseStore"]
