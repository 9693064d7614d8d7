"""Serving the console with uvicorn: in the foreground (``agentcron web``) or on a thread (``up``)."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def login_url(host: str, port: int, token: str) -> str:
    """``http://host:port/?token=…`` (a wildcard bind is shown as 127.0.0.1)."""
    shown = DEFAULT_HOST if host in ("0.0.0.0", "::", "") else host
    try:
        if ipaddress.ip_address(shown).version == 6:
            shown = f"[{shown}]"
    except ValueError:
        pass
    return f"http://{shown}:{port}/?token={token}"


class ConsoleServer:
    """One uvicorn server for the console app, quiet on the terminal (warnings only)."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", server_header=False)  # fmt: skip
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (Ctrl-C), in this thread."""
        self.server.run()

    def start(self, timeout: float = 10.0) -> bool:
        """Serve on a daemon thread; True once it listens (False if it could not bind)."""
        self._thread = threading.Thread(target=self.server.run, name="agentcron-console",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        done = threading.Event()
        while not done.wait(0.05):
            if self.server.started or not self._thread.is_alive():
                break
            timeout -= 0.05
            if timeout <= 0:
                break
        return bool(self.server.started)

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
