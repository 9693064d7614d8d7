"""The one attempt loop (guard and in-process schedulers) and the one RunReport."""

from __future__ import annotations

import random

from agentcron.backoff import backoff_delay
from agentcron.runloop import Backoff, RunReport, attempt_loop


class Boom(Exception):
    pass


class Final(Exception):
    pass


def failing(times: int, calls: list[int], error: type[Exception] = Boom):
    async def call(attempt: int) -> str:
        calls.append(attempt)
        if len(calls) <= times:
            raise error(f"attempt {attempt}")
        return f"ok {attempt}"

    return call


async def next_attempt(attempt: int, exc: Exception, delay: float) -> int | None:
    return attempt + 1


async def test_retries_with_the_shared_backoff_until_an_attempt_returns() -> None:
    calls: list[int] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> bool:
        slept.append(seconds)
        return True

    ended = await attempt_loop(failing(2, calls), first=1, max_attempts=5,
                               backoff=Backoff(1.0, 60.0, random.Random(7)),
                               retry=next_attempt, sleep=sleep)  # fmt: skip
    assert ended.succeeded and ended.result == "ok 3" and ended.attempt == 3
    assert calls == [1, 2, 3]
    rng = random.Random(7)
    assert slept == [backoff_delay(1, 1.0, 60.0, rng), backoff_delay(2, 1.0, 60.0, rng)]


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    calls: list[int] = []
    ended = await attempt_loop(failing(9, calls), first=1, max_attempts=3, backoff=Backoff(0, 0),
                               retry=next_attempt, sleep=_awake)  # fmt: skip
    assert not ended.succeeded and not ended.stopped
    assert ended.attempt == 3 and str(ended.error) == "attempt 3" and calls == [1, 2, 3]


async def test_a_final_error_ends_at_once() -> None:
    calls: list[int] = []
    ended = await attempt_loop(failing(9, calls, Final), first=1, max_attempts=3,
                               backoff=Backoff(0, 0), retry=next_attempt, sleep=_awake,
                               final=(Final,))  # fmt: skip
    assert isinstance(ended.error, Final) and ended.attempt == 1 and calls == [1]


async def test_the_retry_hook_numbers_the_next_attempt_or_stops_the_loop() -> None:
    calls: list[int] = []

    async def from_ledger(attempt: int, exc: Exception, delay: float) -> int | None:
        return 7 if attempt == 2 else None  # the ledger's number; then a newer holder fenced us

    ended = await attempt_loop(failing(9, calls), first=2, max_attempts=9, backoff=Backoff(0, 0),
                               retry=from_ledger, sleep=_awake)  # fmt: skip
    assert calls == [2, 7] and ended.stopped and ended.attempt == 7 and not ended.succeeded


async def test_a_sleep_cut_short_stops_the_loop() -> None:
    calls: list[int] = []

    async def stopping(seconds: float) -> bool:
        return False

    ended = await attempt_loop(failing(9, calls), first=1, max_attempts=5, backoff=Backoff(0, 0),
                               retry=next_attempt, sleep=stopping)  # fmt: skip
    assert calls == [1] and ended.stopped and str(ended.error) == "attempt 1"


def test_one_run_report_type_for_the_guard_and_the_in_process_schedulers() -> None:
    from agentcron.guard import RunReport as GuardReport
    from agentcron.inprocess import RunReport as InprocessReport

    assert GuardReport is RunReport and InprocessReport is RunReport
    report = RunReport("job", "job@2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00", "failed", 2)
    assert (report.result, report.error, report.detail) == (None, None, "")


async def _awake(seconds: float) -> bool:
    return True


async def test_a_first_attempt_made_by_the_caller_is_retried_not_repeated() -> None:
    """``failed=``: attempt ``first`` already raised (the guard makes its first attempt itself,
    keeping no loop frame per run in flight); the loop backs off and goes on from the next."""
    calls: list[int] = []
    retried: list[tuple[int, str]] = []

    async def retry(attempt: int, exc: Exception, delay: float) -> int | None:
        retried.append((attempt, str(exc)))
        return attempt + 1

    ended = await attempt_loop(failing(0, calls), first=1, max_attempts=3, backoff=Backoff(0, 0),
                               retry=retry, sleep=_awake, failed=Boom("attempt 1"))  # fmt: skip
    assert ended.succeeded and ended.result == "ok 2" and calls == [2]
    assert retried == [(1, "attempt 1")]
    final = await attempt_loop(failing(0, calls), first=3, max_attempts=3, backoff=Backoff(0, 0),
                               retry=retry, sleep=_awake, failed=Boom("attempt 3"))  # fmt: skip
    assert not final.succeeded and str(final.error) == "attempt 3" and calls == [2]
