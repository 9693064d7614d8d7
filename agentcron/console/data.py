"""What the console's pages show, read through the runtime, the ledger's views and heartbeats.

No SQL here: rows come from :class:`~agentcron.ledger.store.Ledger` and
:class:`~agentcron.ledger.views.LedgerViews`; jobs from :class:`Catalogue`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agentcron.console.catalogue import Catalogue, JobEntry
from agentcron.console.spending import JobSpend, SpendView
from agentcron.instants import format_instant
from agentcron.ledger.records import RunRecord
from agentcron.ledger.views import LedgerViews, WindowCell
from agentcron.runtime import Runtime

SORTS = ("name", "next", "queue", "paused")
PAGE_SIZE = 50
STRIP = 30


@dataclass
class JobRow:
    """One line of the Jobs page."""

    name: str
    schedule: str
    words: str
    tz: str
    queue: str
    paused: bool
    next_utc: str | None
    next_local: str | None
    last_success: str | None
    strip: list[WindowCell] = field(default_factory=list)
    spend: JobSpend | None = None


@dataclass
class JobsPage:
    """The Jobs page: one page of rows and how to get to the others."""

    rows: list[JobRow]
    total: int
    page: int
    pages: int
    sort: str
    query: str
    queue: str
    queues: list[str]


def local_time(when: datetime | None, tz: str) -> str | None:
    """``when`` in ``tz`` as ``YYYY-MM-DD HH:MM TZ``."""
    if when is None:
        return None
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def _brief(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
    if isinstance(value, dict):
        return "{…}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def short_result(value: Any, limit: int = 120) -> str:
    """A result as one line of at most ``limit`` characters: its ``summary`` (or ``title``,
    ``message``, ``result``) when it has one, else ``key=value`` pairs, else its JSON."""
    if value is None:
        return ""
    if isinstance(value, dict):
        said = [value[k] for k in ("summary", "title", "message", "result")
                if isinstance(value.get(k), str)]  # fmt: skip
        text = said[0] if said else " ".join(
            f"{k}={_brief(v)}" for k, v in value.items() if k not in ("window", "window_key"))
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float) -> str:
    """``0.41s``, ``2m 05s``, ``19h 35m`` or ``3d 4h``."""
    if abs(seconds) < 120:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    sign, whole = ("-" if whole < 0 else ""), abs(whole)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    return f"{sign}{hours}h {minutes:02d}m" if hours else f"{sign}{minutes}m {secs:02d}s"


def start_lag(record: RunRecord) -> float | None:
    """Seconds between the slot and the start of the run."""
    if record.started_at is None:
        return None
    return (record.started_at - record.slot).total_seconds()


class ConsoleData:
    """The console's queries over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.catalogue = Catalogue(runtime)
        self.views = LedgerViews(runtime.ledger, runtime.clock)
        self.spend = SpendView(runtime.ledger.engine)

    def jobs_page(self, page: int, sort: str, query: str, queue: str) -> JobsPage:
        """One page of the Jobs list, filtered by name substring and queue, then sorted."""
        now = self.runtime.clock.now()
        entries = self.catalogue.ordered("name" if sort == "next" else sort)
        queues = self.catalogue.queues()
        needle = query.lower()
        chosen = entries
        if needle or queue:
            chosen = [e for e in entries if (not needle or needle in e.name.lower())
                      and (not queue or e.spec.queue == queue)]  # fmt: skip
        if sort == "next":
            far = now + timedelta(days=366 * 1000)
            chosen = sorted(chosen, key=lambda e: self.catalogue.next_fire(e, now) or far)
        pages = max(1, -(-len(chosen) // PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        names = [e.name for e in shown]
        strips = self.views.recent_windows(names, STRIP)
        successes = self.views.last_successes(names)
        spends = self.spend.today([e.spec for e in shown], now)
        rows = []
        for entry in shown:
            spec = entry.spec
            fire = self.catalogue.next_fire(entry, now)
            last = successes.get(entry.name)
            rows.append(JobRow(
                entry.name, str(spec.job.schedule), spec.schedule.describe(), spec.job.tz,
                spec.queue, entry.paused, format_instant(fire) if fire else None,
                local_time(fire, spec.job.tz), format_instant(last) if last else None,
                list(reversed(strips.get(entry.name, []))), spends.get(entry.name),
            ))  # fmt: skip
        return JobsPage(rows, len(chosen), page, pages, sort, query, queue, queues)

    def job(self, name: str) -> JobEntry | None:
        """A job by name, or None."""
        return self.catalogue.get(name)

    def timeline(self, entry: JobEntry, by: str) -> list[dict[str, Any]]:
        """Buckets (48 hours or 30 days, UTC) with their windows' counts by state."""
        now = self.runtime.clock.now()
        step, count = (timedelta(hours=1), 48) if by == "hour" else (timedelta(days=1), 30)
        end = (now.replace(minute=0, second=0, microsecond=0) if by == "hour"
               else now.replace(hour=0, minute=0, second=0, microsecond=0)) + step  # fmt: skip
        start = end - step * count
        counts: list[dict[str, int]] = [{} for _ in range(count)]
        for record in self.views.windows_between(entry.name, start, end):
            index = int((record.window_start - start) / step)
            if 0 <= index < count:
                state = record.state.value
                counts[index][state] = counts[index].get(state, 0) + 1
        label, title = ("%H", "%Y-%m-%d %H:00Z") if by == "hour" else ("%d", "%a %Y-%m-%d")
        return [{"label": (start + step * i).strftime(label), "counts": counts[i],
                 "title": (start + step * i).strftime(title), "total": sum(counts[i].values())}
                for i in range(count)]  # fmt: skip

    def runs(self, name: str, limit: int = 50) -> list[RunRecord]:
        """A job's runs, newest window first."""
        return self.runtime.ledger.list_runs(job=name, limit=limit)

    def reports(self, name: str, limit: int = 10) -> list[dict[str, Any]]:
        """A job's newest reports (title, window, when)."""
        return self.runtime.ledger.list_reports(job=name, limit=limit)

    def deliveries(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        """A job's newest report deliveries, each target shown by scheme and host only."""
        from agentcron.delivery.outbox import Outbox

        found = Outbox(self.runtime.ledger.engine, self.runtime.clock).list(job=name, limit=limit)
        return [item.summary() for item in found]

    def run(self, key: str) -> dict[str, Any] | None:
        """A run with its log lines and reports, or None."""
        record = self.runtime.ledger.get_by_key(key)
        if record is None:
            return None
        reports = [r for r in self.runtime.ledger.list_reports(job=record.job, limit=200)
                   if r["window_key"] == key]  # fmt: skip
        return {"record": record, "logs": self.views.run_log(key), "reports": reports,
                "lag": start_lag(record), "usage": self.spend.of_run(record.job, record.window_start),
                "result": None if record.result is None else json.dumps(
                    record.result, indent=2, ensure_ascii=False, default=str)}  # fmt: skip
