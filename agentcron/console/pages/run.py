"""The Run page: one window's run in full, with the lines the agent logged."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentcron.console.app import console_of, in_thread


async def run_page(request: Request) -> Response:
    """GET /runs/{window key}"""
    console = console_of(request)
    key = request.path_params["key"]
    if len(key) > 160 or "@" not in key or not key.isprintable():
        raise HTTPException(400, "not a window key (job@YYYY-MM-DDTHH:MM:SSZ)")
    run = await in_thread(console.data.run, key)
    if run is None:
        raise HTTPException(404, "no such run")
    return console.render(request, "run.html", run=run, title=key)


ROUTES = [Route("/runs/{key:path}", run_page, methods=["GET"])]
