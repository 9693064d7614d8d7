"""ctx.report: checked when made, kept only for the succeeded attempt, with its delivery rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.errors import ConfigError
from agentcron.ledger.records import RunState
from agentcron.reports import ReportError, make_report
from agentcron.reports.records import list_reports
from tests.unit.test_guard import World, make_spec

TARGETS = ["mailto:team@example.com", "https://hooks.example.com/x"]


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> World:
    return World(tmp_path, clock)


def deliveries(world: World) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from agentcron.ledger.outputs import DELIVERIES

    with world.ledger.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(DELIVERIES).order_by(DELIVERIES.c.id))]


def test_a_failed_attempt_s_reports_are_dropped_and_the_success_s_kept(world: World) -> None:
    def agent(ctx: RunContext) -> str:
        ctx.report(f"attempt {ctx.attempt}", f"# Draft {ctx.attempt}")
        if ctx.attempt == 1:
            raise RuntimeError("failed after reporting")
        ctx.report("appendix", {"rows": [1, 2]}, attachments={"data.csv": b"a,b\n1,2\n"})
        return "ok"

    spec = make_spec(agent, max_retries=2, backoff_base=0, deliver=TARGETS)
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.SUCCEEDED
    reports = list_reports(world.ledger.engine)
    assert [(r.title, r.seq, r.format) for r in reversed(reports)] == [
        ("attempt 2", 1, "markdown"), ("appendix", 2, "json")]
    assert reports[0].attachments[0].data == b"a,b\n1,2\n"
    rows = deliveries(world)
    assert [(r["seq"], r["kind"], r["state"]) for r in rows] == [
        (1, "email", "pending"), (1, "webhook", "pending"),
        (2, "email", "pending"), (2, "webhook", "pending")]


def test_a_run_that_fails_for_good_keeps_no_report(world: World) -> None:
    def agent(ctx: RunContext) -> None:
        ctx.report("never kept", "body")
        raise RuntimeError("no")

    spec = make_spec(agent, max_retries=1, deliver=TARGETS)
    assert world.guard().run_sync(spec, world.message(spec)).state is RunState.FAILED
    assert list_reports(world.ledger.engine) == [] and deliveries(world) == []


def test_an_unserialisable_result_drops_the_reports(world: World) -> None:
    def agent(ctx: RunContext) -> Any:
        ctx.report("kept?", "no")
        return {1, 2}

    spec = make_spec(agent, max_retries=1, deliver=TARGETS)
    assert world.guard().run_sync(spec, world.message(spec)).state is RunState.FAILED
    assert list_reports(world.ledger.engine) == [] and deliveries(world) == []


async def test_async_agents_report_too(world: World) -> None:
    async def agent(ctx: RunContext) -> None:
        ctx.report("async", "text body", format="text")

    spec = make_spec(agent, deliver=["slack:https://hooks.slack.com/services/T/B/X"])
    outcome = await world.guard().run_async(spec, world.message(spec))
    assert outcome.state is RunState.SUCCEEDED
    [report] = list_reports(world.ledger.engine, job=spec.name)
    assert (report.title, report.format, report.text()) == ("async", "text", "text body")
    assert [r["kind"] for r in deliveries(world)] == ["slack"]


def test_a_job_without_targets_keeps_reports_and_no_deliveries(world: World) -> None:
    spec = make_spec(lambda ctx: ctx.report("t", "b"))
    world.guard().run_sync(spec, world.message(spec))
    assert len(list_reports(world.ledger.engine)) == 1 and deliveries(world) == []


@pytest.mark.parametrize(("args", "message"), [
    (("", "b"), "title must be non-empty"),
    (("a\nb", "b"), "one line"),
    (("t", 3), "must be text, a dict or a list"),
    (("t", {"x": {1, 2}}), "not JSON"),
    (("t", "b", "pdf"), "format 'pdf' unknown"),
    (("t", "b", "text", {"../x": b""}), "plain file name"),
    (("t", "b", "text", {"x.bin": 3}), "must be bytes"),
])
def test_bad_reports_name_what_is_wrong(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        make_report(*args)


@pytest.mark.parametrize(("deliver", "message"), [
    ("mailto:a@example.com", "must be a list"),
    (["mailto:nobody"], "not an email address"),
    (["ftp://x.example.com/"], "unknown target"),
    (["https://"], "unknown target"),
    (["https://u:secret@h.example.com/x"], "no password"),
    (["mailto:a@example.com\r\nBcc: x@example.com"], "no spaces or control"),
    (["https://h.example.com/x", "https://h.example.com/x"], "listed twice"),
    ([42], "a target is text"),
])
def test_bad_targets_are_refused_at_registration(deliver: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        make_spec(lambda ctx: None, name="mailer", deliver=deliver)
    assert "job 'mailer': deliver:" in str(caught.value)
    assert "secret" not in str(caught.value)
