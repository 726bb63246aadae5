"""Run an ASGI app with uvicorn in a background thread on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.services import free_port


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app``; yield its base URL; stop the server on exit."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_lean_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with Gongyun's lean server (``gongyun.idres.server``) in a thread."""
    import asyncio

    from gongyun.idres.server import serve_app

    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        task = asyncio.create_task(serve_app(app, "127.0.0.1", port, stop=stop))
        while not ready.is_set() and not task.done():
            await asyncio.sleep(0.02)
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                ready.set()
            except OSError:
                pass
        await task

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("lean server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
