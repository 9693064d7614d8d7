"""``python -m bench [beat|async|sync|all] [--quick]``: every benchmark beside its anchor, one run.

Prints and writes (``bench/out/<date>-<commit>.md``, appended when it exists) a dated markdown
table: the environment (versions, CPU, commit), the load average before each section, each
system's median with its spread and the ratio agentcron/anchor; it ends with one line per
target, ``target <name>: <figure> (goal <goal>): met`` or ``not met``.

Services: Redis ``AGENTCRON_TEST_REDIS_URL`` (flushed; default db 13) and PostgreSQL
``AGENTCRON_TEST_POSTGRES_URL`` (its bench rows are deleted); the beat section's ledger is
``AGENTCRON_BENCH_POSTGRES_URL``, by default the same database (its ``runs``, ``schedules`` and
``leases`` are emptied), and its broker a private ``redis-server``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import Section

SECTIONS = ("beat", "async", "sync")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test_workers"


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run agentcron's benchmarks beside their anchors in one run; print and "
        "write a dated table ending with one line per target.",
        epilog="See bench/README.md for each section's systems, sizes and services.")  # fmt: skip
    parser.add_argument("section", nargs="?", default="all", choices=(*SECTIONS, "all"),
                        help="which benchmarks to run (default: all)")  # fmt: skip
    parser.add_argument("--quick", action="store_true",
                        help="fewer trials and smaller sizes: a few minutes per section")  # fmt: skip
    parser.add_argument("--arq-python", type=Path,
                        default=ROOT / "bench" / ".arqenv" / "bin" / "python",
                        help="python of arq's own environment (default: bench/.arqenv)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out",
                        help="folder of the dated tables")  # fmt: skip
    return parser.parse_args(argv)


def _configure() -> tuple[str, str]:
    """The Redis and PostgreSQL URLs, exported before the bench modules read them."""
    redis_url = os.environ.setdefault("AGENTCRON_TEST_REDIS_URL", DEFAULT_REDIS)
    postgres_url = os.environ.setdefault("AGENTCRON_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    os.environ.setdefault("AGENTCRON_BENCH_POSTGRES_URL", postgres_url)
    os.environ.setdefault("AGENTCRON_BROKER_URL", redis_url)
    return redis_url, postgres_url


def header(facts: dict[str, str], sections: Sequence[str], quick: bool, started: str) -> list[str]:
    """The table's title and environment lines."""
    mode = "--quick" if quick else "full"
    lines = [f"# Benchmarks {started} UTC, commit {facts['commit']} ({', '.join(sections)}, {mode})",
             "", "| environment | |", "|---|---|"]  # fmt: skip
    lines += [f"| {label} | {value} |" for label, value in facts.items()]
    return [*lines, ""]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections; 0 when every section ran (targets met or not), 1 when one failed
    (e.g. a service is down)."""
    options = parse(argv)
    redis_url, postgres_url = _configure()
    from bench import environment, harness

    sections = list(SECTIONS) if options.section == "all" else [options.section]
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    facts = environment.collect(postgres_url, redis_url)
    lines = header(facts, sections, options.quick, started)
    print("\n".join(lines), flush=True)
    targets: list[harness.Target] = []
    failed = False
    for name in sections:
        section = Section(name, environment.load_average())
        try:
            _run(name, options, section)
        except Exception as error:  # one clear line: which section, what failed
            print(f"bench {name}: failed: {type(error).__name__}: {error}", file=sys.stderr)
            section.lines.append(f"**failed**: {type(error).__name__}: {error}")
            section.targets.append(harness.not_measured(name, "see above", "section failed"))
            failed = True
        text = section.markdown()
        print("\n".join(text), flush=True)
        lines += text
        targets += section.targets
    lines += ["## Targets", "", "```", *(t.line() for t in targets), "```", ""]
    path = write(options.out, started, facts["commit"], lines)
    print(f"written to {path}")
    for target in targets:
        print(target.line())
    return 1 if failed else 0


def _run(name: str, options: argparse.Namespace, section: Section) -> None:
    if name == "beat":
        from bench import section_beat

        section_beat.run(options.quick, section)
    elif name == "async":
        from bench import section_async

        section_async.run(options.quick, section, options.arq_python)
    else:
        from bench import section_sync

        section_sync.run(options.quick, section)


def write(folder: Path, started: str, commit: str, lines: Sequence[str]) -> Path:
    """Append ``lines`` to ``<folder>/<date>-<commit>.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{started[:10]}-{commit}.md"
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
