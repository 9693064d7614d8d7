"""The Fleet page: beat leader and standbys, workers per queue, depths, missed windows, dead
letters (requeue one, purge all) and fleet-wide limits."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from agentcron.console.app import console_of, in_thread


async def fleet_page(request: Request, confirm_purge: int | None = None) -> Response:
    """GET /fleet"""
    console = console_of(request)
    fleet = await in_thread(console.ops.fleet)
    letters = await in_thread(console.ops.letters.read)
    return console.render(request, "fleet.html", fleet=fleet, letters=letters, title="Fleet",
                          confirm_purge=confirm_purge)  # fmt: skip


def _letter_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise HTTPException(400, "not a dead letter id (a whole number from 1)")
    return int(raw)


async def requeue(request: Request) -> Response:
    """POST /fleet/dead-letters/{id}/requeue: back onto its queue, byte for byte."""
    from agentcron.deadletters.requeue import RequeueError

    console = console_of(request)
    letter_id = _letter_id(request)
    await console.action(request)
    try:
        said = await in_thread(console.ops.letters.requeue, letter_id)
    except RequeueError as exc:
        raise HTTPException(404 if "no dead letter" in str(exc) else 409, str(exc)) from exc
    except Exception as exc:  # the broker does not answer (the letter stays stored)
        raise HTTPException(503, f"not requeued ({type(exc).__name__}): is the broker up? "
                                 "The dead letter is still stored") from exc  # fmt: skip
    console.flash(request, said)
    return RedirectResponse("/fleet", 303)


async def purge(request: Request) -> Response:
    """POST /fleet/dead-letters/purge: without ``confirm=purge`` shows the count first."""
    console = console_of(request)
    form = await console.action(request)
    if form.get("confirm") != "purge":
        return await fleet_page(request, await in_thread(console.ops.letters.store.count))
    console.flash(request, await in_thread(console.ops.letters.purge))
    return RedirectResponse("/fleet", 303)


ROUTES = [
    Route("/fleet", fleet_page, methods=["GET"]),
    Route("/fleet/dead-letters/purge", purge, methods=["POST"]),
    Route("/fleet/dead-letters/{id}/requeue", requeue, methods=["POST"]),
]
