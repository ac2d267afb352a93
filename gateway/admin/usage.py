"""Usage over time: the series behind the console's plots, and CSV export.

``GET /admin/usage/series`` and ``GET /admin/usage/export`` (admin keys: every key) and
``GET /me/usage/series`` and ``GET /me/usage/export`` (any key: its own usage only). Query:
``range`` = ``hour`` (60 one-minute points), ``day`` (24 hours) or ``30d`` (30 UTC days),
optional ``key_id`` and ``model``.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from gateway.auth.guard import KeyGuard
from gateway.auth.principal import Principal
from gateway.auth.store import HOUR, MINUTE, USAGE_COUNTS, KeyStore
from gateway.errors import InvalidRequestError, PermissionDeniedError
from gateway.http.responses import json_response

DAY = 86400
# range -> (stored bucket width, plotted point width, points)
RANGES = {"hour": (MINUTE, MINUTE, 60), "day": (HOUR, HOUR, 24), "30d": (HOUR, DAY, 30)}


@dataclass(frozen=True, slots=True)
class UsageQuery:
    range: str
    key_id: str | None
    model: str | None

    @classmethod
    def parse(cls, params: Any, principal: Principal) -> UsageQuery:
        """From query parameters; a non-admin key is held to its own usage.

        Raises:
            InvalidRequestError: an unknown ``range``.
            PermissionDeniedError: a non-admin key asks for another key's usage.
        """
        span = params.get("range") or "day"
        if span not in RANGES:
            raise InvalidRequestError(f"range must be one of hour, day, 30d, not '{span[:20]}'",
                                      param="range")
        key_id = params.get("key_id") or None
        if not principal.admin:
            if key_id is not None and key_id != principal.key_id:
                raise PermissionDeniedError("A key may only read its own usage", param="key_id")
            key_id = principal.key_id or "anonymous"
        model = params.get("model") or None
        return cls(span, key_id, model[:200] if model else None)


def _first_start(point: int, points: int, now: int) -> int:
    return now - now % point - (points - 1) * point


class UsageSeries:
    """Reads buckets (after writing what is still counted in memory)."""

    def __init__(self, store: KeyStore, guard: KeyGuard) -> None:
        self.store = store
        self.guard = guard

    async def series(self, query: UsageQuery, now: float | None = None) -> dict[str, Any]:
        """Every point of the range, oldest first, zeros where nothing was used."""
        await self.guard.flush()
        width, point, points = RANGES[query.range]
        first = _first_start(point, points, int(now if now is not None else time.time()))
        rows = await self.store.buckets(width, first, key_id=query.key_id, model=query.model)
        sums = {first + i * point: dict.fromkeys(USAGE_COUNTS, 0) for i in range(points)}
        for row in rows:
            start = row["start"] - (row["start"] - first) % point
            if start in sums:
                for name in USAGE_COUNTS:
                    sums[start][name] += row[name]
        return {"object": "usage.series", "range": query.range, "width_s": point,
                "key_id": query.key_id, "model": query.model,
                "data": [{"start": s, **counts} for s, counts in sums.items()]}

    async def csv(self, query: UsageQuery, now: float | None = None) -> str:
        """The stored buckets of the range, one row per bucket, key and model."""
        await self.guard.flush()
        width, point, points = RANGES[query.range]
        first = _first_start(point, points, int(now if now is not None else time.time()))
        rows = await self.store.bucket_rows(width, first, query.key_id)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["start", "width_s", "key_id", "model", *USAGE_COUNTS])
        for row in rows:
            if query.model is not None and row["model"] != query.model:
                continue
            when = datetime.fromtimestamp(row["start"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([when, row["width"], row["key_id"], row["model"],
                             *(row[n] for n in USAGE_COUNTS)])
        return out.getvalue()


def csv_response(text: str, query: UsageQuery) -> Response[bytes]:
    name = f"chungus-usage-{query.range}.csv"
    return Response(text.encode(), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


def usage_routes(usage: UsageSeries) -> list[HTTPRouteHandler]:
    """The admin (every key) and per-key (``/me``, own usage) series and export routes."""

    @get("/admin/usage/series")
    async def admin_series(request: Request[Any, Any, Any],
                           admin: NamedDependency[Principal]) -> Response[bytes]:
        return json_response(await usage.series(UsageQuery.parse(request.query_params, admin)))

    @get("/admin/usage/export")
    async def admin_export(request: Request[Any, Any, Any],
                           admin: NamedDependency[Principal]) -> Response[bytes]:
        query = UsageQuery.parse(request.query_params, admin)
        return csv_response(await usage.csv(query), query)

    @get("/me/usage/series")
    async def own_series(request: Request[Any, Any, Any],
                         principal: NamedDependency[Principal]) -> Response[bytes]:
        return json_response(await usage.series(UsageQuery.parse(request.query_params, principal)))

    @get("/me/usage/export")
    async def own_export(request: Request[Any, Any, Any],
                         principal: NamedDependency[Principal]) -> Response[bytes]:
        query = UsageQuery.parse(request.query_params, principal)
        return csv_response(await usage.csv(query), query)

    return [admin_series, admin_export, own_series, own_export]
