"""Gate tests on real services: skip with a reason locally, fail under CI=true."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

POSTGRES_ADMIN_DSN = os.environ.get("GONGYUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("GONGYUN_TEST_NATS", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("GONGYUN_TEST_REDIS", "redis://127.0.0.1:6379/0")
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883

_PORTS = {"postgres": 5432, "nats": 4222, "redis": 6379, "mqtt": 1883}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip (locally) or fail (CI=true) when the named loopback service is down."""
    port = _PORTS[name]
    if port_open("127.0.0.1", port):
        return
    reason = f"{name} is not running on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services are required)")
    pytest.skip(reason)


def require_path(path: str, what: str) -> None:
    """Skip (locally) or fail (CI=true) when a file the test needs is absent."""
    if os.path.exists(path):
        return
    reason = f"{what} not found at {path}"
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def scratch_postgres_database(tablespace: str | None = None) -> Iterator[str]:
    """Create a throw-away PostgreSQL database (in ``tablespace`` if given); yield its async URL; drop it."""
    import psycopg

    require_service("postgres")
    name = f"gy_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TABLESPACE "{tablespace}"' if tablespace else ""))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fresh_alarm_streams() -> None:
    """Delete the alarm and live streams on the test NATS before a multi-process test.

    Every test deployment shares one NATS server (in production a deployment has its own
    account), so a new deployment's engine would otherwise first replay what earlier test runs
    left in these streams.
    """
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(NATS_URL)
    try:
        js = nc.jetstream()
        for name in ("ALARM_COMMANDS", "ALARM_POINTS", "LIVE", "GATEWAY_STATUS"):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()


async def nats_snapshot() -> tuple[set[str], set[str]] | None:
    """The JetStream streams and registered deployment ids on the test NATS (None: unreachable)."""
    import nats
    from nats.js.errors import NotFoundError

    from gongyun.bus.nats import DEPLOYMENTS_BUCKET

    try:
        nc = await nats.connect(NATS_URL, connect_timeout=1, max_reconnect_attempts=0)
    except Exception:
        return None
    try:
        js = nc.jetstream()
        streams = {s.config.name for s in await js.streams_info()}
        keys: set[str] = set()
        with contextlib.suppress(NotFoundError, Exception):
            keys = set(await (await js.key_value(DEPLOYMENTS_BUCKET)).keys())
        return streams, keys
    finally:
        await nc.close()


async def drop_nats_leftovers(before: tuple[set[str], set[str]]) -> None:
    """Delete the streams and deployment registrations that appeared since ``before``.

    Every test deployment has its own namespace on the shared NATS server; without this, a
    test run would leave its streams (kept for days) and registrations there for good.
    """
    import nats
    from nats.js.errors import NotFoundError

    from gongyun.bus.nats import DEPLOYMENTS_BUCKET

    now = await nats_snapshot()
    if now is None:
        return
    nc = await nats.connect(NATS_URL, connect_timeout=1, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for name in now[0] - before[0]:
            if not name.startswith("KV_"):
                with contextlib.suppress(NotFoundError):
                    await js.delete_stream(name)
        if now[1] - before[1]:
            kv = await js.key_value(DEPLOYMENTS_BUCKET)
            for key in now[1] - before[1]:
                with contextlib.suppress(Exception):
                    await kv.purge(key)
    finally:
        await nc.close()
