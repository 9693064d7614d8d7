"""Watching the fleet: the watchdog and what it reports, stranded windows, backfills, heartbeats,
the run metrics, and what waits on the broker's queues.

- :mod:`~agentcron.watch.watchdog`: expected windows minus the ledger ⇒ re-enqueue or ``missed``.
- :mod:`~agentcron.watch.report`: :class:`WatchReport`, what one watchdog pass did.
- :mod:`~agentcron.watch.stranded`: windows whose holder is gone, published again.
- :mod:`~agentcron.watch.backfill`: ``agentcron backfill``'s windows of a past range.
- :mod:`~agentcron.watch.heartbeats`: beat and worker heartbeats (``agentcron status``).
- :mod:`~agentcron.watch.metrics`: recorders of the Prometheus series (:mod:`agentcron.series`).
- :mod:`~agentcron.watch.queued`: what waits on the broker's queues (window keys, depths).

Import the modules themselves: this package's ``__init__`` imports nothing, so ``agentcron
status`` (heartbeats) does not load the watchdog, the beat and the ledger.
"""
