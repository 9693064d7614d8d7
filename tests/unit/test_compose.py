"""docker-compose.yml, checked without Docker: services, safety settings, and commands that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agentcron.cli import main as agentcron_main
from agentcron.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"redis", "postgres", "migrate", "beat", "worker-sync", "worker-async", "flower"}
CELERY = str(Path(sys.executable).with_name("celery"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_all_services_are_declared(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def _redis_script(compose: dict[str, Any]) -> str:
    command = compose["services"]["redis"]["command"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith("set -f; exec redis-server ")
    return str(command[2])


def test_redis_never_evicts_and_persists(compose: dict[str, Any]) -> None:
    script = _redis_script(compose)
    assert "--maxmemory-policy noeviction" in script
    assert "--appendonly yes" in script


def test_redis_has_no_default_user_and_a_least_privilege_app_user(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    script = _redis_script(compose)
    assert "--user default off" in script
    assert '--user agentcron on ">$$REDIS_PASSWORD" $$(grep -v \'^#\' /etc/redis/agentcron.acl)' in script
    assert "./ops/redis/agentcron.acl:/etc/redis/agentcron.acl:ro" in redis["volumes"]
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    rules = [line for line in (ROOT / "ops/redis/agentcron.acl").read_text().splitlines()
             if line and not line.startswith("#")]  # fmt: skip
    words = " ".join(rules).split()
    assert words[0] == "resetkeys" and "resetchannels" in words and "-@all" in words
    assert "~*" not in words and "&*" not in words and "+@all" not in words
    assert words.index("-@dangerous") > words.index("-@all")  # subtracted after the grants
    assert "agentcron" in redis["healthcheck"]["test"][1]
    broker = compose["x-agentcron"]["environment"]["AGENTCRON_BROKER_URL"]
    assert broker == "redis://agentcron:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379/0"


def test_passwords_have_no_defaults(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH", "FLOWER_COOKIE_SECRET"):
        uses = re.findall(r"\$\{" + name + r"(:[?-])?", text)
        assert uses and all(op == ":?" for op in uses), name
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?")


def test_the_image_is_built_from_ops_dockerfile(compose: dict[str, Any]) -> None:
    for name in SERVICES - {"redis", "postgres"}:
        build = compose["services"][name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == ROOT / "ops/Dockerfile"
    dockerfile = (ROOT / "ops/Dockerfile").read_text()
    assert "USER agentcron" in dockerfile
    lock = dockerfile.index("pip install --require-hashes --no-deps -r ops/requirements.lock")
    assert lock < dockerfile.index("pip install --no-deps .")  # the lock, then agentcron alone


def _locked() -> dict[str, tuple[str, list[str]]]:
    """``name -> (version, hashes)`` of ops/requirements.lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (ROOT / "ops/requirements.lock").read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if pin:
            current = canonicalize_name(pin.group(1))
            entries[current] = (pin.group(2), [])
        elif "--hash=sha256:" in line and current:
            entries[current][1].append(line.split("--hash=sha256:")[1].strip(" \\"))
    return entries


def test_runtime_dependencies_are_bounded_and_locked_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked()
    assert locked and all(len(h) >= 1 and all(len(x) == 64 for x in h) for _, h in locked.values())
    for text in project["dependencies"]:
        requirement = Requirement(text)
        assert any(s.operator in ("<", "<=", "~=", "==") for s in requirement.specifier), (
            f"{text}: no upper bound")
        name = canonicalize_name(requirement.name)
        assert name in locked, (f"{name} is not in ops/requirements.lock; regenerate it: uv pip compile "
                                "pyproject.toml --generate-hashes --universal --python-version 3.11 "
                                "-o ops/requirements.lock")  # fmt: skip
        assert requirement.specifier.contains(locked[name][0], prereleases=True), (name, locked[name])
        for extra in requirement.extras:  # celery[redis] -> redis, psycopg[binary] -> psycopg-binary
            assert {"redis": "redis", "binary": "psycopg-binary"}[extra] in locked


def test_migration_runs_once_before_everything(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["agentcron", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    for name in ("beat", "worker-sync", "worker-async", "flower"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")


def test_workers_scale_out(compose: dict[str, Any]) -> None:
    for name in ("worker-sync", "worker-async"):
        service = compose["services"][name]
        assert "container_name" not in service and "ports" not in service
        assert "hostname" not in service  # each replica keeps its own celery@<container> name
        assert service["stop_signal"] == "SIGTERM"  # warm shutdown drains runs
    assert compose["services"]["worker-async"]["environment"]["AGENTCRON_WORKER_POOL"] == "async"


def test_flower_requires_auth_and_binds_to_loopback(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert ":?" in flower["environment"]["FLOWER_BASIC_AUTH"]  # compose refuses to start without
    assert ":?" in flower["environment"]["FLOWER_COOKIE_SECRET"]


def test_environment_names_known_settings(compose: dict[str, Any]) -> None:
    known = {PREFIX + f.name.upper() for f in fields(Settings)} | {"AGENTCRON_WORKER_POOL"}
    for name, service in compose["services"].items():
        for key in service.get("environment", {}):
            if key.startswith(PREFIX):
                assert key in known, f"{name}: unknown setting {key}"


@cache
def _celery_help(subcommand: str) -> str:
    return subprocess.run([CELERY, "-A", "workers.app", subcommand, "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=60).stdout


def _flower_options() -> set[str]:
    import flower.options  # noqa: F401 - defines flower's tornado options
    from tornado.options import options

    return {name.replace("_", "-") for name in options._options}


def _check_celery(command: list[str]) -> None:
    assert command[:3] == ["celery", "-A", "workers.app"]
    assert importlib.util.find_spec("workers.app") is not None
    subcommand, args = command[3], command[4:]
    if subcommand == "flower":
        options = _flower_options()
        for arg in args:
            assert arg.startswith("--") and arg[2:].split("=")[0] in options, arg
        return
    help_text = _celery_help(subcommand)
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in help_text, f"celery {subcommand} has no option {arg}"


def test_every_command_names_modules_and_options_that_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        command = service.get("command")
        if name in ("redis", "postgres") or command is None:
            continue
        if command[0] == "celery":
            _check_celery(command)
        else:
            assert command[0] == "agentcron"
            result = CliRunner().invoke(agentcron_main, [*command[1:], "--help"])
            assert result.exit_code == 0, result.output
