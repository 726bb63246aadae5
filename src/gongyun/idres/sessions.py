"""Handle.Net REST API sessions (``/api/sessions``): a session id and a server nonce.

``POST /api/sessions`` opens a session (authenticated at once when the request carries
credentials any authenticator accepts, e.g. Basic). ``PUT /api/sessions/this`` authenticates
it later, either with those credentials or with a challenge response in an
``Authorization: Handle sessionId="…", id="300:88.100.1/admin", type="HS_SECKEY",
cnonce="…", alg="SHA256", signature="…"`` header, where ``signature`` is the base64
HMAC-SHA256 of ``server nonce || client nonce`` (both base64-decoded) keyed with the secret
(only for a secret stored in plain text: a hashed secret cannot key an HMAC).
``GET /api/sessions/this`` tells the state and ``DELETE`` ends it. Later requests
authenticate with ``Authorization: Handle sessionId="…"``. Sessions live in memory, for
``ttl`` seconds after their last use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gongyun.errors import AuthError, InvalidCredentials, InvalidInput, MalformedIdentifier
from gongyun.idres.asgi import AsgiApp, Request, Response, json_response
from gongyun.idres.auth import Principal, SecretLookup
from gongyun.idres.syntax import fold, parse_indexed

_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
MAX_SESSIONS = 50_000


def handle_auth_params(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The parameters of an ``Authorization: Handle k="v", ...`` header, or None."""
    scheme, _, rest = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "handle":
        return None
    return dict(_PARAM.findall(rest))


@dataclass
class Session:
    """One session: its nonce, its principal once authenticated, its expiry."""

    id: str
    nonce: str
    expires: float
    principal: Principal | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Sessions:
    """The sessions of one node, and the authenticator that honours them."""

    def __init__(self, secret: SecretLookup, ttl: float = 1800.0) -> None:
        self.secret = secret
        self.ttl = ttl
        self.by_id: dict[str, Session] = {}

    def _live(self, sid: str) -> Session | None:
        s = self.by_id.get(sid)
        now = time.monotonic()
        if s is None or s.expires < now:
            self.by_id.pop(sid, None)
            return None
        s.expires = now + self.ttl
        return s

    def open(self, principal: Principal | None) -> Session:
        """A new session with a fresh nonce."""
        if len(self.by_id) >= MAX_SESSIONS:
            now = time.monotonic()
            for sid in [k for k, v in self.by_id.items() if v.expires < now]:
                del self.by_id[sid]
            if len(self.by_id) >= MAX_SESSIONS:
                self.by_id.pop(next(iter(self.by_id)))
        s = Session(
            secrets.token_urlsafe(18),
            base64.b64encode(secrets.token_bytes(16)).decode(),
            time.monotonic() + self.ttl,
            principal,
        )
        self.by_id[s.id] = s
        return s

    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        """Authenticate ``Authorization: Handle sessionId="…"`` (None for other schemes)."""
        params = handle_auth_params(headers)
        if params is None or "sessionId" not in params or "signature" in params:
            return None
        s = self._live(params["sessionId"])
        if s is None:
            raise InvalidCredentials("the session is unknown or has expired")
        if s.principal is None:
            raise AuthError("the session is not authenticated yet")
        return s.principal

    async def _challenge(self, s: Session, params: dict[str, str]) -> Principal:
        if params.get("type", "HS_SECKEY").upper() != "HS_SECKEY":
            raise InvalidCredentials("only HS_SECKEY challenge responses are supported here")
        if params.get("alg", "SHA256").upper().replace("-", "") != "SHA256":
            raise InvalidCredentials("the challenge response algorithm must be SHA256")
        try:
            admin = parse_indexed(params.get("id", ""))
            cnonce = base64.b64decode(params.get("cnonce", ""), validate=True)
            signature = base64.b64decode(params.get("signature", ""), validate=True)
        except (MalformedIdentifier, binascii.Error, ValueError):
            raise InvalidCredentials("the challenge response is malformed") from None
        stored = await self.secret(str(admin.handle), admin.index)
        if stored is None or stored.startswith("pbkdf2_sha256$") or not cnonce:
            raise InvalidCredentials(f"no plain HS_SECKEY at {admin} to check a challenge response with")
        expected = hmac.new(stored.encode(), base64.b64decode(s.nonce) + cnonce, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise InvalidCredentials(f"the challenge response of {admin} is wrong")
        h = admin.handle
        return Principal(name=str(admin), prefixes=(fold(h.suffix if h.is_prefix_record else h.prefix),))

    def _describe(self, s: Session) -> dict[str, Any]:
        body: dict[str, Any] = {"sessionId": s.id, "nonce": s.nonce, "authenticated": s.principal is not None}
        if s.principal is not None:
            body["id"] = s.principal.name
        return body

    async def route(self, req: Request) -> Response:
        """``POST /api/sessions``; ``GET|PUT|DELETE /api/sessions/this``."""
        rest = req.path[len("/api/sessions") :].strip("/")
        if rest == "" and req.method == "POST":
            return json_response(201, self._describe(self.open(req.principal)))
        if rest != "this":
            raise InvalidInput("use POST /api/sessions or GET|PUT|DELETE /api/sessions/this")
        params = handle_auth_params(req.headers) or {}
        sid = params.get("sessionId") or req.arg("sessionId") or ""
        s = self._live(sid)
        if s is None:
            raise InvalidCredentials("the session is unknown or has expired")
        if req.method == "GET":
            return json_response(200, self._describe(s))
        if req.method == "DELETE":
            self.by_id.pop(s.id, None)
            return json_response(200, {"responseCode": 1})
        if req.method == "PUT":
            if "signature" in params:
                s.principal = await self._challenge(s, params)
            elif req.principal is not None:
                s.principal = req.principal
            else:
                raise AuthError("send credentials (Basic, or a Handle challenge response) to authenticate")
            return json_response(200, self._describe(s))
        raise InvalidInput(f"method {req.method} is not allowed on /api/sessions/this")

    def install(self, app: AsgiApp) -> None:
        """Mount the routes and honour session ids on every request."""
        app.authenticators.insert(0, self)
        app.mount("/api/sessions", self.route)
