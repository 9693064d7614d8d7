"""The SQL run ledger: the durable record and the authority on windows."""

from agentcron.ledger.store import Claim, ClaimStatus, Ledger, ResultError

__all__ = ["Claim", "ClaimStatus", "Ledger", "ResultError"]
