"""The Redis ACL of docker-compose.yml, measured: the compose file's own redis command (with
ops/redis/agentcron.acl) runs a real redis-server; beat, sync and async workers (gossip, mingle
and heartbeats on, as in compose), the CLI, ``celery inspect/control`` and Flower work as the
``agentcron`` user, Redis' ACL LOG records no denial but the workers' CONFIG GET check, and the
user cannot reach the server's admin commands, other keys or other channels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import yaml

from agentcron.ledger.store import Ledger
from tests.services import free_port, missing, stop, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORD = "acl-test-0123456789abcdef"
ADMIN = "admin-test-pw-9876543210"
JOBS = '''
import asyncio, time
from agentcron import Job

def quick(ctx):
    return ctx.job

async def aquick(ctx):
    await asyncio.sleep(0.02)
    return ctx.job

def slow(ctx):
    for _ in range(30):
        if ctx.cancel_requested:
            return "cancelled"
        time.sleep(0.1)

JOBS = [
    Job("acl_sync", agent="beat_schedule:quick", schedule="*/2s"),
    Job("acl_async", agent="beat_schedule:aquick", schedule="*/2s"),
    Job("acl_replace", agent="beat_schedule:slow", schedule="*/2s", overlap="cancel_other",
        lease_ttl=3),
]
'''


def interpolate(text: str, env: dict[str, str]) -> str:
    """docker compose's interpolation: ``${X}``, ``${X:?msg}``, ``${X:-default}``, ``$$``."""
    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if op == ":-":
            return rest or ""
        raise AssertionError(f"compose would refuse: {name} unset ({rest})")

    text = re.sub(r"\$\{(\w+)(?:(:[?-])([^}]*))?\}", one, text)
    return text.replace("$$", "$")


@contextmanager
def compose_redis(tmp: Path) -> Iterator[int]:
    """The compose file's redis command, run here (paths and port adjusted, plus an admin user
    that only this test uses to read the ACL LOG)."""
    if shutil.which("redis-server") is None:
        missing("redis-server binary")
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]
    assert service["command"][:2] == ["sh", "-c"]
    script = interpolate(service["command"][2], {})
    script = script.replace("/etc/redis/agentcron.acl", str(ROOT / "ops/redis/agentcron.acl"))
    port = free_port()
    script += (f" --port {port} --bind 127.0.0.1 --dir {tmp} --save ''"
               f" --user admin on '>{ADMIN}' '~*' '&*' '+@all'")  # fmt: skip
    env = {**os.environ, "REDIS_PASSWORD": PASSWORD}
    proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: _pong(port), timeout=15, what="compose redis")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _pong(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, username="agentcron", password=PASSWORD).ping())
    except redis.RedisError:
        return False


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb")
    proc = subprocess.Popen(argv, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        stop(proc, grace=30)
        out.close()


def acl_denials(port: int) -> list[str]:
    import redis

    admin = redis.Redis(port=port, username="admin", password=ADMIN, decode_responses=True)
    return sorted({f"{e['reason']}:{e['object']}" for e in admin.acl_log(count=1000)})


def succeeded(ledger: Ledger, job: str) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sqlalchemy.text(
            "SELECT count(*) FROM runs WHERE job = :j AND state = 'succeeded'"), {"j": job}).scalar_one())


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def refuses_everything_else(port: int) -> None:
    """No login without the password, no admin command, no other key or channel; the compose
    healthcheck passes with the password only."""
    import redis

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()  # the default user is off
    app_user = redis.Redis(port=port, username="agentcron", password=PASSWORD)
    for command in (("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "SET", "maxmemory", "1"),
                    ("SET", "other:key", "1"), ("PUBLISH", "other", "x"), ("CLIENT", "LIST"),
                    ("FUNCTION", "FLUSH"), ("SCRIPT", "FLUSH"), ("MONITOR",)):  # fmt: skip
        with pytest.raises(redis.exceptions.NoPermissionError):
            app_user.execute_command(*command)
    health = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]
    probe = interpolate(health["healthcheck"]["test"][1], {})
    probe = probe.replace("redis-cli", f"redis-cli -p {port}")  # the compose healthcheck
    env_probe = {**os.environ, "REDIS_PASSWORD": PASSWORD}
    assert subprocess.run(["sh", "-c", probe], env=env_probe, timeout=30).returncode == 0
    assert subprocess.run(["sh", "-c", probe], env={**env_probe, "REDIS_PASSWORD": "wrong"},
                          timeout=30, capture_output=True).returncode != 0  # fmt: skip


