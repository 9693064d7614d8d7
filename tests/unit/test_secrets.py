"""Secrets: env:NAME config, secret-looking keys redacted, one scrubber, URLs, file modes, Flower."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentcron.agents import DeclaredModules
from agentcron.alerts import Alert, Alerter, WebhookNotifier
from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.errors import ConfigError
from agentcron.flower_auth import MESSAGE, auth_problem
from agentcron.jobs import Job, compile_job
from agentcron.ledger.records import RunState
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.private_files import private_dir, private_file
from agentcron.secrets import (
    MASK,
    SCRUBBER,
    ScrubFilter,
    literal_secrets,
    redact,
    resolve_config,
    scrub,
    scrub_value,
)
from agentcron.settings import redact_url
from tests.unit.test_guard import World, make_spec

SECRET = "sk-live-0123456789abcdef"


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> World:
    return World(tmp_path, clock)


@pytest.fixture(autouse=True)
def fresh_scrubber() -> Iterator[None]:
    SCRUBBER.forget_all()
    yield
    SCRUBBER.forget_all()


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("rediss://app:pw@host/0?ssl_cert_reqs=required&password=pw2",
     "rediss://app:***@host/0?ssl_cert_reqs=required&password=***"),
    ("redis://host:6379/0?password=hunter2", "redis://host:6379/0?password=***"),
    ("https://hooks.example/x?token=abc&channel=ops", "https://hooks.example/x?token=***&channel=ops"),
    ("postgresql+psycopg://u:p@db/x?sslmode=require", "postgresql+psycopg://u:***@db/x?sslmode=require"),
    ("sqla+sqlite:////tmp/a/broker.sqlite", "sqla+sqlite:////tmp/a/broker.sqlite"),
    ("redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/4"),
])  # fmt: skip
def test_redact_url_masks_passwords_in_userinfo_and_query(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_masks_text_under_secret_looking_keys_only() -> None:
    definition: dict[str, Any] = {"agent": "m:f", "config": {"api_key": SECRET, "OpenAI_Token": "env:OPENAI",
                                             "db_password": "x", "max_tokens": 4096,
                                             "nested": [{"client_secret": "s3"}], "model": "gpt"}}
    shown = redact(definition)
    assert shown["config"] == {"api_key": MASK, "OpenAI_Token": "env:OPENAI", "db_password": MASK,
                               "max_tokens": 4096, "nested": [{"client_secret": MASK}],
                               "model": "gpt"}  # fmt: skip
    assert definition["config"]["api_key"] == SECRET  # not modified in place


def test_resolve_config_reads_env_at_run_time_and_remembers_values() -> None:
    env = {"OPENAI": SECRET, "REGION": "eu-west-1-long"}
    config = {"openai_key": "env:OPENAI", "region": "env:REGION", "nested": {"password": "literal-pw"}}
    resolved = resolve_config(config, env.get, "job")
    assert resolved == {"openai_key": SECRET, "region": "eu-west-1-long",
                        "nested": {"password": "literal-pw"}}  # fmt: skip
    assert config["openai_key"] == "env:OPENAI"
    text = f"HTTP 401 for key {SECRET} in eu-west-1-long with literal-pw"
    assert scrub(text) == f"HTTP 401 for key {MASK} in {MASK} with {MASK}"
    assert scrub_value({"echo": [SECRET, 3]}) == {"echo": [MASK, 3]}


def test_unset_env_reference_names_key_and_variable_not_a_value() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config({"api_key": "env:MISSING_VAR"}, dict[str, str]().get, "daily")
    text = str(info.value)
    assert "daily" in text and "config.api_key" in text and "MISSING_VAR is not set" in text


def test_bad_env_reference_is_rejected_at_validation() -> None:
    with pytest.raises(ConfigError, match="env: must be followed by a variable name"):
        compile_job(Job("j", agent="examples.market:analyse", schedule="@daily",
                        config={"api_key": "env:not a name"}))  # fmt: skip


def test_config_error_message_never_shows_a_secret() -> None:
    with pytest.raises(ConfigError) as info:
        compile_job(Job("j", agent="examples.market:analyse", schedule="@daily",
                        config={"api_key": SECRET, "bad": {1, 2}}))  # fmt: skip
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("api_key=abc123 failed", f"api_key={MASK} failed"),
    ('{"access_token": "tok-1", "n": 1}', f'{{"access_token": {MASK}, "n": 1}}'),
    ("{'password': 'pw', 'user': 'x'}", f"{{'password': {MASK}, 'user': 'x'}}"),
    ("Authorization: Bearer abc.def-ghi", f"Authorization: Bearer {MASK}"),
    ("connect redis://app:pw@h:6379/0 refused", f"connect redis://app:{MASK}@h:6379/0 refused"),
    ("GET /x?token=abc&page=2", f"GET /x?token={MASK}&page=2"),
    ("KeyError: 'api_key'", "KeyError: 'api_key'"),
    ("ValueError: bad month 13", "ValueError: bad month 13"),
])  # fmt: skip
def test_scrub_removes_secret_shapes_and_keeps_ordinary_errors(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_short_values_are_not_remembered() -> None:
    resolve_config({"token": "env:T"}, {"T": "abc"}.get)
    assert scrub("abc abc") == "abc abc"


def test_log_filter_scrubs_formatted_records_and_tracebacks() -> None:
    SCRUBBER.remember(SECRET)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "using %s now", (SECRET,), None)
    assert ScrubFilter().filter(record)
    assert record.getMessage() == f"using {MASK} now"
    try:
        raise RuntimeError(f"bad key {SECRET}")
    except RuntimeError:
        import sys

        exc = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    ScrubFilter().filter(exc)
    formatted = logging.Formatter().format(exc)
    assert SECRET not in formatted and "bad key ***" in formatted


def test_alerter_scrubs_the_reason_before_logging_and_sending(caplog: Any) -> None:
    SCRUBBER.remember(SECRET)
    sent: list[bytes] = []

    def send(url: str, body: bytes | None, timeout: float) -> int:
        sent.append(body or b"")
        return 200

    alerter = Alerter([WebhookNotifier("http://hook/x", send=send)], send=send)
    with caplog.at_level(logging.ERROR, "agentcron.alerts"):
        alerter.alert(Alert("j", "j@w", "failed", f"RuntimeError: key {SECRET} rejected"))
    assert SECRET not in caplog.text and SECRET.encode() not in sent[0]
    assert json.loads(sent[0])["reason"] == "RuntimeError: key *** rejected"


def test_guard_resolves_env_config_and_scrubs_the_stored_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("H4_TEST_SECRET", SECRET)
    seen: list[Any] = []

    def agent(ctx: RunContext) -> Any:
        seen.append(dict(ctx.config))
        raise RuntimeError(f"provider said: invalid key {ctx.config['api_key']}")

    spec = make_spec(agent, config={"api_key": "env:H4_TEST_SECRET"}, max_retries=2,
                     backoff_base=0.01, backoff_cap=0.01)  # fmt: skip
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert seen[0] == {"api_key": SECRET}
    assert outcome.state is RunState.FAILED and SECRET not in (outcome.error or "")
    assert SECRET not in outcome.detail
    record = world.ledger.get(spec.name, world.message(spec).window_start)
    assert record is not None and record.error_message == "RuntimeError: provider said: invalid key ***"
    assert spec.job.config == {"api_key": "env:H4_TEST_SECRET"}


def test_guard_fails_the_run_clearly_when_the_variable_is_missing(world: World) -> None:
    spec = make_spec(lambda ctx: None, config={"api_key": "env:H4_NOT_SET_ANYWHERE"})
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.FAILED
    assert "H4_NOT_SET_ANYWHERE is not set" in (outcome.error or "")


def test_file_jobs_are_stored_without_secret_text_and_listed_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcron.cli import main

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.upgrade()
    store = ScheduleStore(ledger.engine)
    config = {"api_key": SECRET, "openai": "env:OPENAI_API_KEY", "max_tokens": 10}
    job = Job("filejob", agent="examples.market:analyse", schedule="@daily", config=config)
    store.sync_file([job])
    assert store.get("filejob").definition["config"] == {  # type: ignore[union-attr]
        "api_key": MASK, "openai": "env:OPENAI_API_KEY", "max_tokens": 10}
    assert store.sync_file([job]) == store.revision()  # unchanged file: nothing rewritten
    store.add(Job("apijob", agent="examples.market:analyse", schedule="@daily",
                  config={"token": SECRET}), declared=DeclaredModules(("examples",)))  # fmt: skip
    monkeypatch.setenv("AGENTCRON_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    monkeypatch.setenv("AGENTCRON_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["schedules", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "env:OPENAI_API_KEY" in result.output
    assert {e["name"]: e["config"] for e in json.loads(result.output)}["apijob"] == {"token": MASK}
    ledger.close()


def test_literal_secrets_are_named_for_a_warning() -> None:
    assert literal_secrets({"api_key": "x", "token": "env:T", "max_tokens": 5, "m": "y"}) == ["api_key"]


def test_private_dir_and_files(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        data = private_dir(tmp_path / "a" / ".agentcron")
        ledger = private_file(data / "ledger.sqlite")
        loose = tmp_path / "loose.sqlite"
        loose.write_text("")
        loose.chmod(0o644)
        private_file(loose)
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600


def test_embedded_ledger_and_its_wal_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ledger = Ledger(f"sqlite:///{tmp_path / 'fresh' / 'ledger.sqlite'}")
        ledger.upgrade()
    finally:
        os.umask(old)
    folder = tmp_path / "fresh"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ledger.close()


@pytest.mark.parametrize(("basic", "auth", "ok"), [
    (None, None, False), ([], "", False), ([":"], "", False), (["user:"], "", False),
    (["user:pw"], "", True), ([], ".*@example\\.com", True),
])  # fmt: skip
def test_flower_auth_problem(basic: list[str] | None, auth: str | None, ok: bool) -> None:
    assert auth_problem(basic, auth) == (None if ok else MESSAGE)
