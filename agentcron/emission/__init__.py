"""Emitting a window: building it from a job and a slot, recording it, then publishing it.

Below both the beat and the watch layer, so the watchdog and backfill send windows exactly as
the beat does without knowing the beat:

- :mod:`~agentcron.emission.envelope`: :class:`Emission` (a window, its task, queue and due
  time), :func:`emission_for` (job + slot ⇒ emission), :func:`task_for`;
- :mod:`~agentcron.emission.jitter`: the deterministic per-window jitter;
- :mod:`~agentcron.emission.publisher`: :class:`Outgoing`, the :class:`Publisher` protocol and
  :class:`CeleryPublisher`;
- :mod:`~agentcron.emission.emitter`: record before publish (:class:`Emitter`);
- :mod:`~agentcron.emission.expected`: windows expected vs recorded (:class:`ExpectedWindows`),
  the one service the watchdog asks.
"""

from agentcron.emission.emitter import Emitter
from agentcron.emission.envelope import Emission, emission_for, task_for
from agentcron.emission.expected import ExpectedWindows
from agentcron.emission.jitter import jitter_offset
from agentcron.emission.publisher import CeleryPublisher, Outgoing, Publisher

__all__ = [
    "CeleryPublisher",
    "Emission",
    "Emitter",
    "ExpectedWindows",
    "Outgoing",
    "Publisher",
    "emission_for",
    "jitter_offset",
    "task_for",
]
