"""``agentcron web``: one clear line and exit 1 when the ledger or the port is unavailable."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from agentcron.cli import main
from agentcron.console.server import login_url


def test_web_without_a_database_says_so_and_exits_1(tmp_path: Path) -> None:
    env = {"AGENTCRON_DATA_DIR": str(tmp_path),
           "AGENTCRON_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}  # fmt: skip
    result = CliRunner().invoke(main, ["web", "--port", "18999"], env=env)
    assert result.exit_code == 1 and "the ledger does not answer" in result.output
    assert "Traceback" not in result.output


def test_web_on_a_busy_port_exits_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["web", "--port", str(port)],
                                    env={"AGENTCRON_DATA_DIR": str(tmp_path)})  # fmt: skip
    assert result.exit_code == 1 and "cannot listen" in result.output


def test_web_refuses_a_short_token_and_a_bad_port(tmp_path: Path) -> None:
    env = {"AGENTCRON_DATA_DIR": str(tmp_path), "AGENTCRON_WEB_TOKEN": "short"}
    assert CliRunner().invoke(main, ["web"], env=env).exit_code == 2
    assert CliRunner().invoke(main, ["web", "--port", "70000"]).exit_code == 2


def test_login_url_shows_a_wildcard_bind_as_loopback() -> None:
    assert login_url("0.0.0.0", 8787, "t") == "http://127.0.0.1:8787/?token=t"
    assert login_url("::1", 8787, "t") == "http://[::1]:8787/?token=t"
