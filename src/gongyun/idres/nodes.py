"""One program, four roles: root, secondary, enterprise and recursive identifier nodes.

``build_app(config)`` returns the ASGI app of a node; ``prepare(config)`` migrates its
database and makes sure the prefixes it serves exist (active) with an ``<prefix>/admin``
record whose ``HS_SECKEY`` at index 300 is the configured admin secret. ``serve`` runs a
node with uvicorn (several workers share the port when asked). A root started with
``mirror_of`` copies the prefix records the other root originated every ``mirror_interval``
seconds; two roots started with each other as ``mirror_of`` mirror both ways. A node
started with ``all_tenants`` on the platform's database resolves every tenant's records
(the identifiers of assets, devices and tags); ``tenant`` then owns the served prefixes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import orjson

from gongyun.core.tasks import cancel_and_wait
from gongyun.db import Database, upgrade
from gongyun.errors import ConfigError, GongyunError
from gongyun.idres import prefixes as pfx
from gongyun.idres.asgi import AsgiApp, Request, Response, json_response
from gongyun.idres.auth import Principal, hash_secret, static_token_auth
from gongyun.idres.cache import open_cache
from gongyun.idres.changes import ChangeWatcher
from gongyun.idres.errors import HandleNotFound, PrefixNotServed
from gongyun.idres.http import HandleService
from gongyun.idres.node_routes import NodeRoutes, RecursiveRoutes
from gongyun.idres.pgread import PointReader
from gongyun.idres.registry import Registry
from gongyun.idres.rescache import SharedRecords
from gongyun.idres.resolver import Resolver
from gongyun.idres.values import ADMIN_ONLY, HandleValue, admin_value

log = logging.getLogger(__name__)
ENV_CONFIG = "GONGYUN_IDNODE_CONFIG"


class Role(StrEnum):
    """The role a node plays in the hierarchy."""

    root = "root"
    secondary = "secondary"
    enterprise = "enterprise"
    recursive = "recursive"


@dataclass(slots=True)
class NodeConfig:
    """Everything a node needs to start."""

    role: Role
    db_url: str | None = None
    tenant: str = "default"
    prefixes: list[str] = field(default_factory=list)
    roots: list[str] = field(default_factory=list)
    mirror_of: str | None = None
    mirror_interval: float = 2.0
    node_id: str | None = None
    cache_url: str | None = None
    cache_namespace: str = "gy:idres:"  # key prefix in Redis: resolution_cache_namespace(deployment_id)
    cache_size: int = 200_000
    cache_max_age: float = 86_400.0  # the records' own TTLs rule; the change feed invalidates
    read_connections: int = 4  # persistent PostgreSQL connections per worker for point reads
    negative_ttl: float = 30.0
    credential_ttl: float = 60.0  # seconds a verified Basic credential is remembered (refreshed ahead)
    max_ttl: float = 86_400.0
    admin_token: str | None = None
    admin_secret: str | None = None
    platform_auth: bool = False
    all_tenants: bool = False  # serve every tenant's records on the database (the platform's node)
    host: str = "127.0.0.1"
    port: int = 8100
    workers: int = 1

    def __post_init__(self) -> None:
        self.role = Role(self.role)
        if self.role is Role.recursive and not self.roots:
            raise ConfigError("a recursive node needs at least one --root URL")
        if self.role is not Role.recursive and not self.db_url:
            raise ConfigError(f"a {self.role.value} node needs a database URL (--db)")
        if self.role in {Role.secondary, Role.enterprise} and not self.prefixes:
            raise ConfigError(f"a {self.role.value} node needs at least one --prefix")

    def to_env(self) -> str:
        """JSON for the environment variable read by worker processes."""
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_env(cls) -> NodeConfig:
        """The config a parent process put into ``GONGYUN_IDNODE_CONFIG``."""
        raw = os.environ.get(ENV_CONFIG)
        if not raw:
            raise ConfigError(f"{ENV_CONFIG} is not set")
        data: dict[str, Any] = orjson.loads(raw)
        return cls(**data)


async def prepare(config: NodeConfig) -> None:
    """Migrate the node's database; create its served prefixes and admin records."""
    if config.role is Role.recursive or config.db_url is None:
        return
    await upgrade(config.db_url)
    db = Database(config.db_url)
    try:
        registry = Registry(db)
        kind = {Role.root: "top", Role.secondary: "secondary", Role.enterprise: "enterprise"}[config.role]
        for prefix in config.prefixes:
            async with db.session() as s:
                try:
                    await pfx.require_active(s, config.tenant, prefix)
                except PrefixNotServed:
                    await pfx.submit(
                        s, config.tenant, prefix, kind, status=pfx.FilingStatus.active, note="served"
                    )
            if config.admin_secret:
                admin = f"{prefix}/admin"
                try:
                    await registry.get(config.tenant, admin)
                except HandleNotFound:
                    secret = HandleValue(
                        300, "HS_SECKEY", "string", hash_secret(config.admin_secret), permissions=ADMIN_ONLY
                    )
                    await registry.put(config.tenant, admin, [admin_value(admin, 300), secret])
    finally:
        await db.dispose()


def _health(role: Role) -> Any:
    async def health(req: Request) -> Response:
        return json_response(200, {"status": "ok", "role": role.value})

    return health


