"""Authentication as ``httpx.Auth`` flows: API key, password login, refresh token.

Token flows sign in lazily (on the first request), send ``Authorization: Bearer <access>``,
and on a 401 renew once and replay the request: with the refresh token first (the server
rotates it: each one is spent once, and a reused one revokes its whole family), then, if
that is refused and a password is known, by signing in again. One renewal runs at a time
per auth object (a lock), and a request that failed with a token someone else has already
replaced just retries with the new one, so concurrent requests never spend one refresh
token twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from gongyun_sdk.errors import Unauthenticated, raise_for_problem

TOKEN_PATH = "auth/token"
REFRESH_PATH = "auth/refresh"


class ApiKeyAuth(httpx.Auth):
    """Authenticate every request with an API key (``gy_...``); keys do not expire by themselves."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the key as a bearer credential."""
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request


class TokenAuth(httpx.Auth):
    """Bearer tokens obtained by password login and/or a refresh token, renewed on expiry."""

    def __init__(
        self, *, username: str | None = None, password: str | None = None, refresh_token: str | None = None
    ) -> None:
        if refresh_token is None and (username is None or password is None):
            raise ValueError("give a username and a password, or a refresh token")
        self._username, self._password = username, password
        self._api: httpx.URL | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = refresh_token
        self.expires_in: int | None = None
        self._sync_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def bind(self, api_root: httpx.URL) -> None:
        """Send the token requests to the API at ``api_root`` (``.../api/v1/``; the client does this)."""
        self._api = api_root

    def forget(self) -> None:
        """Drop the tokens (after a logout)."""
        self.access_token = self.refresh_token = None

    # -- sans-I/O steps shared by both flows -----------------------------------------------------
    def _token_request(self, use_refresh: bool, request: httpx.Request) -> httpx.Request:
        api = self._api or request.url.join("/api/v1/")  # unbound: a plain httpx client
        if use_refresh and self.refresh_token is not None:
            return httpx.Request("POST", api.join(REFRESH_PATH), json={"refresh_token": self.refresh_token})
        if self._username is None or self._password is None:
            raise Unauthenticated(
                401,
                {
                    "code": "token_invalid",
                    "title": "Token invalid",
                    "detail": "the refresh token was refused",
                },
            )
        form = {"username": self._username, "password": self._password}
        return httpx.Request("POST", api.join(TOKEN_PATH), data=form)

    def _accept(self, response: httpx.Response, used_refresh: bool) -> bool:
        """Keep the new tokens; False when a refresh was refused and a password login may follow."""
        if response.status_code == 401 and used_refresh and self._password is not None:
            self.refresh_token = None
            return False
        raise_for_problem(response)
        pair: dict[str, Any] = response.json()
        self.access_token, self.refresh_token = pair["access_token"], pair["refresh_token"]
        self.expires_in = int(pair["expires_in"])
        return True

    def _authorise(self, request: httpx.Request) -> str:
        assert self.access_token is not None
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        return self.access_token

    def _stale(self, attempt: int, sent: str | None) -> bool:
        """True when a token must be fetched: none yet, or the one just refused is still current."""
        return self.access_token is None or (attempt > 0 and self.access_token == sent)

    # -- the flows: the same steps, with a thread lock or an asyncio lock ------------------------
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Authorise ``request`` for the sync client; on a 401 renew the token once and replay."""
        sent: str | None = None
        for attempt in range(2):
            with self._sync_lock:
                if self._stale(attempt, sent):
                    for use_refresh in (True, False):
                        used = use_refresh and self.refresh_token is not None
                        response = yield self._token_request(use_refresh, request)
                        response.read()
                        if self._accept(response, used):
                            break
                sent = self._authorise(request)
            response = yield request
            if response.status_code != 401:
                return

    def _lock(self) -> asyncio.Lock:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        return self._async_lock

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Authorise ``request`` for the async client; on a 401 renew the token once and replay."""
        sent: str | None = None
        for attempt in range(2):
            async with self._lock():
                if self._stale(attempt, sent):
                    for use_refresh in (True, False):
                        used = use_refresh and self.refresh_token is not None
                        response = yield self._token_request(use_refresh, request)
                        await response.aread()
                        if self._accept(response, used):
                            break
                sent = self._authorise(request)
            response = yield request
            if response.status_code != 401:
                return


class PasswordAuth(TokenAuth):
    """Sign in with a username and password (OAuth2 password flow); sign in again if refresh fails."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username=username, password=password)


class RefreshTokenAuth(TokenAuth):
    """Start from a refresh token kept from an earlier sign-in (no password stored)."""

    def __init__(self, refresh_token: str) -> None:
        super().__init__(refresh_token=refresh_token)
