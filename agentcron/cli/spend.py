"""``agentcron spend`` (tokens and cost by job and model, budgets left) and ``agentcron
limits`` (each fleet-wide limit's holders and recent use now)."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from agentcron.clock import SYSTEM_CLOCK
from agentcron.errors import ConfigError
from agentcron.jobs import JobSpec
from agentcron.ledger import Ledger
from agentcron.schedule_file import load_jobs
from agentcron.settings import Settings
from agentcron.spend.gate import BudgetGate
from agentcron.spend.periods import period_bounds
from agentcron.spend.store import SpendStore


def _setup() -> tuple[Settings, list[JobSpec]]:
    """Settings and the schedule file's jobs (none without a file); exit 2 on bad input."""
    try:
        settings = Settings.from_env()
        path = settings.schedule_path
        specs = load_jobs(path, settings.config_max_bytes, settings.limits) if path.is_file() \
            else []
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    return settings, specs


def _unavailable(exc: Exception) -> SystemExit:
    click.echo(f"error: the ledger is unavailable ({type(exc).__name__}); "
               "has `agentcron db upgrade` run?", err=True)  # fmt: skip
    return SystemExit(1)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    rows = [header, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


def _budgets(gate: BudgetGate, specs: list[JobSpec], job: str | None) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.budget is None or spec.budget.name in seen or (job and job not in spec.budget_jobs):
            continue
        if spec.budget.per == "window":
            continue  # per window: no period to report
        spent = gate.spent(spec.budget, spec.budget_jobs, gate.clock.now())
        b = spec.budget
        seen[b.name] = {
            "budget": b.name, "jobs": list(spec.budget_jobs), "per": b.per, "tz": b.tz,
            "cost_usd": round(spent.cost_usd, 6), "tokens": spent.tokens,
            "cost_limit": b.cost_usd, "token_limit": b.tokens,
            "cost_left": None if b.cost_usd is None else round(max(b.cost_usd - spent.cost_usd,
                                                                   0.0), 6),
            "tokens_left": None if b.tokens is None else max(b.tokens - spent.tokens, 0),
            "used": round(spent.fraction(), 4), "resets": f"{spent.end:%Y-%m-%dT%H:%M:%SZ}",
        }  # fmt: skip
    return list(seen.values())


@click.command("spend")
@click.option("--job", default=None, help="Only this job (and the budgets it spends from).")
@click.option("--per", type=click.Choice(["day", "month"]), default="day", show_default=True,
              help="The current UTC day or month.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def spend_command(job: str | None, per: str, as_json: bool) -> None:
    """Tokens and cost by job and model, and what each budget has left."""
    settings, specs = _setup()
    ledger = Ledger.from_settings(settings)
    start, end = period_bounds(SYSTEM_CLOCK.now(), per, "UTC")
    try:
        store = SpendStore(ledger.engine)
        rows = store.by_job_and_model(start, end, job)
        budgets = _budgets(BudgetGate(store, SYSTEM_CLOCK, {}), specs, job)
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from exc
    finally:
        ledger.close()
    if as_json:
        period = {"per": per, "start": f"{start:%Y-%m-%dT%H:%M:%SZ}",
                  "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"}  # fmt: skip
        click.echo(json.dumps({"period": period, "spend": rows, "budgets": budgets}, indent=2))
        return
    click.echo(f"spend from {start:%Y-%m-%dT%H:%M:%SZ} to {end:%Y-%m-%dT%H:%M:%SZ}")
    click.echo(_table(("job", "model", "runs", "calls", "input", "output", "cost usd"), [
        (r["job"], r["model"], str(r["runs"]), str(r["calls"]), str(r["input_tokens"]),
         str(r["output_tokens"]), f"{r['cost_usd']:.4f}") for r in rows]))  # fmt: skip
    if budgets:
        click.echo("")
        click.echo(_table(("budget", "per", "spent usd", "left usd", "tokens", "left tokens",
                           "used", "resets"), [
            (b["budget"], b["per"], f"{b['cost_usd']:.4f}",
             "" if b["cost_left"] is None else f"{b['cost_left']:.4f}", str(b["tokens"]),
             "" if b["tokens_left"] is None else str(b["tokens_left"]),
             f"{b['used']:.0%}", b["resets"]) for b in budgets]))  # fmt: skip


@click.command("limits")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def limits_command(as_json: bool) -> None:
    """Each fleet-wide limit: holders and waiters now, requests and tokens in its window."""
    settings, specs = _setup()
    from agentcron.limits.run import open_limit_gate
    from agentcron.limits.status import declared_limits, limit_status

    try:
        declared = declared_limits(specs, settings.limits)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    ledger = Ledger.from_settings(settings)
    try:
        store = open_limit_gate(settings, ledger.engine, SYSTEM_CLOCK).store
        out = limit_status(store, declared.values())
    except Exception as exc:  # the ledger or Redis is down
        raise _unavailable(exc) from exc
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out:
        click.echo("no limits declared (LIMITS in the schedule file, or AGENTCRON_LIMITS)")
        return
    click.echo(_table(("limit", "held", "waiting", "requests", "tokens", "holders"), [
        (o["limit"], f"{len(o['holders'])}/{o['concurrency'] or '-'}", str(len(o["waiters"])),
         f"{o['requests']}/{o['per_minute'] or '-'} per {o['period']:g}s",
         f"{o['tokens']}/{o['tokens_per_minute'] or '-'}", ", ".join(o["holders"]))
        for o in out]))  # fmt: skip
