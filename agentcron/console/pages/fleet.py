"""The Fleet page: beat leader and standbys, workers per queue, depths, missed windows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentcron.console.app import console_of, in_thread


async def fleet_page(request: Request) -> Response:
    """GET /fleet"""
    console = console_of(request)
    fleet = await in_thread(console.ops.fleet)
    return console.render(request, "fleet.html", fleet=fleet, title="Fleet")


ROUTES = [Route("/fleet", fleet_page, methods=["GET"])]
