"""Who is calling a node: pluggable authenticators and Handle-style admin names.

An ``Authenticator`` looks at the request headers and returns a ``Principal``, ``None``
when the credentials are not of its kind, or raises ``AuthError`` when they are of its
kind but wrong. Nodes try their authenticators in order. ``HandleBasicAuth`` implements
Handle.Net's Basic authentication: the user name is an admin name ``index:prefix/suffix``
(``300:88.100.1/admin``) and the password is the ``HS_SECKEY`` value at that index of that
record (plain, as Handle.Net keeps it, or a ``pbkdf2_sha256$`` hash made by
``hash_secret``). Gongyun users and API keys plug in as another authenticator.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from gongyun.errors import GongyunError, InvalidCredentials, MalformedIdentifier
from gongyun.idres.syntax import fold, is_under, parse_indexed

_ITERATIONS = 120_000
_CACHE_S = 60.0
_REFRESH_S = 15.0


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, the prefixes it administers (``None`` = every prefix of the
    node), whether it operates the node (filing decisions) and, for a platform user or API
    key, the tenant it acts for."""

    name: str
    prefixes: tuple[str, ...] | None
    can_write: bool = True
    operator: bool = False
    tenant_id: str | None = None
    clearance: int = 3  # the highest data level it reads in clear (a platform user: by role)

    def covers(self, prefix: str) -> bool:
        """True when the caller administers ``prefix`` (or an ancestor of it)."""
        if self.prefixes is None:
            return True
        return any(is_under(prefix, p) for p in self.prefixes)


Authenticator = Callable[[Mapping[str, str]], Awaitable[Principal | None]]
SecretLookup = Callable[[str, int], Awaitable[str | None]]


def hash_secret(secret: str) -> str:
    """A ``pbkdf2_sha256$iterations$salt$hash`` string for an ``HS_SECKEY`` value."""
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), _ITERATIONS).hex()
    return f"pbkdf2_sha256${_ITERATIONS}${salt}${digest}"