def build_app(config: NodeConfig) -> AsgiApp:
    """The ASGI app of a node (call ``prepare`` first for database-backed roles)."""
    auths = []
    if config.admin_token:
        auths.append(static_token_auth({config.admin_token: Principal("operator", None, operator=True)}))
    app = AsgiApp(authenticators=auths)
    app.mount("/health", _health(config.role))
    if config.role is Role.recursive:
        cache = open_cache(config.cache_url, config.cache_size, config.cache_namespace)
        resolver = Resolver(config.roots, cache, negative_ttl=config.negative_ttl, max_ttl=config.max_ttl)
        RecursiveRoutes(resolver).install(app)
        app.on_shutdown.append(resolver.close)
        return app
    assert config.db_url is not None
    db = Database(config.db_url)
    registry = Registry(db)
    if config.platform_auth:
        # the node shares the platform's database: Gongyun users and API keys of its tenant, and
        # the platform's master key to open core values for callers cleared for them
        from gongyun.config import load_settings
        from gongyun.idres.platform_auth import platform_authenticator
        from gongyun.security.classify.keyring import configured_keyring

        settings = load_settings()
        registry.keyring = configured_keyring(settings)  # None: core values answer config_invalid
        served_tenant = None if config.all_tenants else config.tenant
        app.authenticators.append(platform_authenticator(db, settings, served_tenant))
    shared = None
    if config.cache_url is not None and not config.cache_url.startswith("memory"):
        # a shared cache (Redis) for every process of this node and the platform API
        cache = open_cache(config.cache_url, config.cache_size, config.cache_namespace)
        shared = SharedRecords(cache, negative_ttl=config.negative_ttl, max_ttl=config.max_ttl)
    served_tenant = None if config.all_tenants else config.tenant
    reader = None
    if db.dialect == "postgresql" and shared is None:
        reader = PointReader(config.db_url, served_tenant, config.read_connections)
    service = HandleService(
        registry,
        served_tenant,
        cache_size=config.cache_size,
        cache_max_age=config.cache_max_age,
        negative_ttl=config.negative_ttl,
        credential_ttl=config.credential_ttl,
        shared=shared,
        reader=reader,
    )
    service.install(app)
    watcher = ChangeWatcher(config.db_url, service.changed_elsewhere)
    app.on_startup.append(watcher.start)
    app.on_shutdown.append(watcher.stop)
    routes = NodeRoutes(
        registry, config.tenant, config.prefixes, config.node_id or f"{config.host}:{config.port}"
    )
    routes.install(app, config.role.value)
    from gongyun.idres.schemes import install_schemes

    answers = install_schemes(app, registry, served_tenant, service.local)
    watcher.listeners.append(answers.changed)
    if shared is not None:  # writes of the node's own routes (filings, allocations) reach Redis too
        app.after_write.append(lambda: service.flush(routes.tenant_id))
    if config.role is Role.root and config.mirror_of:
        mirror = Mirror(routes, config.mirror_of, config.mirror_interval)
        if shared is not None:
            mirror.after = lambda: service.flush(routes.tenant_id)
        app.on_startup.append(mirror.start)
        app.on_shutdown.append(mirror.stop)

    async def close() -> None:
        service.close()
        if reader is not None:
            await reader.close()
        if shared is not None:
            await shared.close()
        await db.dispose()

    app.on_shutdown.append(close)
    return app


class Mirror:
    """Pulls the prefix records a peer root originated into this root, periodically."""

    def __init__(self, routes: NodeRoutes, peer: str, interval: float) -> None:
        self.routes = routes
        self.peer = peer.rstrip("/")
        self.interval = interval
        self.task: asyncio.Task[None] | None = None
        self.synced = 0
        self.after: Callable[[], Awaitable[None]] | None = None  # run after each applied pull

    async def sync_once(self, client: httpx.AsyncClient) -> int:
        """One pull; returns how many records changed."""
        r = await client.get(f"{self.peer}/api/mirror")
        r.raise_for_status()
        changed = await self.routes.apply_mirror(r.content)
        if self.after is not None:
            await self.after()
        self.synced += 1
        return changed

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
            while True:
                try:
                    await self.sync_once(client)
                except (httpx.HTTPError, GongyunError, ValueError) as exc:
                    log.warning("mirroring %s failed: %s", self.peer, exc)
                await asyncio.sleep(self.interval)

    async def start(self) -> None:
        """Start the background pull loop."""
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop it."""
        await cancel_and_wait(self.task)


def app_from_env() -> AsgiApp:
    """uvicorn factory for worker processes (config from ``GONGYUN_IDNODE_CONFIG``)."""
    return build_app(NodeConfig.from_env())


def worker_main() -> None:
    """Entry point of a worker process (config from ``GONGYUN_IDNODE_CONFIG``)."""
    from gongyun.idres import server

    config = NodeConfig.from_env()
    server.run(build_app(config), config.host, config.port, reuse_port=True)


def serve(config: NodeConfig) -> None:
    """Prepare and run a node in the foreground until interrupted (Gongyun's lean server)."""
    from gongyun.idres import server

    asyncio.run(prepare(config))
    if config.workers > 1:
        env = dict(os.environ, **{ENV_CONFIG: config.to_env()})
        argv = [sys.executable, "-m", "gongyun.idres.nodes"]
        raise SystemExit(server.run_workers(argv, config.workers, env))
    server.run(build_app(config), config.host, config.port)


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("GONGYUN_LOG_LEVEL", "WARNING"))
    worker_main()
    sys.exit(0)