def test_least_privilege_user_runs_everything(tmp_path: Path, postgres_url: str) -> None:
    import redis

    (tmp_path / "beat_schedule.py").write_text(textwrap.dedent(JOBS))
    ledger = Ledger(postgres_url)
    ledger.upgrade()
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DELETE FROM runs WHERE job LIKE 'acl_%'"))
    with ExitStack() as stack:
        port = stack.enter_context(compose_redis(tmp_path))
        refuses_everything_else(port)
        redis.Redis(port=port, username="admin", password=ADMIN).acl_log_reset()
        env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}",
               "AGENTCRON_BROKER_URL": f"redis://agentcron:{PASSWORD}@127.0.0.1:{port}/0",
               "AGENTCRON_DATABASE_URL": postgres_url,
               "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py"),
               "AGENTCRON_DATA_DIR": str(tmp_path / "data"), "AGENTCRON_WATCHDOG_INTERVAL": "3"}
        celery = [str(BIN / "celery"), "-A", "workers.app"]
        stack.enter_context(process([*celery, "beat", "-l", "INFO", "-s",
                                     str(tmp_path / "cbs")], env, tmp_path / "beat.log"))
        stack.enter_context(process([*celery, "worker", "-Q", "agentcron.sync", "-c", "2",
                                     "-n", "sync@acl", "-l", "INFO"], env, tmp_path / "sync.log"))
        stack.enter_context(process([*celery, "worker", "-Q", "agentcron.async", "-n", "async@acl",
                                     "-l", "INFO"], {**env, "AGENTCRON_WORKER_POOL": "async"},
                                    tmp_path / "async.log"))  # fmt: skip
        flower_port = free_port()
        stack.enter_context(process([*celery, "flower", f"--port={flower_port}",
                                     "--basic-auth=ops:flower-pw"], env, tmp_path / "flower.log"))
        for job in ("acl_sync", "acl_async", "acl_replace"):
            wait_for(lambda j=job: succeeded(ledger, j) >= 2, timeout=90, what=f"{job} runs")
        cli = [str(BIN / "agentcron")]
        for argv in ([*cli, "status"], [*cli, "trigger", "acl_sync", "--force"], [*cli, "check"],
                     [*cli, "runs", "--limit", "3"], [*celery, "agents", "status"],
                     [*celery, "inspect", "ping", "--timeout", "5"],
                     [*celery, "control", "revoke", "00000000-0000-0000-0000-000000000000"]):  # fmt: skip
            result = run(argv, env, tmp_path)
            assert result.returncode == 0, (argv, result.stdout, result.stderr)
        auth = b64encode(b"ops:flower-pw").decode()
        request = urllib.request.Request(f"http://127.0.0.1:{flower_port}/api/workers?refresh=1",
                                         headers={"Authorization": f"Basic {auth}"})  # fmt: skip
        wait_for(lambda: _flower_ok(request), timeout=30, what="flower answers")
        denials = acl_denials(port)
    ledger.close()
    logs = "".join((tmp_path / n).read_text() for n in ("beat.log", "sync.log", "async.log",
                                                         "flower.log"))  # fmt: skip
    assert "NoPermissionError" not in logs and "Unrecoverable error" not in logs
    assert denials in ([], ["command:config|get"]), denials


def _flower_ok(request: urllib.request.Request) -> bool:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status) == 200
    except OSError:
        return False


def test_flower_auth_flows_through_compose() -> None:
    flower: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    assert "--basic-auth" not in " ".join(flower["command"])  # from FLOWER_BASIC_AUTH
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
