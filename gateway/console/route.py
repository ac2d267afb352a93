"""Every console route: pages, the JSON API and the static assets (served from the package)."""

from __future__ import annotations

from pathlib import Path

from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.router import Router
from litestar.static_files import create_static_files_router

from gateway.console.api import console_api_routes
from gateway.console.pages import console_page_routes
from gateway.console.service import ConsoleService
from gateway.http.body import BodyReader

STATIC = Path(__file__).parent / "static"


def console_routes(console: ConsoleService, reader: BodyReader) -> list[HTTPRouteHandler | Router]:
    """/console pages, /console/api and /console/static; nothing on the API's routes."""
    static = create_static_files_router("/console/static", [STATIC], name="console-static",
                                        cache_control=CacheControlHeader(max_age=3600))
    return [*console_page_routes(console), *console_api_routes(console, reader), static]
