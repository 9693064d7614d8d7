"""The pieces of ``python -m bench`` that need no service: statistics, target lines, the
environment table and the command line. No performance is asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import environment
from bench.__main__ import header, parse, write
from bench.harness import Section, Stats, Target, not_measured, quick_note, ratio, ratio_text, table

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("values", "median", "low", "high"),
    [([3.0], 3.0, 3.0, 3.0), ([5.0, 1.0, 3.0], 3.0, 1.0, 5.0), ([4.0, 1.0, 2.0, 3.0], 2.5, 1.0, 4.0)],
)
def test_stats_median_and_spread(values: list[float], median: float, low: float, high: float) -> None:
    stats = Stats.of(values)
    assert (stats.median, stats.low, stats.high, stats.count) == (median, low, high, len(values))


def test_stats_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no trials"):
        Stats.of([])


def test_stats_text_shows_median_then_spread() -> None:
    assert Stats.of([2.9, 3.4, 3.1]).text(2, "s") == "3.10 s (2.90-3.40, 3 trials)"
    assert Stats.of([1234.5]).text(0, "runs/s") == "1,234 runs/s (1 trial)"


def test_ratio_of_medians() -> None:
    assert ratio(562.0, 462.0) == pytest.approx(1.2164, abs=1e-4)
    assert ratio_text(ratio(562.0, 462.0)) == "1.22x"
    assert ratio(1.0, 0.0) is None
    assert ratio_text(None) == "—"


def test_target_line_format() -> None:
    met = Target("beat-on-broker", "2.10 s (1.90-2.40, 4 trials)", "<= 3 s", True)
    assert met.line() == "target beat-on-broker: 2.10 s (1.90-2.40, 4 trials) (goal <= 3 s): met"
    missed = Target("async-rss", "475 MB (1 trial)", "< 300 MB", False, "quick: 1,000")
    assert missed.line() == "target async-rss: 475 MB (1 trial) (quick: 1,000) (goal < 300 MB): not met"


def test_a_target_not_measured_is_never_met() -> None:
    line = not_measured("async-vs-arq", ">= 1.3x arq", "arq missing").line()
    assert line == "target async-vs-arq: not measured (arq missing) (goal >= 1.3x arq): not met"


def test_quick_note_only_when_the_size_is_smaller() -> None:
    assert quick_note(True, 10_000, 100_000) == "quick: 10,000"
    assert quick_note(True, 100_000, 100_000) == ""
    assert quick_note(False, 100_000, 100_000) == ""


def test_table_and_section_markdown() -> None:
    assert table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    section = Section("beat", (1.5, 2.25, 3.0), lines=["x"])
    text = section.markdown()
    assert text[0] == "## beat"
    assert "Load average before the section (1, 5, 15 min): 1.50, 2.25, 3.00" in text
    assert "x" in text


def test_cpu_model_from_cpuinfo() -> None:
    info = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n"
    assert environment.cpu_model(info) == "Intel(R) Xeon(R) Processor"
    assert environment.cpu_model("processor\t: 0\n")  # falls back to the platform's name


def test_versions_of_missing_packages_and_unreachable_servers() -> None:
    assert environment.package_version("no-such-package-agentcron") == "not installed"
    assert environment.package_version("celery")[0].isdigit()
    assert environment.redis_version("redis://127.0.0.1:1/0").startswith("unreachable: ")
    assert environment.postgres_version(
        "postgresql+psycopg://postgres@127.0.0.1:1/none").startswith("unreachable: ")


def test_commit_of_a_folder_that_is_not_a_repository(tmp_path: Path) -> None:
    assert environment.commit(tmp_path) == "unknown"
    assert environment.commit(ROOT) != "unknown"


def test_collect_names_every_fact_of_the_table() -> None:
    facts = environment.collect("postgresql+psycopg://postgres@127.0.0.1:1/none",
                                "redis://127.0.0.1:1/0")  # fmt: skip
    for label in ("Python", "celery", "kombu", "redis-py", "hiredis", "psycopg",
                  "PostgreSQL server", "Redis server", "CPU", "commit"):  # fmt: skip
        assert facts[label], label
    assert len(environment.load_average()) == 3


def test_dated_table_is_appended_per_date_and_commit(tmp_path: Path) -> None:
    facts = {"Python": "3.11.7", "commit": "abc1234"}
    lines = header(facts, ["async"], True, "2026-12-01 01:10")
    assert lines[0] == "# Benchmarks 2026-12-01 01:10 UTC, commit abc1234 (async, --quick)"
    assert "| Python | 3.11.7 |" in lines
    first = write(tmp_path, "2026-12-01 01:10", "abc1234", lines)
    second = write(tmp_path, "2026-12-01 01:40", "abc1234", ["more"])
    assert first == second == tmp_path / "2026-12-01-abc1234.md"
    assert first.read_text().endswith("more\n")


def test_command_line_sections_and_quick() -> None:
    assert parse([]).section == "all"
    options = parse(["beat", "--quick"])
    assert (options.section, options.quick) == ("beat", True)
    with pytest.raises(SystemExit) as exit_info:
        parse(["nope"])
    assert exit_info.value.code == 2


def test_help_smoke() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "usage: python -m bench" in done.stdout
    assert "--quick" in done.stdout


def test_arq_environment_missing_is_reported_not_raised(tmp_path: Path) -> None:
    assert environment.arq_environment(tmp_path / "no-env" / "bin" / "python") is None
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    assert environment.arq_environment(python) is None  # an environment without arq


def test_the_sync_filter_takes_names_that_hold_commas() -> None:
    from bench.section_sync import selected, systems

    found = systems()
    picked = selected(found, "agentcron guarded no-op, -c 2; plain Celery no-op, -c 2")
    assert [s.name for s in picked] == ["agentcron guarded no-op, -c 2", "plain Celery no-op, -c 2"]
    assert selected(found, " ; ") == found  # nothing asked: every row


def test_a_target_whose_rows_were_left_out_says_so() -> None:
    from bench.section_sync import Plan, _targets, selected, systems

    picked = selected(systems(), "agentcron guarded no-op, -c 2")
    for system in picked:
        system.rates = [100.0]
    lines = {t.name: t for t in _targets({s.name: s for s in picked}, True, Plan.for_mode(True))}
    assert lines["sync-vs-celery"].figure == "not measured"
    assert lines["sync-vs-celery"].note == "rows left out by AGENTCRON_BENCH_SYNC_ONLY"
    assert lines["sync-cpu-vs-celery"].figure == "not measured"
