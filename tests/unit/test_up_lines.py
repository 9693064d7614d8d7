"""What `agentcron up` prints: run lines with what the agent produced, statistics per kind."""

from __future__ import annotations

from datetime import UTC, datetime

from agentcron.console.data import short_result
from agentcron.ledger.records import RunRecord, RunState
from agentcron.up_stats import combine, describe, parse_stats
from agentcron.up_view import describe_run

SLOT = datetime(2026, 3, 17, 6, tzinfo=UTC)


def _record(**kw: object) -> RunRecord:
    values: dict[str, object] = dict(
        job="j", window_start=SLOT, window_key="j@2026-03-17T06:00:00Z", slot=SLOT,
        trigger="schedule", state=RunState.SUCCEEDED, attempt=1, token=1, worker_id="w",
        scheduled_at=SLOT, started_at=SLOT, finished_at=SLOT, duration=0.41, error_type=None,
        error_message=None, result=None)  # fmt: skip
    values.update(kw)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_short_result_prefers_a_summary_then_key_values() -> None:
    assert short_result({"summary": "3 anomalies", "rows": [1, 2]}) == "3 anomalies"
    assert short_result({"window": "j@x", "customers": 200, "top": [1, 2, 3], "by": {"a": 1}}) == (
        "customers=200 top=[3 items] by={…}")
    assert short_result("line one\nline two") == "line one line two"
    assert short_result("x" * 500, 20) == "x" * 19 + "…"
    assert short_result(None) == ""


def test_run_line_shows_the_result_or_the_error_on_one_line() -> None:
    line = describe_run(_record(result={"summary": "wrote the digest"}))
    assert line.endswith("0.41s  -> wrote the digest")
    failed = describe_run(_record(state=RunState.FAILED, error_type="ValueError",
                                  error_message="bad\ninput"))  # fmt: skip
    assert failed.endswith("ValueError: bad input") and "\n" not in failed


def test_statistics_add_up_over_processes_with_a_label() -> None:
    lines = [
        "[2026-03-17 06:00:00,000: INFO/ForkPoolWorker-1] run statistics: runs=3, successes=2, "
        "failures=1, retries=0, duplicates=1, skipped=0, mean_duration=1, p95_duration=2",
        "x run statistics: runs=1, successes=1, failures=0, retries=2, duplicates=0, "
        "mean_duration=5, p95_duration=5",
        "an unrelated line",
    ]
    found = [s for line in lines if (s := parse_stats(line))]
    text = describe("sync worker (prefork)", *combine(found))
    assert text == ("sync worker (prefork), 2 processes: runs=4 successes=3 failures=1 retries=2 "
                    "duplicates=1 mean=2.00s p95=5.00s")


def test_a_prefork_main_process_adds_its_childrens_outcomes_not_a_process() -> None:
    from agentcron.up_stats import combine, parse_stats

    lines = [
        "run statistics: runs=0, successes=0, deferred=3, mean_duration=0.2, p95_duration=0.3",
        "run statistics: runs=1, duplicates=1, deferred=1, mean_duration=0.6, p95_duration=0.6",
        "run statistics: runs=4, successes=4, deferred=0, mean_duration=0, p95_duration=0, "
        "settled=4, settle_batches=2",
    ]
    processes, totals = combine(stats for line in lines if (stats := parse_stats(line)))
    assert processes == 2
    assert totals["runs"] == 5 and totals["successes"] == 4 and totals["duplicates"] == 1
    assert abs(totals["mean_duration"] - (0.2 * 3 + 0.6 * 2) / 5) < 1e-9
    assert totals["p95_duration"] == 0.6
