"""What the broker and the ledger sustain at most on this machine: their saturation points.

    .venv/bin/python -m bench.saturation [--windows 20000] [--batch 100] [--clients 1,2,4]

ledger: C client threads (one connection each) claim and then complete windows through
``Ledger.claim_many`` / ``Ledger.complete_many`` in batches of ``--batch`` (what a worker's
ledger batcher sends), on the PostgreSQL database of ``AGENTCRON_TEST_POSTGRES_URL``; reported:
claims+completions per second over all clients (one run = one claim and one completion).
broker: a private ``redis-server``; ``redis-benchmark`` for LPUSH/RPOP one command per round
trip (-P 1) and pipelined 16 deep (-P 16), and the beat's way (500 envelopes per LPUSH, 5,000
per round trip, ``bench.floor.push``) in envelopes per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import Stats, table

POSTGRES_URL = os.environ.get("AGENTCRON_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test_workers")  # fmt: skip
JOB = "bench_saturation"


def _ledger_trial(clients: int, windows: int, batch: int, trial: int) -> float:
    """Runs/s (a claim plus a completion each) of ``clients`` threads over ``windows`` windows."""
    import sqlalchemy

    from agentcron.ledger.records import ClaimRequest, CompleteRequest, NewWindow, RunState
    from agentcron.ledger.store import Ledger
    from agentcron.windows import window_key

    ledger = Ledger(POSTGRES_URL)
    with ledger.engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"DELETE FROM runs WHERE job = '{JOB}'"))
    base = datetime(2040, 1, 1, tzinfo=UTC) + timedelta(days=trial)
    starts = [base + timedelta(minutes=i) for i in range(windows)]
    all_windows = [NewWindow(JOB, s, window_key(JOB, s), s) for s in starts]
    share = [all_windows[c::clients] for c in range(clients)]
    errors: list[BaseException] = []

    def client(number: int) -> None:
        try:
            mine = share[number]
            for first in range(0, len(mine), batch):
                part = mine[first:first + batch]
                tokens = [(number + 1) * 10_000_000 + first + i for i in range(len(part))]
                ledger.claim_many([ClaimRequest(w, t, f"bench-{number}", 3, running=True)
                                   for w, t in zip(part, tokens, strict=True)])  # fmt: skip
                ledger.complete_many([CompleteRequest(w.job, w.window_start, t, RunState.SUCCEEDED,
                                                      None, None, None, 0.01)
                                      for w, t in zip(part, tokens, strict=True)])  # fmt: skip
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    with ledger.engine.begin() as conn:
        done = conn.execute(sqlalchemy.text(
            f"SELECT count(*) FROM runs WHERE job = '{JOB}' AND state = 'succeeded'")).scalar_one()
        conn.execute(sqlalchemy.text(f"DELETE FROM runs WHERE job = '{JOB}'"))
    ledger.close()
    if done != windows:
        raise RuntimeError(f"{done} of {windows} runs completed")
    return windows / elapsed


def ledger_rows(windows: int, batch: int, client_counts: list[int], trials: int) -> list[list[str]]:
    """One row per client count; trials alternate between the counts."""
    from agentcron.ledger.store import Ledger

    Ledger(POSTGRES_URL).upgrade()
    rates: dict[int, list[float]] = {c: [] for c in client_counts}
    for trial in range(trials):
        for clients in client_counts:
            rates[clients].append(_ledger_trial(clients, windows, batch, trial))
            print(f"ledger, {clients} client(s): {rates[clients][-1]:.0f} runs/s", flush=True)
    return [[f"ledger: claim_many + complete_many, batches of {batch}, {c} client thread(s)",
             f"{windows:,}", Stats.of(v).text(0, "runs/s")] for c, v in rates.items()]  # fmt: skip


def broker_rows(envelopes: int, trials: int) -> list[list[str]]:
    """redis-benchmark and the beat's pipelined multi-value LPUSH against a private Redis."""
    from bench import floor
    from bench.beat_emission import Broker

    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-sat-") as folder:
        broker = Broker(Path(folder))
        try:
            binary = shutil.which("redis-benchmark")
            for depth in ("1", "16"):
                if binary is None:
                    break
                found: dict[str, list[float]] = {}
                for _ in range(trials):
                    out = subprocess.run([binary, "-p", str(broker.port), "-q", "-n", "200000",
                                          "-P", depth, "-t", "lpush,rpop"], check=True,
                                         capture_output=True, text=True).stdout  # fmt: skip
                    for line in out.replace("\r", "\n").splitlines():
                        if "requests per second" in line:
                            name, _, rest = line.partition(":")
                            found.setdefault(name.strip(), []).append(float(rest.split()[0]))
                for name, values in found.items():
                    rows.append([f"broker: redis-benchmark {name}, -P {depth}, 50 clients",
                                 "200,000", Stats.of(values).text(0, "commands/s")])  # fmt: skip
            _rows, payloads = floor.build(envelopes, floor.boundary_of(0))
            rates = []
            for _ in range(trials):
                began = time.perf_counter()
                floor.push(broker.client, payloads)
                rates.append(envelopes / (time.perf_counter() - began))
                broker.client.delete(floor.SCRATCH)
            rows.append(["broker: beat's LPUSH, 500 envelopes each, 5,000 per round trip",
                         f"{envelopes:,}", Stats.of(rates).text(0, "envelopes/s")])  # fmt: skip
        finally:
            broker.close()
    return rows


def main() -> None:
    """Print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--trials", type=int, default=3)
    options = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = broker_rows(100_000, options.trials)
    rows += ledger_rows(options.windows, options.batch,
                        [int(c) for c in options.clients.split(",") if c], options.trials)
    print(f"\nLoad average before (1, 5, 15 min): {load}; after: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("\n".join(table(["what", "N", "rate: median (min-max, trials)"], rows)))


if __name__ == "__main__":
    main()
