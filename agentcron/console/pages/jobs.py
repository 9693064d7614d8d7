"""The Jobs page: every job, its schedule, next fire, last success and last 30 windows."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentcron.console.app import console_of, in_thread
from agentcron.console.data import SORTS
from agentcron.console.pages.params import number, text


async def jobs_page(request: Request) -> Response:
    """GET /?page=&sort=&q=&queue="""
    console = console_of(request)
    page = number(request, "page", 1)
    sort = text(request, "sort", "name", SORTS)
    query = text(request, "q")
    queue = text(request, "queue")
    listing = await in_thread(console.data.jobs_page, page, sort, query, queue)
    return console.render(request, "jobs.html", listing=listing, title="Jobs")


ROUTES = [Route("/", jobs_page, methods=["GET"])]
