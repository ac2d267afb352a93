"""Console sign-in: an API key exchanged once for a server-side session.

The session id is random (256 bits) and travels only in an HttpOnly, SameSite=Strict cookie
(Secure on https); the database keeps its SHA-256 digest, the key it was opened with (id and
digest, never the key), a CSRF token and an expiry. Every console request re-checks the key, so
revoking a key, or its expiry, ends its sessions at once. State-changing requests must carry the
CSRF token (``X-CSRF-Token`` header, or a ``csrf`` form field) and, when the browser sends one,
an ``Origin`` equal to the console's own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from litestar import Request

from gateway.auth.guard import KeyGuard
from gateway.auth.keys import digest, same_digest
from gateway.auth.principal import Principal
from gateway.auth.store import KeyRecord, KeyStore
from gateway.errors import AuthenticationError, PermissionDeniedError

COOKIE = "chungus_console"
COOKIE_PATH = "/console"
CSRF_HEADER = "x-csrf-token"
AnyRequest = Request[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    digest: str
    principal: Principal
    csrf: str
    expires_at: float


def principal_of(record: KeyRecord) -> Principal:
    """The caller a stored key stands for (as the key guard builds it)."""
    return Principal(key_id=record.id, name=record.name, admin=record.admin,
                     allowed_models=frozenset(record.allowed_models)
                     if record.allowed_models is not None else None,
                     rpm=record.rpm, tpm=record.tpm, max_concurrent=record.max_concurrent)


def _client(request: AnyRequest) -> str | None:
    return request.client.host if request.client else None


class ConsoleSessions:
    """Sessions in the key store's database, checked against the key on every request."""

    def __init__(self, store: KeyStore, guard: KeyGuard, ttl_s: float) -> None:
        self.store = store
        self.guard = guard
        self.ttl_s = ttl_s

    async def sign_in(self, key: str, request: AnyRequest) -> tuple[str, ConsoleSession]:
        """A new session for ``key``; returns the session id (for the cookie) and the session.

        Raises:
            AuthenticationError: the key is missing, unknown, revoked or expired (the API's
                message); ``RateLimitError`` after too many failures from this address.
        """
        principal = await self.guard.authenticate(f"Bearer {key}", _client(request))
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = ConsoleSession(digest(session_id), principal, secrets.token_urlsafe(32),
                                 now + self.ttl_s)
        await self.store.create_session({
            "digest": session.digest, "key_id": principal.key_id or "admin",
            "key_digest": digest(key), "csrf": session.csrf, "created_at": now,
            "expires_at": session.expires_at})
        return session_id, session

    async def load(self, request: AnyRequest) -> ConsoleSession | None:
        """The request's live session, or None (no cookie, unknown, expired, key gone)."""
        session_id = request.cookies.get(COOKIE)
        if not session_id or len(session_id) > 100:
            return None
        row = await self.store.session(digest(session_id))
        if row is None:
            return None
        principal = await self._principal(row)
        if principal is None:
            return None
        return ConsoleSession(row["digest"], principal, row["csrf"], row["expires_at"])

    async def require(self, request: AnyRequest) -> ConsoleSession:
        """Like ``load``; raises ``AuthenticationError`` when there is no live session."""
        session = await self.load(request)
        if session is None:
            raise AuthenticationError("Your console session has ended; sign in again.",
                                      code="console_session_required")
        return session

    async def _principal(self, row: dict[str, Any]) -> Principal | None:
        if row["key_id"] == "admin":
            admin_digest = self.guard.admin_digest
            if admin_digest and same_digest(row["key_digest"], admin_digest):
                return Principal(key_id="admin", name="bootstrap admin", admin=True)
            return None
        record = await self.store.get(row["key_id"])
        if (record is None or record.revoked or not same_digest(record.digest, row["key_digest"])
                or (record.expires_at is not None and record.expires_at <= time.time())):
            return None
        return principal_of(record)

    async def sign_out(self, session: ConsoleSession) -> None:
        await self.store.delete_session(session.digest)

    def cookie_header(self, request: AnyRequest, session_id: str | None) -> str:
        """``Set-Cookie`` for a new session, or (``None``) one that clears it."""
        secure = "; Secure" if request.url.scheme == "https" else ""
        value, age = (session_id, int(self.ttl_s)) if session_id else ("", 0)
        return (f"{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={age}; HttpOnly; "
                f"SameSite=Strict{secure}")


def check_origin(request: AnyRequest) -> None:
    """Refuse a request whose ``Origin`` (when sent) is not this server's."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise PermissionDeniedError("Cross-origin console requests are refused",
                                    code="csrf_failed")


def check_csrf(request: AnyRequest, session: ConsoleSession, form_token: str | None = None) -> None:
    """Refuse a state-changing request without this session's CSRF token (or from elsewhere).

    Raises:
        PermissionDeniedError: ``csrf_failed``.
    """
    check_origin(request)
    token = request.headers.get(CSRF_HEADER) or form_token or ""
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise PermissionDeniedError("Missing or wrong CSRF token; reload the page",
                                    code="csrf_failed")
