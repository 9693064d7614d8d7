"""Fixtures of the fault suite, and the FAULTS.md writer.

Every test of this folder gets a :class:`Cluster` (its own redis-server on its own port, a
SQLite ledger unless it asks for PostgreSQL). Each scenario names what it injects with
``@pytest.mark.injects("...")``; at the end of the session the outcome and duration of each
fault test that ran is written into ``FAULTS.md`` (rows of tests that did not run are kept).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import ROOT, Cluster

REPORT = ROOT / "FAULTS.md"
_RESULTS: dict[str, dict[str, str]] = {}
HEADER = """# Fault-injection results

Produced by `tests/faults/conftest.py` from the last run of the fault suite
(`pytest -m "faults or soak" tests/faults`). Every scenario runs real `redis-server`, `celery worker`
and `celery beat` processes and checks the oracle of `../shared/reliability.md` on the ledger
and on the agents' side effects. `xfail` = a known product bug, described in the reason.

| scenario | what is injected | result | time |
|---|---|---|---|
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "injects(text): what a fault scenario injects (FAULTS.md)")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A private broker (started) and ledger; every process is killed afterwards."""
    made = Cluster(tmp_path)
    made.start_redis()
    try:
        yield made
    finally:
        made.close()


def _scenario(item: pytest.Item) -> str:
    return _scenario_name(item.name)


def _scenario_name(name: str) -> str:
    match = re.match(r"test_(s\d+)_?(.*)", name)
    if match:
        return f"{match.group(1).upper()} {match.group(2).replace('_', ' ')}"
    return name.removeprefix("test_").replace("_", " ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    recorded = report.when == "call" or (report.when == "setup" and report.skipped)
    if "tests/faults" not in str(item.path) or not recorded:
        return report
    marker = item.get_closest_marker("injects")
    injected = marker.args[0] if marker else ""
    result = report.outcome
    if hasattr(report, "wasxfail"):
        result = "xfail: " + str(report.wasxfail) if report.skipped else "XPASS (bug fixed?)"
    elif report.skipped:
        result = "skipped"
    figures = dict(report.user_properties).get("figures")
    if figures:
        result = f"{result}: {figures}"
    _RESULTS[_scenario(item)] = {"injected": injected, "result": result,
                                 "time": f"{report.duration:.1f} s"}  # fmt: skip
    return report


def _existing_scenarios() -> set[str]:
    """The scenario names of every test function now in this folder."""
    names = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        for name in re.findall(r"^def (test_\w+)\(", path.read_text(), re.MULTILINE):
            names.add(_scenario_name(name))
    return names


def _previous_rows() -> dict[str, str]:
    if not REPORT.exists():
        return {}
    alive = _existing_scenarios()
    rows = {}
    for line in REPORT.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] in alive:
            rows[cells[0]] = line
    return rows


def _order(name: str) -> tuple[int, str]:
    match = re.match(r"S(\d+)", name)
    return (int(match.group(1)) if match else 999, name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _RESULTS:
        return
    rows = _previous_rows()
    for name, data in _RESULTS.items():
        text = data["result"].replace("|", "/").replace("\n", " ")
        rows[name] = f"| {name} | {data['injected']} | {text} | {data['time']} |"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = "\n".join(rows[name] for name in sorted(rows, key=_order))
    REPORT.write_text(HEADER + body + f"\n\nLast written {stamp}.\n")