def verify_secret(stored: str, given: str) -> bool:
    """Check a password against an ``HS_SECKEY`` value (hashed or plain) in constant time."""
    if stored.startswith("pbkdf2_sha256$"):
        try:
            _, iterations, salt, digest = stored.split("$")
            rounds = int(iterations)
        except ValueError:
            return False
        got = hashlib.pbkdf2_hmac("sha256", given.encode(), salt.encode(), rounds).hex()
        return hmac.compare_digest(got, digest)
    return hmac.compare_digest(stored.encode(), given.encode())


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header (user name unquoted)."""
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCredentials("the Basic authorization header is not valid base64") from None
    # pyhandle percent-quotes the user name, so the first ':' separates it from the password
    user, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidCredentials("the Basic authorization header has no password")
    if user.isdigit() and "/" in password:
        # an unquoted admin name "300:88.100.1/admin:pw": the password follows the first ':' after '/'
        handle, sep, rest = password.partition("/")
        suffix, sep2, pw = rest.partition(":")
        if sep and sep2:
            return f"{user}:{handle}/{suffix}", pw
    return unquote(user), password


class HandleBasicAuth:
    """Basic authentication with Handle admin names, checked against ``HS_SECKEY`` values.

    A verified credential is remembered for ``ttl`` seconds (``_CACHE_S`` by default). The
    password hash is checked in a thread (never on the event loop); concurrent requests with the
    same credential share one check; a remembered credential used in the last ``refresh``
    seconds of its life (a quarter of ``ttl``, at most ``_REFRESH_S``) is re-checked once in the
    background while it keeps answering (up to ``refresh`` seconds past its expiry if the check
    is slow), so busy callers never wait on expiry.
    """

    def __init__(self, lookup: SecretLookup, ttl: float = _CACHE_S) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self.refresh = min(_REFRESH_S, ttl / 4)
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._flights: dict[str, asyncio.Future[Principal]] = {}
        self._keys: dict[str, str] = {}  # Authorization header value -> its credential's cache key
        self._background: set[asyncio.Task[Principal]] = set()  # refreshes under way
        self.checks = 0  # password checks run (for operators and tests)

    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        """Authenticate from the headers; None when there is no Basic header."""
        creds = basic_credentials(headers)
        if creds is None:
            return None
        user, password = creds
        key = _key(user, password)
        principal = self._fresh(key, user, password)
        if principal is not None:
            return principal
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        return await self._check(key, user, password)

    def remembered(self, authorization: str) -> Principal | None:
        """The remembered principal of an ``Authorization`` header value, without waiting.

        None when it is not a Basic credential verified and still remembered; as on every use, a
        credential in the last ``refresh`` seconds of its life is re-checked in the background.
        The header's key is kept, so a busy caller's header is decoded and hashed once.
        """
        key = self._keys.get(authorization)
        if key is None:
            try:
                creds = basic_credentials({"authorization": authorization})
            except InvalidCredentials:
                return None
            if creds is None:
                return None
            key = _key(*creds)
            if key not in self._cache:
                return None  # not verified: nothing is kept for it
            if len(self._keys) >= 10_000:
                self._keys.clear()
            self._keys[authorization] = key
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is None or (hit[0] <= now and not self._grace(key, hit[0], now)):
            return None
        if hit[0] - now < self.refresh and key not in self._flights:
            creds = basic_credentials({"authorization": authorization})
            if creds is not None:
                self._refresh(key, *creds)
        return hit[1]

    def _grace(self, key: str, expires: float, now: float) -> bool:
        """True while an expired credential's re-check runs, for at most ``refresh`` seconds more
        (on a loaded machine the hash may outlast the window): its callers keep being answered."""
        return key in self._flights and now < expires + self.refresh

    def _fresh(self, key: str, user: str, password: str) -> Principal | None:
        """The remembered principal while it lives (re-checked in the background near its end)."""
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is None or (hit[0] <= now and not self._grace(key, hit[0], now)):
            return None
        if hit[0] - now < self.refresh and key not in self._flights:
            self._refresh(key, user, password)
        return hit[1]

    def _refresh(self, key: str, user: str, password: str) -> None:
        """Re-check a remembered credential in the background (its callers go on meanwhile).

        The flight is registered before this returns: the other requests of the same turn of
        the event loop see it and start no check of their own.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Principal] = loop.create_future()
        self._flights[key] = fut
        task = loop.create_task(self._run(key, user, password, fut))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_quiet)

    async def _check(self, key: str, user: str, password: str) -> Principal:
        fut: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._flights[key] = fut
        return await self._run(key, user, password, fut)

    async def _run(self, key: str, user: str, password: str, fut: asyncio.Future[Principal]) -> Principal:
        """Verify a credential for the flight ``fut`` and remember it (or forget it on failure)."""
        try:
            principal, norm = await self._verify(user, password)
        except BaseException as exc:
            self._cache.pop(key, None)
            fut.set_exception(exc)
            fut.exception()
            raise
        finally:
            self._flights.pop(key, None)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self.ttl, principal, norm)
        fut.set_result(principal)
        return principal

    async def _verify(self, user: str, password: str) -> tuple[Principal, str]:
        try:
            admin = parse_indexed(user)
        except MalformedIdentifier:
            raise InvalidCredentials("the user name must be an admin name like 300:88.100.1/admin") from None
        try:
            stored = await self.lookup(str(admin.handle), admin.index)
        except GongyunError:
            stored = None
        self.checks += 1
        if stored is None or not await asyncio.to_thread(verify_secret, stored, password):
            raise InvalidCredentials(f"authentication failed for {user}")
        h = admin.handle
        scope = h.suffix if h.is_prefix_record else h.prefix
        return Principal(name=str(admin), prefixes=(fold(scope),)), h.norm

    def forget(self, admin_norm: str | None = None) -> None:
        """Drop cached verifications of one admin record (after it changed), or all of them."""
        if admin_norm is None:
            self._cache.clear()
            self._keys.clear()
            return
        for key in [k for k, v in self._cache.items() if v[2] == admin_norm]:
            del self._cache[key]


def _key(user: str, password: str) -> str:
    return hashlib.sha256(f"{user}\x00{password}".encode()).hexdigest()


def _quiet(task: asyncio.Future[Principal]) -> None:
    if not task.cancelled():
        task.exception()  # a failed refresh already dropped the entry


def static_token_auth(tokens: Mapping[str, Principal]) -> Authenticator:
    """An authenticator for ``Authorization: Bearer <token>`` from a fixed table (node operators)."""

    async def check(headers: Mapping[str, str]) -> Principal | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        for known, principal in tokens.items():
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                return principal
        return None

    return check
