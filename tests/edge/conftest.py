"""Fixtures for the edge tests: simulators on free ports, profile paths, a config writer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from gongyun.sim.cnc import CncServer
from gongyun.sim.factory import profiles_dir
from gongyun.sim.pump import PumpServer
from tests.services import free_port

PROFILES = profiles_dir()
logging.getLogger("asyncua").setLevel(logging.ERROR)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> None:
    """Wait until ``cond()`` is true or fail."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


@pytest.fixture
async def pump() -> AsyncIterator[PumpServer]:
    server = PumpServer(port=free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def cnc() -> AsyncIterator[CncServer]:
    server = CncServer(port=free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
