"""A sync agent object (the ``run(task)`` style of agent frameworks): a morning ticket briefing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


class BriefingAgent:
    """Counts open tickets by priority and team from the shipped ticket export."""

    def __init__(self, path: Path = DATA / "tickets.json") -> None:
        self.path = path

    def run(self, task: str) -> dict[str, Any]:
        tickets = json.loads(self.path.read_text())
        open_tickets = [t for t in tickets if t["open"]]
        urgent = sorted(t["id"] for t in open_tickets if t["priority"] == "urgent")
        return {
            "task": task,
            "open": len(open_tickets),
            "by_priority": dict(sorted(Counter(t["priority"] for t in open_tickets).items())),
            "by_team": dict(sorted(Counter(t["team"] for t in open_tickets).items())),
            "urgent": urgent,
        }


briefing = BriefingAgent()
