"""The operator console in the browser: jobs, windows, runs and the fleet (``agentcron web``)."""

from agentcron.console.app import create_app
from agentcron.console.auth import new_token
from agentcron.console.server import ConsoleServer

__all__ = ["ConsoleServer", "create_app", "new_token"]
