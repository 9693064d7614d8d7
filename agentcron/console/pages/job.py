"""The Job page (timeline, runs) and its actions: pause, resume, trigger, backfill."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agentcron.console.app import Console, console_of, in_thread
from agentcron.console.catalogue import JobEntry
from agentcron.console.data import local_time
from agentcron.console.pages.params import instant, text
from agentcron.instants import format_instant


async def _entry(console: Console, request: Request) -> JobEntry:
    name = request.path_params["name"]
    if len(name) > 128 or not name.isprintable():
        raise HTTPException(400, "not a job name")
    entry: JobEntry | None = await in_thread(console.data.job, name)
    if entry is None:
        raise HTTPException(404, "no such job")
    return entry


def _broker_down(exc: Exception) -> HTTPException:
    return HTTPException(503, f"not sent now ({type(exc).__name__}): is the broker up? A window "
                              "already recorded is sent by the watchdog once it answers")


def _back(entry: JobEntry) -> Response:
    from urllib.parse import quote

    return RedirectResponse(f"/jobs/{quote(entry.name, safe='')}", 303)


async def job_page(request: Request, confirm: dict[str, object] | None = None) -> Response:
    """GET /jobs/{name}?by=day|hour"""
    console = console_of(request)
    entry = await _entry(console, request)
    by = text(request, "by", "day", ("day", "hour"))
    timeline = await in_thread(console.data.timeline, entry, by)
    runs = await in_thread(console.data.runs, entry.name)
    reports = await in_thread(console.data.reports, entry.name)
    deliveries = await in_thread(console.data.deliveries, entry.name)
    now = console.data.runtime.clock.now()
    fire = console.data.catalogue.next_fire(entry, now)
    return console.render(
        request, "job.html", entry=entry, by=by, timeline=timeline, runs=runs, title=entry.name,
        next_utc=format_instant(fire) if fire else None, next_local=local_time(fire, entry.spec.job.tz),
        confirm=confirm, reports=reports, deliveries=deliveries)  # fmt: skip


async def pause(request: Request) -> Response:
    """POST /jobs/{name}/pause"""
    return await _set_paused(request, True)


async def resume(request: Request) -> Response:
    """POST /jobs/{name}/resume"""
    return await _set_paused(request, False)


async def _set_paused(request: Request, paused: bool) -> Response:
    console = console_of(request)
    entry = await _entry(console, request)
    await console.action(request)
    console.flash(request, await in_thread(console.ops.pause, entry, paused))
    return _back(entry)


async def trigger(request: Request) -> Response:
    """POST /jobs/{name}/trigger (force=1 re-runs a finished window)"""
    console = console_of(request)
    entry = await _entry(console, request)
    form = await console.action(request)
    force = form.get("force") in ("1", "on", "true")
    try:
        said = await in_thread(console.ops.trigger, entry, force)
    except Exception as exc:  # the broker does not answer
        raise _broker_down(exc) from exc
    console.flash(request, said)
    return _back(entry)


async def backfill(request: Request) -> Response:
    """POST /jobs/{name}/backfill: without ``confirm`` shows the count; with it, sends."""
    from agentcron.watch.backfill import BackfillError

    console = console_of(request)
    entry = await _entry(console, request)
    form = await console.action(request)
    start, end = instant(form, "from"), instant(form, "to")
    try:
        count = await in_thread(console.ops.backfill_count, entry, start, end)
    except BackfillError as exc:
        raise HTTPException(400, str(exc)) from exc
    if form.get("confirm") != str(count):
        confirm = {"from": format_instant(start), "to": format_instant(end), "count": count}
        return await job_page(request, confirm)
    try:
        console.flash(request, await in_thread(console.ops.backfill, entry, start, end))
    except BackfillError as exc:
        raise HTTPException(400, str(exc)) from exc
    except Exception as exc:  # the broker does not answer
        raise _broker_down(exc) from exc
    return _back(entry)


ROUTES = [
    Route("/jobs/{name}", job_page, methods=["GET"]),
    Route("/jobs/{name}/pause", pause, methods=["POST"]),
    Route("/jobs/{name}/resume", resume, methods=["POST"]),
    Route("/jobs/{name}/trigger", trigger, methods=["POST"]),
    Route("/jobs/{name}/backfill", backfill, methods=["POST"]),
]
