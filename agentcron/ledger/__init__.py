"""The SQL run ledger: the durable record and the authority on windows."""

from agentcron.ledger.records import Claim, ClaimStatus
from agentcron.ledger.store import Ledger, ResultError

__all__ = ["Claim", "ClaimStatus", "Ledger", "ResultError"]
