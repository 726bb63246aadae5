"""The recursive resolver's upstream client keeps connections, and survives sites closing them."""

from __future__ import annotations

import asyncio

import pytest

from gongyun.idres.upstream import UpstreamClient, UpstreamError


async def test_keep_alive_reuse_and_a_closed_idle_connection() -> None:
    connections = 0
    close_after_one = False

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ")[1]
                body = b'{"path":"' + path + b'"}'
                chunked = path.endswith(b"/chunked")
                if chunked:
                    size = hex(len(body))[2:].encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                        + size
                        + b"\r\n"
                        + body
                        + b"\r\n0\r\n\r\n"
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                await writer.drain()
                if close_after_one:  # the site drops idle connections without saying so
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(timeout=3)
    try:
        for i in range(5):
            assert await client.get(f"http://127.0.0.1:{port}/x/{i}") == (404, b'{"path":"/x/%d"}' % i)
        assert connections == 1
        assert await client.get(f"http://127.0.0.1:{port}/y/chunked") == (200, b'{"path":"/y/chunked"}')
        close_after_one = True
        await client.get(f"http://127.0.0.1:{port}/a")  # served; the site then closes
        await asyncio.sleep(0.05)
        assert await client.get(f"http://127.0.0.1:{port}/b") == (404, b'{"path":"/b"}')
        with pytest.raises(UpstreamError):
            await client.get("http://127.0.0.1:1/nothing-listens")
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_pipelined_answers_match_their_requests_and_a_silent_site_times_out() -> None:
    connections = 0
    most_in_one_read = 0
    quiet = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections, most_in_one_read
        connections += 1
        buf = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                *heads, buf = buf.split(b"\r\n\r\n")
                most_in_one_read = max(most_in_one_read, len(heads))
                out = []
                for head in heads:
                    path = head.split(b" ")[1]
                    if path.endswith(b"/silent"):
                        await quiet.wait()  # never answers; the connection stays open meanwhile
                        return
                    body = b'{"path":"' + path + b'"}'
                    out.append(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
                await asyncio.sleep(0.001 * len(out))  # answers come later than asked
                writer.write(b"".join(out))
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = UpstreamClient(timeout=0.5, max_conns=4)
    base = f"http://127.0.0.1:{port}"
    try:
        answers = await asyncio.gather(*(client.submit(base, f"/r/{i}") for i in range(400)))
        assert answers == [(200, b'{"path":"/r/%d"}' % i) for i in range(400)]
        assert connections <= 4 and most_in_one_read > 1  # several requests a write
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamError, match="no answer"):
            await client.get(f"{base}/silent")
        assert asyncio.get_running_loop().time() - t0 < 2
    finally:
        quiet.set()
        await client.aclose()
        server.close()
