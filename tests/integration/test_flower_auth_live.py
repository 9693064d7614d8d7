"""``celery -A workers.app flower``, the real command: refused without authentication (exit 2,
one clear line, nothing bound), started and bound to 127.0.0.1 with ``--basic-auth`` or
``FLOWER_BASIC_AUTH``, and every request without the credentials gets 401."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from agentcron.flower_auth import MESSAGE
from tests.services import free_port, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update({"AGENTCRON_BROKER_URL": redis_url, "PYTHONPATH": str(ROOT)}, **extra)
    return env


def _listening(port: int, host: str) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _other_address() -> str | None:
    """A local non-loopback IPv4 address, if the machine has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _status(url: str, auth: str | None = None) -> int:
    headers = {"Authorization": f"Basic {b64encode(auth.encode()).decode()}"} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize("args", [[], ["--basic-auth="], ["--address=0.0.0.0"]])
def test_flower_without_auth_refuses_to_start(redis_url: str, args: list[str]) -> None:
    port = free_port()
    result = subprocess.run([CELERY, "-A", "workers.app", "flower", f"--port={port}", *args],
                            cwd=ROOT, env=_env(redis_url), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert MESSAGE in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not _listening(port, "127.0.0.1")


@pytest.mark.parametrize("how", ["option", "environment"])
def test_flower_with_basic_auth_starts_on_loopback(redis_url: str, how: str) -> None:
    port = free_port()
    argv = [CELERY, "-A", "workers.app", "flower", f"--port={port}"]
    env = _env(redis_url)
    if how == "option":
        argv.append("--basic-auth=ops:s3cret-pw")
    else:
        env["FLOWER_BASIC_AUTH"] = "ops:s3cret-pw"
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: _listening(port, "127.0.0.1"), timeout=60, what="flower listening")
        url = f"http://127.0.0.1:{port}/api/workers"
        assert _status(url) == 401
        assert _status(url, "ops:wrong") == 401
        assert _status(url, "ops:s3cret-pw") == 200
        other = _other_address()
        if other is not None:  # bound to loopback only, not to every interface
            assert not _listening(port, other)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
