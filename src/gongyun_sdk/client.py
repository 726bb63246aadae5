"""The clients: ``Client`` (blocking) and ``AsyncClient`` (asyncio), with the same typed resources."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, Self

import httpx

from gongyun_sdk._ops import Async, AsyncRunner, M, Sync, SyncRunner
from gongyun_sdk.auth import ApiKeyAuth, TokenAuth
from gongyun_sdk.resources.accounts import ApiKeys, Audit, Session, Tenants, Users
from gongyun_sdk.resources.alarms import Alarms, Rules
from gongyun_sdk.resources.apps import Apps
from gongyun_sdk.resources.assets import Assets, Devices, Tags
from gongyun_sdk.resources.identifiers import Identifiers
from gongyun_sdk.resources.telemetry import Telemetry

DEFAULT_TIMEOUT_S = 30.0


def _auth(auth: httpx.Auth | str | None, api_root: httpx.URL) -> httpx.Auth | None:
    """A string is an API key; token auths learn where to sign in."""
    if isinstance(auth, str):
        return ApiKeyAuth(auth)
    if isinstance(auth, TokenAuth):
        auth.bind(api_root)
    return auth


def _api_root(base_url: str | httpx.URL) -> httpx.URL:
    url = httpx.URL(str(base_url).rstrip("/") + "/")
    return url.join("api/v1/")


def _http_options(
    base_url: str | httpx.URL, auth: httpx.Auth | str | None, tenant: str | None, timeout: float
) -> dict[str, Any]:
    """What both clients give their httpx client: the API root, the auth, the tenant header."""
    root = _api_root(base_url)
    headers = {"X-Tenant": tenant} if tenant else {}
    return {"base_url": root, "auth": _auth(auth, root), "timeout": timeout, "headers": headers}


class _Resources(Generic[M]):
    """Every resource of the API, bound to one runner."""

    def __init__(self, runner: SyncRunner | AsyncRunner, auth: httpx.Auth | None) -> None:
        self.auth = auth
        self._headers = runner.http.headers
        self.session: Session[M] = Session(runner)
        self.tenants: Tenants[M] = Tenants(runner)
        self.users: Users[M] = Users(runner)
        self.apikeys: ApiKeys[M] = ApiKeys(runner)
        self.audit: Audit[M] = Audit(runner)
        self.assets: Assets[M] = Assets(runner)
        self.devices: Devices[M] = Devices(runner)
        self.tags: Tags[M] = Tags(runner)
        self.telemetry: Telemetry[M] = Telemetry(runner)
        self.alarms: Alarms[M] = Alarms(runner)
        self.rules: Rules[M] = Rules(runner)
        self.identifiers: Identifiers[M] = Identifiers(runner)
        self.apps: Apps[M] = Apps(runner)

    def act_in(self, tenant_id: str | None) -> None:
        """Act in another tenant from now on (platform admins; ``None``: the caller's own)."""
        if tenant_id:
            self._headers["X-Tenant"] = tenant_id
        else:
            self._headers.pop("X-Tenant", None)

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token (token auth only): keep it to resume without a password."""
        return self.auth.refresh_token if isinstance(self.auth, TokenAuth) else None


class Client(_Resources[Sync]):
    """A blocking client: ``Client(url, auth=PasswordAuth(user, password))``; a str auth is an API key.

    ``tenant`` makes a platform admin act in another tenant (``X-Tenant``); extra keyword
    arguments go to ``httpx.Client`` (``transport``, ``verify``, ``proxy`` ...).
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        auth: httpx.Auth | str | None = None,
        *,
        tenant: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        **httpx_options: Any,
    ) -> None:
        options = _http_options(base_url, auth, tenant, timeout)
        resolved = options["auth"]
        self.http = httpx.Client(**options, **httpx_options)
        super().__init__(SyncRunner(self.http), resolved)

    def logout(self) -> None:
        """End the session (token auth): the refresh and access tokens stop working."""
        if isinstance(self.auth, TokenAuth) and self.auth.refresh_token:
            self.session.logout(self.auth.refresh_token)
            self.auth.forget()

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Resources[Async]):
    """An asyncio client: every resource method is awaited; streams and pages are async iterators.

    ``tenant`` makes a platform admin act in another tenant (``X-Tenant``); extra keyword
    arguments go to ``httpx.AsyncClient`` (``transport``, ``verify``, ``proxy`` ...).
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        auth: httpx.Auth | str | None = None,
        *,
        tenant: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        **httpx_options: Any,
    ) -> None:
        options = _http_options(base_url, auth, tenant, timeout)
        resolved = options["auth"]
        self.http = httpx.AsyncClient(**options, **httpx_options)
        super().__init__(AsyncRunner(self.http), resolved)

    async def logout(self) -> None:
        """End the session (token auth): the refresh and access tokens stop working."""
        if isinstance(self.auth, TokenAuth) and self.auth.refresh_token:
            await self.session.logout(self.auth.refresh_token)
            self.auth.forget()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
