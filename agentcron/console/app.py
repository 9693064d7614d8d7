"""The console's Starlette application: login, pages, static files, errors without tracebacks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentcron.console.auth import COOKIE, Session, Sessions
from agentcron.console.data import ConsoleData, duration, short_result
from agentcron.console.operations import Operations
from agentcron.runtime import Runtime

log = logging.getLogger("agentcron.console")
HERE = Path(__file__).parent
MAX_FORM_BYTES = 16 * 1024
HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Console:
    """What every page needs: data, operations, sessions, templates, the read-only flag."""

    data: ConsoleData
    ops: Operations
    sessions: Sessions
    templates: Environment
    readonly: bool

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> Response:
        """Render ``name`` (only its ``live`` block when the page's script asks for it)."""
        session: Session | None = getattr(request.state, "session", None)
        flash = list(session.flash) if session else []
        if session and request.headers.get("x-console-live") != "1":
            session.flash.clear()
        context = {"request": request, "csrf": session.csrf if session else "",
                   "readonly": self.readonly, "flash": flash, "path": request.url.path,
                   **values}  # fmt: skip
        template = self.templates.get_template(name)
        if request.headers.get("x-console-live") == "1" and "live" in template.blocks:
            html = "".join(template.blocks["live"](template.new_context(context)))
        else:
            html = template.render(context)
        return HTMLResponse(html, status)

    async def form(self, request: Request) -> dict[str, str]:
        """The urlencoded body of a POST (first value of each field), size-limited."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        try:
            fields = parse_qs(body.decode(), max_num_fields=50, strict_parsing=False)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPException(400, "unreadable form") from exc
        return {k: v[0] for k, v in fields.items()}

    async def action(self, request: Request) -> dict[str, str]:
        """The form of an action POST, after the read-only and CSRF checks (403 otherwise)."""
        if self.readonly:
            raise HTTPException(403, "this console is read-only (AGENTCRON_WEB_READONLY=1)")
        form = await self.form(request)
        session: Session = request.state.session
        if not Sessions.csrf_ok(session, form.get("csrf") or request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page")
        return form

    def flash(self, request: Request, message: str) -> None:
        """A message shown once on the next page."""
        request.state.session.flash.append(message)


def console_of(request: Request) -> Console:
    """The console the request's app serves."""
    console: Console = request.app.state.console
    return console


class LoginGate(BaseHTTPMiddleware):
    """Nothing but the login page and static files without a session; ``?token=`` opens one."""

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:  # fmt: skip
        console = console_of(request)
        path = request.url.path
        if path.startswith("/static/"):
            return self._secure(await call_next(request))
        token = request.query_params.get("token")
        if request.method == "GET" and token is not None:
            if not console.sessions.token_ok(token):
                return self._secure(self._login(console, request, "wrong token", 401))
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = path + ("?" + urlencode(rest) if rest else "")
            return self._secure(self._opened(console, target))
        if path == "/login" and request.method == "POST":
            form = await console.form(request)
            if console.sessions.token_ok(form.get("token")):
                return self._secure(self._opened(console, "/"))
            return self._secure(self._login(console, request, "wrong token", 401))
        session = console.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return self._secure(self._login(console, request, None, 401))
        request.state.session = session
        return self._secure(await call_next(request))

    @staticmethod
    def _opened(console: Console, target: str) -> Response:
        response = RedirectResponse(target if target.startswith("/") else "/", 303)
        response.set_cookie(COOKIE, console.sessions.open(), httponly=True, samesite="strict",
                            path="/")  # fmt: skip
        return response

    @staticmethod
    def _login(console: Console, request: Request, error: str | None, status: int) -> Response:
        html = console.templates.get_template("login.html").render(error=error, request=request)
        return HTMLResponse(html, status)

    @staticmethod
    def _secure(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error (see the server log)"
    if isinstance(exc, SQLAlchemyError):
        status, detail = 503, f"the ledger does not answer ({type(exc).__name__}); try again"
        log.warning("console: the ledger does not answer (%s)", type(exc).__name__)
    if status == 500:
        log.error("console request %s %s failed", request.method, request.url.path, exc_info=exc)
    console = console_of(request)
    html = console.templates.get_template("error.html").render(
        status=status, detail=detail, request=request, readonly=console.readonly, csrf="",
        flash=[], path=request.url.path)
    return LoginGate._secure(HTMLResponse(html, status))


def create_app(runtime: Runtime, token: str, *, readonly: bool = False) -> Starlette:
    """The console over ``runtime``, opened by ``token``."""
    from agentcron.console.pages import fleet, job, jobs, run

    templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                            autoescape=select_autoescape(["html"]))  # fmt: skip
    templates.globals["short"] = short_result
    templates.filters["duration"] = duration
    data = ConsoleData(runtime)
    console = Console(data, Operations(data), Sessions(token, runtime.clock), templates, readonly)
    routes = [*jobs.ROUTES, *job.ROUTES, *run.ROUTES, *fleet.ROUTES,
              Route("/login", _login_page, methods=["GET"]),
              Mount("/static", StaticFiles(directory=HERE / "static"), name="static")]  # fmt: skip
    app = Starlette(routes=routes, middleware=[Middleware(LoginGate)],
                    exception_handlers={HTTPException: _http_error, SQLAlchemyError: _http_error,
                                        Exception: _http_error})  # fmt: skip
    app.state.console = console
    return app


async def _login_page(request: Request) -> Response:
    return RedirectResponse("/", 303)


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking ledger read in Starlette's thread pool."""
    return await run_in_threadpool(fn, *args)
