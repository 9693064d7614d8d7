"""agentcron beat: plan slots on a heap, record windows before publishing, lead with a lease.

Pure planning lives in :mod:`~agentcron.beat.planner` and :mod:`~agentcron.beat.catchup`;
:mod:`~agentcron.beat.leader` elects one beat; :mod:`~agentcron.beat.service` is the loop that
``workers.beat.AgentcronScheduler`` drives. Building a window and recording it before publishing
it are :mod:`agentcron.emission`'s (the watchdog and backfill do it too); they are re-exported
here.
"""

from agentcron.beat.catchup import CatchUp, plan_catchup
from agentcron.beat.leader import LeaderElection
from agentcron.beat.planner import Planner
from agentcron.beat.service import BeatConfig, BeatService
from agentcron.emission.emitter import Emitter
from agentcron.emission.envelope import Emission, emission_for
from agentcron.emission.jitter import jitter_offset
from agentcron.emission.publisher import CeleryPublisher, Outgoing, Publisher

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
