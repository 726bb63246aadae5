"""Gongyun's lean HTTP server: fast path, ASGI path, ordering of pipelined requests, bad input."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from gongyun.idres.asgi import AsgiApp, Request, Response, json_response

from .serving import serve_lean_in_thread


def make_app() -> AsgiApp:
    app = AsgiApp()

    async def echo(req: Request) -> Response:
        return json_response(
            201, {"method": req.method, "path": req.path, "q": req.arg("q"), "len": len(req.body)}
        )

    app.mount("/echo", echo)
    app.fast_get = lambda raw: b'{"fast":true}' if raw == b"/fast" else None
    return app


@pytest.fixture
def base() -> Iterator[tuple[str, int]]:
    with serve_lean_in_thread(make_app()) as url:
        host, port = url[len("http://") :].split(":")
        yield host, int(port)


def exchange(addr: tuple[str, int], payload: bytes, expect: int) -> list[bytes]:
    """Send raw bytes; read until ``expect`` responses arrived; return their bodies."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < expect or not data.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    parts = data.split(b"HTTP/1.1 ")[1:]
    return [p.split(b"\r\n\r\n", 1)[1] for p in parts]


def test_fast_and_asgi_paths_in_order(base: tuple[str, int]) -> None:
    pipelined = (
        b"POST /echo/a?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /echo/%E6%B3%B5 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    bodies = exchange(base, pipelined, 3)
    assert bodies[0] == b'{"method":"POST","path":"/echo/a","q":"1","len":3}'
    assert bodies[1] == b'{"fast":true}'
    assert "泵".encode() in bodies[2]


def test_authorization_skips_fast_path(base: tuple[str, int]) -> None:
    bodies = exchange(base, b"GET /fast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n", 1)
    assert b"no such endpoint" in bodies[0]


def test_oversized_target_is_refused_cheaply(base: tuple[str, int]) -> None:
    from gongyun.idres.server import MAX_TARGET

    long = b"/echo/" + b"A" * MAX_TARGET
    payload = b"GET " + long + b" HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
    bodies = exchange(base, payload, 2)  # answered 414, and the connection goes on
    assert b'"code":"uri_too_long"' in bodies[0]
    assert bodies[1] == b'{"fast":true}'
    with socket.create_connection(base, timeout=5) as s:
        s.sendall(b"GET " + long + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 414 URI Too Long\r\n")


def test_bad_request(base: tuple[str, int]) -> None:
    with socket.create_connection(base, timeout=5) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 400")


def test_oversize_body_is_refused(base: tuple[str, int]) -> None:
    from gongyun.idres.asgi import MAX_BODY

    with socket.create_connection(base, timeout=5) as s:
        s.sendall(f"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 10}\r\n\r\n".encode())
        chunk = b"x" * 65536
        answer = b""
        try:
            for _ in range(MAX_BODY // len(chunk) + 2):
                s.sendall(chunk)
        except OSError:
            pass
        answer = s.recv(1024)
        assert answer.startswith(b"HTTP/1.1 413")


def test_idle_connections_are_closed(base: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from gongyun.idres import server

    monkeypatch.setattr(server, "IDLE_TIMEOUT", 0.3)
    with socket.create_connection(base, timeout=5) as s:
        s.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1024).endswith(b'{"fast":true}')
        time.sleep(0.8)
        assert s.recv(1024) == b""  # closed by the server


def test_trickled_requests_are_timed_out(base: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose headers trickle in is answered 408 and closed; others go on meanwhile."""
    import time

    from gongyun.idres import server

    monkeypatch.setattr(server, "REQUEST_TIMEOUT", 0.5)
    with socket.create_connection(base, timeout=5) as slow:
        slow.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        answer = b""
        while time.monotonic() - t0 < 3:
            assert exchange(base, b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n", 1) == [b'{"fast":true}']
            try:
                slow.sendall(b"X-A: b\r\n")  # a header line now and then: never idle, never complete
                slow.settimeout(0.1)
                answer = slow.recv(1024)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.4 < time.monotonic() - t0 < 2.5


def test_deferred_fast_answers_keep_their_order(base: tuple[str, int]) -> None:
    """A fast answer that comes later (a future) is written before the requests queued behind it."""
    import asyncio

    app = AsgiApp()

    def fast_raw(target: bytes, headers: list[tuple[bytes, bytes]], keep: bool) -> object:
        body = target[1:]
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        if not target.startswith(b"/later"):
            return answer if target.startswith(b"/now") else None
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, fut.set_result, answer)
        return fut

    async def app_answer(req: Request) -> Response:
        return Response(200, req.path[1:].encode(), [])

    app.fast_raw = fast_raw  # type: ignore[assignment]
    app.mount("/", app_answer)
    with serve_lean_in_thread(app) as url:
        host, port = url[len("http://") :].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(
                b"".join(
                    f"GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                    for p in ("later1", "now2", "app3", "later4", "now5")
                )
            )
            data = b""
            while data.count(b"HTTP/1.1 ") < 5 or not data.endswith(b"now5"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"later1", b"now2", b"app3", b"later4", b"now5"]


@pytest.mark.parametrize("when", ["later", "at_once"])
def test_a_deferred_raw_hook_answers_in_order_whenever_it_replies(when: str) -> None:
    """The ``deferred_raw`` hook (the recursive node's misses) may reply from a callback later or
    before it even returns; either way the pipelined requests are answered in order and the
    connection goes on serving."""
    import asyncio
    from collections.abc import Callable

    app = AsgiApp()

    def deferred(
        target: bytes, headers: list[tuple[bytes, bytes]], keep: bool, reply: Callable[[bytes], None]
    ) -> bool:
        if not target.startswith(b"/d"):
            return False
        body = target[1:]
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        if when == "at_once":
            reply(answer)
        else:
            asyncio.get_running_loop().call_later(0.02, reply, answer)
        return True

    async def app_answer(req: Request) -> Response:
        return Response(200, req.path[1:].encode(), [])

    app.deferred_raw = deferred
    app.mount("/", app_answer)
    names = ("d1", "app2", "d3", "d4", "app5")
    with serve_lean_in_thread(app) as url:
        host, port = url[len("http://") :].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            for _ in range(2):  # a second round on the same connection: nothing stays stuck
                s.sendall(b"".join(f"GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in names))
                data = b""
                while data.count(b"HTTP/1.1 ") < len(names) or not data.endswith(b"app5"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
                assert bodies == [n.encode() for n in names]
