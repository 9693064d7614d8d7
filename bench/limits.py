"""Fleet-wide limits: the cost of holding one per run, side by side with none, in ONE run.

    .venv/bin/python -m bench.limits [--micro 5000] [--runs 2000] [--repeats 3]

1. Micro: acquire + release of a concurrency slot on Redis (``slot_acquire.lua`` + ``ZREM``),
   one at a time from one client, through ``LimitGate`` as a run does; and one rate-window take
   (``rate_take.lua``). µs per operation, p50 and p99.
2. End to end: one agentcron async worker (``-c 1000``, guards on, PostgreSQL ledger, Redis
   leases), the 200 ms agent of ``bench.async_agents``; runs/s of a job that holds a fleet-wide
   limit for the whole run (concurrency 100000: never the bottleneck, only its cost) vs the same
   job without one, trials interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.async_agents import POSTGRES_URL, REDIS_URL, _celery, agentcron_enqueue, agentcron_env, measure

SCHEDULE = """
from agentcron import Job, Limit

LIMITS = [Limit("bench", concurrency=100000, ttl=60)]
JOBS = [
    Job("bench_async", agent="bench.async_agents:guarded_agent", schedule="@yearly",
        overlap="allow", max_retries=1, config={"seconds": 0.2}),
    Job("bench_limited", agent="bench.async_agents:guarded_agent", schedule="@yearly",
        overlap="allow", max_retries=1, config={"seconds": 0.2}, limits=["bench"]),
]
"""


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def micro(n: int) -> None:
    """µs per acquire+release (store and gate) and per rate take."""
    from agentcron.clock import SYSTEM_CLOCK
    from agentcron.limits import Limit, LimitGate
    from agentcron.limits.redis import RedisLimitStore

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    store = RedisLimitStore(client)
    gate = LimitGate(store, SYSTEM_CLOCK, wait=10)
    slot = Limit("micro", concurrency=1000, ttl=30)
    rate = Limit("micro-rate", per_minute=10**9, tokens_per_minute=10**12)
    for what, op in (
        ("store: acquire_slot + release_slot", lambda i: (store.acquire_slot(slot, f"h{i}"),
                                                          store.release_slot(slot, f"h{i}"))),
        ("gate: acquire + release (as a run)", lambda i: (gate.acquire(slot, 0, f"g{i}", 10),
                                                          gate.release(slot, f"g{i}"))),
        ("store: take_rate (1 request, 100 tokens)", lambda i: store.take_rate(rate, 100)),
    ):
        for i in range(200):
            op(-i - 1)  # warm up (script load, connection)
        client.delete("agentcron:limit:micro-rate:rate")
        samples = []
        for i in range(n):
            began = time.perf_counter()
            op(i)
            samples.append((time.perf_counter() - began) * 1e6)
        p50, p99 = _percentiles(samples)
        print(f"{what:<44} n={n}  p50 {p50:7.1f} µs  p99 {p99:7.1f} µs", flush=True)
    gate.close()
    client.flushdb()


def end_to_end(runs: int, repeats: int) -> None:
    """Runs/s with one limit held per run vs none, one async worker, trials interleaved."""
    from agentcron.ledger.store import Ledger

    Ledger(POSTGRES_URL).upgrade()
    schedule = Path(tempfile.mkdtemp(prefix="bench-limits-")) / "beat_schedule.py"
    schedule.write_text(SCHEDULE)
    argv = _celery("-Q", "agentcron.async", "-n", "limits@bench")
    rates: dict[str, list[float]] = {"no limit": [], "one limit held per run": []}
    cpu: dict[str, list[float]] = {"no limit": [], "one limit held per run": []}
    for _ in range(repeats):
        for name, job in (("no limit", "bench_async"), ("one limit held per run", "bench_limited")):
            split: dict[str, float] = {}
            rates[name] += measure(argv, agentcron_env(schedule, 1000),
                                   lambda k, t, job=job: agentcron_enqueue(job, k, t), runs, 1,
                                   cpu=split)  # fmt: skip
            cpu[name].append(split["worker main"])
    for name, found in rates.items():
        trials = ", ".join(f"{r:.1f}" for r in found)
        print(f"agentcron async worker, {name:<24} N={runs}  median "
              f"{statistics.median(found):7.1f} runs/s  ({trials}); worker CPU "
              f"{statistics.median(cpu[name]):.2f} ms/run", flush=True)
    ratio = statistics.median(rates["one limit held per run"]) / statistics.median(rates["no limit"])
    print(f"with a limit / without: {ratio:.3f} ({(1 - ratio) * 100:+.1f} % fewer runs/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    if options.micro:
        micro(options.micro)
    if options.runs:
        end_to_end(options.runs, options.repeats)


if __name__ == "__main__":
    main()
