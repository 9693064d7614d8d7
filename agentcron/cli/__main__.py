"""``python -m agentcron.cli``."""

from agentcron.cli import main

main()
