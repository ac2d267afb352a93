"""The console's HTML pages (server-rendered with Jinja2), sign-in and sign-out.

Pages carry their data as rendered tables or one ``application/json`` block; the scripts in
``static/`` add behaviour. Every page is sent with a strict Content-Security-Policy (scripts,
styles and connections from this origin only), ``no-store`` and a same-origin referrer policy.
"""

from __future__ import annotations

import time
from typing import Any

import jinja2
from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from gateway.console.service import ConsoleService
from gateway.console.sessions import check_csrf, check_origin
from gateway.errors import GatewayError, InvalidRequestError

AnyRequest = Request[Any, Any, Any]
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "cache-control": "no-store",
    "referrer-policy": "same-origin",  # no-referrer would make browsers send "Origin: null"
    "x-content-type-options": "nosniff",
}
MAX_KEY_CHARS = 200
_env = jinja2.Environment(loader=jinja2.PackageLoader("gateway.console", "templates"),
                          autoescape=True, enable_async=False)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "-"


_env.filters["when"] = _when


def render(name: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Response[bytes]:
    html = _env.get_template(name).render(**context)
    return Response(html.encode(), status_code=status, media_type="text/html; charset=utf-8",
                    headers={**HEADERS, **(headers or {})})


def console_page_routes(console: ConsoleService) -> list[HTTPRouteHandler]:
    """Sign-in, sign-out and the pages."""
    sessions = console.sessions

    async def page(request: AnyRequest, template: str, *, admin_only: bool,
                   data: Any = None, **context: Any) -> Response[bytes] | Redirect:
        session = await sessions.load(request)
        if session is None:
            return Redirect("/console/login")
        if admin_only and not session.principal.admin:
            return Redirect("/console/usage")
        return render(template, session=session, principal=session.principal,
                      page=template.removesuffix(".html"), data=data, **context)

    @get("/console")
    async def home(request: AnyRequest) -> Redirect:
        session = await sessions.load(request)
        if session is None:
            return Redirect("/console/login")
        return Redirect("/console/keys" if session.principal.admin else "/console/usage")

    @get("/console/login")
    async def login_form(request: AnyRequest) -> Response[bytes]:
        return render("login.html", page="login")

    @post("/console/login", status_code=303)
    async def login(request: AnyRequest) -> Response[bytes] | Redirect:
        try:
            check_origin(request)
            form = await request.form()
            key = str(form.get("key") or "").strip()
            if not key or len(key) > MAX_KEY_CHARS:
                raise InvalidRequestError("Enter an API key (sk-chungus-...)", param="key")
            session_id, session = await sessions.sign_in(key, request)
        except GatewayError as exc:
            return render("login.html", exc.status, exc.headers, page="login", error=exc.message)
        target = "/console/keys" if session.principal.admin else "/console/usage"
        return Redirect(target, status_code=303,
                        headers={"set-cookie": sessions.cookie_header(request, session_id)})

    @post("/console/logout", status_code=303)
    async def logout(request: AnyRequest) -> Redirect:
        session = await sessions.require(request)
        form = await request.form()
        check_csrf(request, session, str(form.get("csrf") or ""))
        await sessions.sign_out(session)
        return Redirect("/console/login", status_code=303,
                        headers={"set-cookie": sessions.cookie_header(request, None)})

    @get("/console/keys")
    async def keys(request: AnyRequest) -> Response[bytes] | Redirect:
        records = await console.admin.keystore.list_keys()
        models = [m.id for m in console.admin.catalog.registry.models]
        return await page(request, "keys.html", admin_only=True, keys=records, now=time.time(),
                          data={"models": models})

    @get("/console/models")
    async def models(request: AnyRequest) -> Response[bytes] | Redirect:
        return await page(request, "models.html", admin_only=True,
                          models=await console.model_rows())

    @get("/console/usage")
    async def usage(request: AnyRequest) -> Response[bytes] | Redirect:
        session = await sessions.load(request)
        admin = session is not None and session.principal.admin
        keys = [{"id": k.id, "label": f"{k.prefix} {k.name}".strip()}
                for k in await console.admin.keystore.list_keys()] if admin else []
        models = [m.id for m in console.admin.catalog.registry.models]
        return await page(request, "usage.html", admin_only=False,
                          data={"keys": keys, "models": models, "admin": admin})

    @get("/console/live")
    async def live(request: AnyRequest) -> Response[bytes] | Redirect:
        return await page(request, "live.html", admin_only=True)

    @get("/console/playground")
    async def playground(request: AnyRequest) -> Response[bytes] | Redirect:
        session = await sessions.load(request)
        usable = await console.usable_models(session.principal) if session else []
        data = {"models": [{"id": m.id, "kind": m.kind, "vision": m.vision,
                            "max_tokens": m.default_max_tokens} for m in usable]}
        return await page(request, "playground.html", admin_only=False, data=data)

    return [home, login_form, login, logout, keys, models, usage, live, playground]

