"""Usage per run, prices, budget periods (DST) and budgets in the guard (SQLite, frozen clock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agentcron.clock import FrozenClock
from agentcron.context import RunContext
from agentcron.errors import ConfigError
from agentcron.ledger.records import RunState
from agentcron.schedule_file import load_jobs
from agentcron.spend.budgets import Budget, BudgetExceeded
from agentcron.spend.periods import period_bounds
from agentcron.spend.usage import UsageMeter, parse_prices, usage_of
from tests.unit.test_guard import World, make_spec

PRICES = '{"m": {"input": 1.0, "output": 2.0}}'


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> World:
    return World(tmp_path, clock)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_usage_adds_up_by_model_with_prices() -> None:
    meter = UsageMeter(parse_prices(PRICES))
    assert meter.add("m", 1_000_000, 500_000) == pytest.approx(2.0)
    meter.add("m", 10, 0)
    meter.add("other", 5, 5, cost_usd=0.25)
    meter.add("unpriced", 100, 100)
    snap = meter.snapshot()
    assert snap["m"].input_tokens == 1_000_010 and snap["m"].calls == 2
    assert meter.cost_usd == pytest.approx(2.0 + 10 / 1e6 + 0.25)
    assert meter.tokens == 1_000_010 + 500_000 + 10 + 200


@pytest.mark.parametrize("bad", [
    ("m", -1, 0, None), ("m", 1.5, 0, None), ("m", True, 0, None), ("", 1, 1, None),
    ("m", 1, 1, float("nan")), ("m", 1, 1, -0.1), ("x" * 200, 1, 1, None),
])  # fmt: skip
def test_bad_usage_is_one_clear_error(bad: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        UsageMeter().add(*bad)


@pytest.mark.parametrize("raw", ["{", "[]", '{"m": 3}', '{"m": {"input": -1}}',
                                 '{"m": {"inp": 1}}'])
def test_bad_prices_are_rejected(raw: str) -> None:
    with pytest.raises(ValueError, match="AGENTCRON_PRICES"):
        parse_prices(raw)


def test_usage_from_openai_and_anthropic_shapes() -> None:
    openai = SimpleNamespace(model="gpt-x", usage=SimpleNamespace(prompt_tokens=12,
                                                                  completion_tokens=3))
    anthropic = {"model": "claude-x", "usage": {"input_tokens": 7, "output_tokens": 2}}
    assert usage_of(openai) == ("gpt-x", 12, 3)
    assert usage_of(anthropic) == ("claude-x", 7, 2)
    with pytest.raises(ValueError, match="usage"):
        usage_of(SimpleNamespace(model="x"))
    ctx = RunContext("j", "t", {}, "j@2026-03-17T06:00:00Z", utc("2026-03-17T06:00:00Z"),
                     utc("2026-03-17T06:00:00Z"))
    ctx.usage_from(openai)
    ctx.usage("gpt-x", 1, 1)
    assert ctx.meter.snapshot()["gpt-x"].input_tokens == 13


@pytest.mark.parametrize(("now", "per", "tz", "start", "end"), [
    ("2026-03-17T06:00:00Z", "day", "UTC", "2026-03-17T00:00:00Z", "2026-03-18T00:00:00Z"),
    # New York springs forward on 2026-03-08: that day is 23 hours long
    ("2026-03-08T12:00:00Z", "day", "America/New_York", "2026-03-08T05:00:00Z",
     "2026-03-09T04:00:00Z"),
    ("2026-03-09T03:59:59Z", "day", "America/New_York", "2026-03-08T05:00:00Z",
     "2026-03-09T04:00:00Z"),
    ("2026-03-09T04:00:00Z", "day", "America/New_York", "2026-03-09T04:00:00Z",
     "2026-03-10T04:00:00Z"),
    # ... and falls back on 2026-11-01: 25 hours
    ("2026-11-01T12:00:00Z", "day", "America/New_York", "2026-11-01T04:00:00Z",
     "2026-11-02T05:00:00Z"),
    ("2026-11-02T04:59:59Z", "day", "America/New_York", "2026-11-01T04:00:00Z",
     "2026-11-02T05:00:00Z"),
    ("2026-03-11T12:00:00Z", "week", "Europe/Berlin", "2026-03-08T23:00:00Z",
     "2026-03-15T23:00:00Z"),
    ("2026-03-31T21:59:59Z", "month", "Europe/Berlin", "2026-02-28T23:00:00Z",
     "2026-03-31T22:00:00Z"),
    ("2026-12-31T23:00:00Z", "month", "UTC", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    # Santiago's clocks skip local midnight (00:00 -> 01:00) on 2026-09-06
    ("2026-09-06T05:30:00Z", "day", "America/Santiago", "2026-09-06T04:00:00Z",
     "2026-09-07T03:00:00Z"),
])  # fmt: skip
def test_budget_periods_roll_over_at_local_midnight(now: str, per: str, tz: str, start: str,
                                                    end: str) -> None:  # fmt: skip
    assert period_bounds(utc(now), per, tz) == (utc(start), utc(end))


def spending(cost: float, calls: list[str] | None = None) -> Any:
    def agent(ctx: RunContext) -> str:
        if calls is not None:
            calls.append(ctx.window_key)
        ctx.usage("m", input_tokens=100, output_tokens=10, cost_usd=cost)
        return "ok"

    return agent


def test_a_spent_budget_skips_windows_until_its_day_rolls_over_in_local_time(
    tmp_path: Path,
) -> None:
    clock = FrozenClock("2026-03-07T23:00:00Z")  # 18:00 in New York, the day before the change
    here = World(tmp_path, clock)
    here.settings = here.settings.with_overrides(prices=PRICES)
    guard = here.guard()
    alerts: list[tuple[str, str]] = []
    guard.spend.on_exhausted.append(lambda spent, job: alerts.append((spent.budget.name, job)))
    calls: list[str] = []
    spec = make_spec(spending(0.3, calls), schedule="*/10 * * * *", tz="America/New_York",
                     budget={"cost_usd": 1.0, "per": "day"})  # fmt: skip
    outcomes = []
    for minute in range(0, 60, 10):  # six windows, 0.3 each: four run, two are skipped
        slot = f"2026-03-07T23:{minute:02d}:00Z"
        clock.set(slot)
        outcomes.append(guard.run_sync(spec, here.message(spec, slot)))
    states = [o.state for o in outcomes]
    assert states == [RunState.SUCCEEDED] * 4 + [RunState.SKIPPED] * 2
    assert len(calls) == 4
    reason = outcomes[4].error or ""
    assert "budget 'job:job' spent: $1.2000 of $1" in reason and "per day" in reason
    assert "resets 2026-03-08T05:00:00Z" in reason  # local midnight in New York
    assert alerts == [("job:job", "job")]  # once per period, not per skipped window
    clock.set("2026-03-08T05:00:00Z")  # local midnight: a new day, a new budget
    slot = "2026-03-08T05:00:00Z"
    assert guard.run_sync(spec, here.message(spec, slot)).state is RunState.SUCCEEDED
    record = here.ledger.get_by_key(here.message(spec, slot).window_key)
    assert record is not None and record.state is RunState.SUCCEEDED
    usage = guard.spend.store.of_window("job", here.message(spec, slot).window_start)
    assert usage["m"].cost_usd == pytest.approx(0.3) and usage["m"].input_tokens == 100
    # 2026-03-08 springs forward at 02:00 local: that day is 23 hours, the next midnight is EDT
    for slot in ("2026-03-08T12:00:00Z", "2026-03-08T20:00:00Z", "2026-03-09T01:00:00Z"):
        clock.set(slot)
        assert guard.run_sync(spec, here.message(spec, slot)).state is RunState.SUCCEEDED
    clock.set("2026-03-09T03:50:00Z")  # 23:50 EDT, still 2026-03-08 in New York: spent
    late = guard.run_sync(spec, here.message(spec, "2026-03-09T03:50:00Z"))
    assert late.state is RunState.SKIPPED and "resets 2026-03-09T04:00:00Z" in (late.error or "")
    clock.set("2026-03-09T04:00:00Z")  # local midnight after the change: a fresh budget
    fresh = guard.run_sync(spec, here.message(spec, "2026-03-09T04:00:00Z"))
    assert fresh.state is RunState.SUCCEEDED
    assert alerts == [("job:job", "job")] * 2  # once per period


def test_a_token_budget_and_usage_are_recorded_for_async_agents(world: World) -> None:
    async def agent(ctx: RunContext) -> str:
        await asyncio.sleep(0)
        ctx.usage("m", 600, 0)
        ctx.usage("n", 0, 500)
        return "ok"

    spec = make_spec(agent, budget={"tokens": 1000, "per": "month"})
    guard = world.guard()
    first = asyncio.run(guard.run_async(spec, world.message(spec)))
    second = asyncio.run(guard.run_async(spec, world.message(spec, "2026-03-18T06:00:00Z")))
    assert first.state is RunState.SUCCEEDED and second.state is RunState.SKIPPED
    assert "1100 of 1000 tokens per month" in (second.error or "")


def test_crossing_a_budget_mid_run_cancels_and_hard_raises(world: World) -> None:
    seen: list[bool] = []

    def soft(ctx: RunContext) -> str:
        ctx.usage("m", 0, 0, cost_usd=0.6)
        seen.append(ctx.cancel_requested)
        ctx.usage("m", 0, 0, cost_usd=0.6)
        seen.append(ctx.cancel_requested)
        return "stopped early"

    spec = make_spec(soft, budget={"cost_usd": 1.0, "per": "day"})
    assert world.guard().run_sync(spec, world.message(spec)).state is RunState.SUCCEEDED
    assert seen == [False, True]

    def hard(ctx: RunContext) -> str:
        for _ in range(5):
            ctx.usage("m", 0, 0, cost_usd=0.6)
        return "never"

    spec = make_spec(hard, name="hard", max_retries=3,
                     budget={"cost_usd": 1.0, "per": "day", "hard": True})  # fmt: skip
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.CANCELLED and outcome.attempts == 1
    assert "budget 'job:hard' spent" in (outcome.error or "")
    assert issubclass(BudgetExceeded, Exception)


def test_named_budgets_are_shared_and_checked(tmp_path: Path) -> None:
    (tmp_path / "agents.py").write_text("def run(ctx):\n    return 1\n")
    (tmp_path / "jobs.py").write_text(
        "from agentcron import Job, Budget, Limit\n"
        "BUDGETS = [Budget('prod', cost_usd=5, per='week', tz='Europe/Berlin')]\n"
        "LIMITS = [Limit('openai', concurrency=2)]\n"
        "JOBS = [Job('a', agent='agents:run', schedule='@daily', budget='prod',"
        " limits=['openai']),\n"
        "        Job('b', agent='agents:run', schedule='@daily', budget='prod'),\n"
        "        Job('c', agent='agents:run', schedule='@daily')]\n")
    a, b, c = load_jobs(tmp_path / "jobs.py")
    assert a.budget == b.budget == Budget("prod", cost_usd=5, per="week", tz="Europe/Berlin")
    assert a.budget_jobs == b.budget_jobs == ("a", "b") and c.budget is None
    assert a.limits == ("openai",) and set(a.declared_limits) == {"openai"}
    (tmp_path / "bad.py").write_text(
        "from agentcron import Job, Budget\n"
        "BUDGETS = [Budget('prod', per='fortnight', cost_usd=1)]\n"
        "JOBS = [Job('a', agent='agents:run', schedule='@daily', budget='nope',"
        " limits=['nope'])]\n")
    with pytest.raises(ConfigError) as err:
        load_jobs(tmp_path / "bad.py")
    assert "fortnight" in str(err.value)
    (tmp_path / "obj.py").write_text(
        "from agentcron import Job, Budget\n"
        "JOBS = [Job('a', agent='agents:run', schedule='@daily', budget=Budget('x', tokens=1))]\n")
    with pytest.raises(ConfigError, match="declare it in BUDGETS"):
        load_jobs(tmp_path / "obj.py")
    with pytest.raises(ConfigError, match="no such limit"):
        (tmp_path / "bad.py").write_text(
            "from agentcron import Job\n"
            "JOBS = [Job('a', agent='agents:run', schedule='@daily', limits=['nope'])]\n")
        load_jobs(tmp_path / "bad.py")


def test_spend_and_limit_metrics(world: World) -> None:
    from prometheus_client import CollectorRegistry

    from agentcron.spend.prom import SpendMetrics

    registry = CollectorRegistry()
    metrics = SpendMetrics(registry)
    guard = world.guard()
    guard.spend.on_usage.append(metrics.usage)
    guard.spend.on_skip.append(lambda spent, job: metrics.skips.labels(spent.budget.name,
                                                                       job).inc())
    guard.limits.observe = metrics.limit_event
    spec = make_spec(spending(0.6), budget={"cost_usd": 1.0, "per": "day"})
    for slot in ("2026-03-17T06:00:00Z", "2026-03-17T07:00:00Z", "2026-03-17T08:00:00Z"):
        guard.run_sync(spec, world.message(spec, slot))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("agentcron_llm_tokens_total", job="job", model="m", kind="input") == 200
    assert value("agentcron_llm_cost_usd_total", job="job", model="m") == pytest.approx(1.2)
    assert value("agentcron_budget_used_ratio", budget="job:job") == pytest.approx(1.2)
    assert value("agentcron_budget_left_usd", budget="job:job") == 0.0
    assert value("agentcron_budget_skips_total", budget="job:job", job="job") == 1
    guard.limits.observe("openai", "waiting", 1)
    assert value("agentcron_limit_waiting", limit="openai") == 1


def test_each_attempt_records_its_share_and_the_budget_sees_all_of_them(world: World) -> None:
    seen: list[bool] = []

    def flaky(ctx: RunContext) -> str:
        ctx.usage("m", 10, 0, cost_usd=0.6)
        seen.append(ctx.cancel_requested)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails after spending")
        return "ok"

    spec = make_spec(flaky, max_retries=2, backoff_base=0, backoff_cap=0,
                     budget={"cost_usd": 1.0, "per": "day"})  # fmt: skip
    outcome = world.guard().run_sync(spec, world.message(spec))
    assert outcome.state is RunState.SUCCEEDED and outcome.attempts == 2
    assert seen == [False, True]  # the retry's spend crossed the budget with the first one's
    store = world.guard().spend.store
    usage = store.of_window("job", world.message(spec).window_start)
    assert usage["m"].calls == 2 and usage["m"].cost_usd == pytest.approx(1.2)
    cost, tokens = store.spent(("job",), utc("2026-03-17T00:00:00Z"), utc("2026-03-18T00:00:00Z"))
    assert cost == pytest.approx(1.2) and tokens == 20


def test_a_spent_budget_alerts_through_the_alerter_once_per_period(world: World) -> None:
    from agentcron.alerts import Alert, Alerter
    from agentcron.spend.prom import install

    sent: list[Alert] = []

    class Notifier:
        def notify(self, alert: Alert) -> None:
            sent.append(alert)

    guard = world.guard()
    install(guard, Alerter([Notifier()]))
    spec = make_spec(spending(1.0), budget={"cost_usd": 1.0, "per": "day"})
    for hour in (6, 7, 8, 9):
        guard.run_sync(spec, world.message(spec, f"2026-03-17T{hour:02d}:00:00Z"))
    assert [(a.job, a.window, a.state) for a in sent] == [("job", "job:job", "skipped")]
    assert "resets 2026-03-18T00:00:00Z" in sent[0].reason


def test_the_alert_mark_is_once_per_budget_period_for_every_guard(world: World) -> None:
    first, second = world.guard("w1").spend, world.guard("w2").spend
    period = utc("2026-03-17T00:00:00Z")
    now = utc("2026-03-17T06:00:00Z")
    assert first.store.mark_alerted("prod", period, now) is True
    assert second.store.mark_alerted("prod", period, now) is False
    assert second.store.mark_alerted("prod", utc("2026-03-18T00:00:00Z"), now) is True
