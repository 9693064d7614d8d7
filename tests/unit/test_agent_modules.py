"""Agents come from declared modules; a class is never instantiated from a name (issue 13.6)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcron.agents import DeclaredModules, import_object, resolve_agent
from agentcron.catalogue import load_specs
from agentcron.cli import main
from agentcron.errors import ConfigError
from agentcron.jobs import Job, compile_job
from agentcron.ledger.schedules import ScheduleStore
from agentcron.ledger.store import Ledger
from agentcron.settings import Settings

MODULE = '''
import os
from os import system

IMPORTED = True


def tick(ctx):
    return "tick"


class Agent:
    def run(self, task):
        return task


agent = Agent()
'''


@pytest.fixture
def mods(tmp_path: Path) -> Path:
    (tmp_path / "decl_agents.py").write_text(MODULE)
    (tmp_path / "sideeffect_mod.py").write_text("raise SystemExit('imported!')\n")
    return tmp_path


def test_prefixes_allow_a_package_and_what_is_under_it() -> None:
    declared = DeclaredModules.of(" examples , tools.agents,", [])
    assert declared.allows("examples") and declared.allows("examples.market")
    assert declared.allows("tools.agents.x") and not declared.allows("tools")
    assert not declared.allows("examples_evil") and not declared.allows("os")
    with pytest.raises(ConfigError, match="AGENTCRON_AGENT_MODULES"):
        DeclaredModules.of("bad module!", [])


def test_the_schedule_files_modules_are_declared_exactly() -> None:
    jobs = [Job("a", agent="examples.market:analyse", schedule="@daily",
                on_failure="hooks.alerts:page")]  # fmt: skip
    declared = DeclaredModules.of("", jobs)
    assert declared.allows("examples.market") and declared.allows("hooks.alerts")
    assert not declared.allows("examples") and not declared.allows("examples.market.sub")


def test_undeclared_module_is_refused_before_it_is_imported(mods: Path) -> None:
    with pytest.raises(ConfigError, match="not a declared agent module"):
        import_object("sideeffect_mod:x", [mods], declared=DeclaredModules(("decl_agents",)))
    assert "sideeffect_mod" not in sys.modules


@pytest.mark.parametrize(
    ("ref", "reason"),
    [("decl_agents:Agent", "is a class"),
     ("decl_agents:system", "not a declared agent module"),  # re-exported from os
     ("decl_agents:os.system", "is a module"),
     ("os:system", "not a declared agent module"),
     ("cProfile:Profile", "not a declared agent module"),
     ("not a path", "import path")],
)  # fmt: skip
def test_refused_references(mods: Path, ref: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        resolve_agent(ref, [mods], DeclaredModules(("decl_agents",)))


def test_functions_and_module_level_instances_resolve(mods: Path) -> None:
    declared = DeclaredModules(("decl_agents",))
    assert resolve_agent("decl_agents:tick", [mods], declared).takes_task is False
    assert resolve_agent("decl_agents:agent", [mods], declared).takes_task is True


def test_a_class_is_refused_even_from_the_schedule_file(mods: Path) -> None:
    class Local:
        def run(self, task: str) -> str:
            return task

    for agent in (Local, "decl_agents:Agent"):
        with pytest.raises(ConfigError, match="never instantiates a class"):
            compile_job(Job("j", agent=agent, schedule="@daily"), [mods])
    with pytest.raises(ConfigError, match="on_success: is a class"):
        compile_job(Job("j", agent="decl_agents:tick", schedule="@daily",
                        on_success="decl_agents:Agent"), [mods])  # fmt: skip


def test_runtime_rows_load_only_from_declared_modules(mods: Path, tmp_path: Path) -> None:
    (tmp_path / "beat_schedule.py").write_text("JOBS = []\n")
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    store = ScheduleStore(ledger.engine)
    store.upsert([Job("ok", agent="decl_agents:tick", schedule="@daily"),  # rows as written
                  Job("cb", agent="decl_agents:tick", schedule="@daily",
                      on_failure="sideeffect_mod:hook"),
                  Job("bad", agent="sideeffect_mod:x", schedule="@daily")], "api")  # fmt: skip
    settings = Settings(schedule_path=tmp_path / "beat_schedule.py", agent_modules="decl_agents")
    sys.path.insert(0, str(mods))
    try:
        assert [s.name for s in load_specs(ledger.engine, settings)] == ["ok"]
        assert load_specs(ledger.engine, Settings(schedule_path=settings.schedule_path)) == []
    finally:
        sys.path.remove(str(mods))
    assert "sideeffect_mod" not in sys.modules
    ledger.close()


def test_schedules_add_refuses_an_undeclared_agent_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "beat_schedule.py").write_text("JOBS = []\n")
    env = {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
           "AGENTCRON_DATA_DIR": str(tmp_path), "AGENTCRON_AGENT_MODULES": "",
           "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py")}  # fmt: skip
    runner = CliRunner()
    for agent in ("os:system", "cProfile:Profile"):
        result = runner.invoke(main, ["schedules", "add", "x", "--agent", agent, "--schedule",
                                      "@daily"], env=env)  # fmt: skip
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "not a declared agent module" in result.output
    listed = runner.invoke(main, ["schedules", "list"], env=env)
    assert "no schedules" in listed.output


def test_the_watchdog_never_loads_an_undeclared_row(mods: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from agentcron.runtime import Runtime
    from agentcron.watch.watchdog import enabled_specs

    (tmp_path / "beat_schedule.py").write_text(
        "from agentcron import Job\nJOBS = [Job('f', agent='decl_agents:tick', schedule='@daily')]\n")
    settings = Settings(schedule_path=tmp_path / "beat_schedule.py", data_dir=tmp_path / "d")
    sys.path.insert(0, str(mods))
    try:
        runtime = Runtime(settings)
        store = ScheduleStore(runtime.ledger.engine)
        store.upsert([Job("same_module", agent="decl_agents:agent", schedule="@daily"),
                      Job("wd_bad", agent="sideeffect_mod:x", schedule="@daily")], "api")
        assert sorted(s.name for s in enabled_specs(runtime)) == ["f", "same_module"]
        runtime.close()
    finally:
        sys.path.remove(str(mods))
    assert "sideeffect_mod" not in sys.modules
    assert "ALERT wd_bad window - refused" in caplog.text


def test_the_beat_never_plans_an_undeclared_row(mods: Path, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    from agentcron.beat.sources import SpecSource

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    store = ScheduleStore(ledger.engine)
    file_job = Job("f", agent="decl_agents:tick", schedule="@daily")
    source = SpecSource(store, [file_job], [mods], settings=Settings())
    source.load()
    store.upsert([Job("beat_ok", agent="decl_agents:agent", schedule="@daily"),
                  Job("beat_bad", agent="sideeffect_mod:x", schedule="@daily")], "api")
    with ledger.engine.begin() as conn:  # a forged 'file' row that the file does not declare
        from sqlalchemy import text

        conn.execute(text("UPDATE schedules SET source = 'file', revision = revision + 1 "
                          "WHERE name = 'beat_bad'"))  # fmt: skip
    changes = source.poll()
    assert changes is not None and [s.name for s in changes.upserted] == ["beat_ok"]
    assert sorted(source.specs) == ["beat_ok", "f"]
    assert "sideeffect_mod" not in sys.modules
    assert "ALERT beat_bad window - refused" in caplog.text
    ledger.close()


def test_a_bad_setting_is_one_line_in_the_cli_and_ignored_by_loaders(tmp_path: Path) -> None:
    from agentcron.catalogue import declared_modules

    (tmp_path / "beat_schedule.py").write_text("JOBS = []\n")
    env = {"AGENTCRON_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
           "AGENTCRON_DATA_DIR": str(tmp_path), "AGENTCRON_AGENT_MODULES": "good, bad name",
           "AGENTCRON_SCHEDULE_PATH": str(tmp_path / "beat_schedule.py")}  # fmt: skip
    result = CliRunner().invoke(main, ["schedules", "add", "x", "--agent", "good:f",
                                       "--schedule", "@daily"], env=env)  # fmt: skip
    assert result.exit_code == 2 and "AGENTCRON_AGENT_MODULES" in result.output
    declared = declared_modules(Settings(agent_modules="good, bad name"))
    assert declared.prefixes == ("good",)


def test_the_python_api_refuses_an_undeclared_agent_when_added(
        mods: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (tmp_path / "beat_schedule.py").write_text(
        "from agentcron import Job\nJOBS = [Job('f', agent='decl_agents:tick', schedule='@daily')]\n")
    monkeypatch.setenv("AGENTCRON_SCHEDULE_PATH", str(tmp_path / "beat_schedule.py"))
    monkeypatch.setenv("AGENTCRON_AGENT_MODULES", "tools")
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    store = ScheduleStore(ledger.engine)
    for job, says in [(Job("bad", agent="sideeffect_mod:x", schedule="@daily"), "job 'bad': agent"),
                      (Job("cb", agent="decl_agents:tick", schedule="@daily",
                           on_failure="os:system"), "job 'cb': on_failure"),
                      (Job("cls", agent=DeclaredModules, schedule="@daily"), "agentcron.agents")]:
        with pytest.raises(ConfigError, match="not a declared agent module") as refused:
            store.add(job)
        assert says in str(refused.value)
    assert store.entries() == [] and "sideeffect_mod" not in sys.modules
    store.add(Job("ok", agent="decl_agents:tick", schedule="@daily"))  # the file's module
    store.add(Job("tool", agent="tools.x:run", schedule="@daily"))  # AGENTCRON_AGENT_MODULES
    with pytest.raises(ConfigError, match="not a declared agent module"):
        store.add(Job("other", agent="decl_agents:tick", schedule="@daily"),
                  declared=DeclaredModules(("tools",)))  # fmt: skip
    assert [e.name for e in store.entries()] == ["ok", "tool"]
    ledger.close()


def test_an_agent_whose_module_another_thread_is_importing_waits_for_that_import(
        tmp_path: Path) -> None:  # fmt: skip
    """import_object skips the sys.path work for an imported module, but never hands out a
    module another thread is still executing (a worker thread resolving its jobs while the
    main thread imports the agents' module)."""
    import sys
    import threading
    import time

    from agentcron.agents import import_object

    started = tmp_path / "started"
    (tmp_path / "slowagents_h3.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(started)!r}).write_text('x')\n"
        "time.sleep(0.5)\n"
        "def agent(ctx):\n    return None\n")  # fmt: skip
    sys.path.insert(0, str(tmp_path))
    try:
        importer = threading.Thread(target=__import__, args=("slowagents_h3",))
        importer.start()
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert callable(import_object("slowagents_h3:agent", [tmp_path]))
        importer.join()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("slowagents_h3", None)
