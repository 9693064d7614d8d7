"""A plain script: one agent on a schedule, no broker, no event loop of your own.

``.venv/bin/python -m examples.inprocess_script --schedule "*/5s" --runs 3`` scans the shipped
server log at three 5-second slots with the thread-based ``AgentScheduler``, then stops and prints
the statistics. Add ``--database-url sqlite:///runs.sqlite`` to record every window in a ledger
(two copies of the script then run each window once; ``agentcron runs`` shows the history).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from typing import Any

from agentcron.inprocess import AgentScheduler
from examples.logscan import scan


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the schedule until ``--runs`` windows have succeeded; return the statistics."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedule", default="*/5s")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    enough = threading.Event()
    done: list[str] = []

    def on_success(report: dict[str, Any]) -> None:
        done.append(str(report["window"]))
        print(f"{report['window']}: {len(report['anomalies'])} anomalies", flush=True)
        if len(done) >= args.runs:
            enough.set()

    scheduler = AgentScheduler(scan, "Scan the server log", config={"log": "server.log"},
                               on_success=on_success, name="script_log_scan",
                               database_url=args.database_url)
    scheduler.start(args.schedule, max_retries=3)
    with contextlib.suppress(KeyboardInterrupt):
        enough.wait()
    return scheduler.stop(timeout=10)


if __name__ == "__main__":
    print(json.dumps(main(), default=str, indent=2))
