"""Delivery of reports: a transactional outbox of (window, report, target) rows and its sender.

The rows are written in the ledger transaction that records the run's success
(:mod:`agentcron.reports.records`); :class:`agentcron.delivery.sender.Sender` claims them with a
lease, sends (email, webhook, Slack) and marks them sent, retrying transient failures with the
shared backoff until ``AGENTCRON_DELIVERY_MAX_AGE``. This package's ``__init__`` stays light
(job validation imports the targets); import the sender from its module.
"""

from agentcron.delivery.targets import Target, TargetKind, delivery_key, parse_targets, safe_target

__all__ = ["Target", "TargetKind", "delivery_key", "parse_targets", "safe_target"]
