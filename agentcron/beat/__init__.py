"""agentcron beat: plan slots on a heap, record windows before publishing, lead with a lease.

Pure planning lives in :mod:`~agentcron.beat.planner`, :mod:`~agentcron.beat.catchup` and
:mod:`~agentcron.beat.jitter`; :mod:`~agentcron.beat.leader` elects one beat;
:mod:`~agentcron.beat.emitter` records then publishes; :mod:`~agentcron.beat.service` is the
loop that ``workers.beat.AgentcronScheduler`` drives.
"""

from agentcron.beat.catchup import CatchUp, plan_catchup
from agentcron.beat.emitter import Emitter
from agentcron.beat.jitter import jitter_offset
from agentcron.beat.leader import LeaderElection
from agentcron.beat.planner import Emission, Planner, emission_for
from agentcron.beat.publisher import CeleryPublisher, Outgoing, Publisher
from agentcron.beat.service import BeatConfig, BeatService

__all__ = [
    "BeatConfig",
    "BeatService",
    "CatchUp",
    "CeleryPublisher",
    "Emission",
    "Emitter",
    "LeaderElection",
    "Outgoing",
    "Planner",
    "Publisher",
    "emission_for",
    "jitter_offset",
    "plan_catchup",
]
