"""Tiny real servers on loopback for notification tests: SMTP and an HTTP webhook sink."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _SMTPHandler(socketserver.StreamRequestHandler):
    def _say(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self) -> None:
        server: Any = self.server
        self._say("220 test ESMTP")
        mail: dict[str, Any] = {"rcpt": []}
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            cmd = line[:4].upper()
            if cmd in ("EHLO", "HELO"):
                self._say("250 test")
            elif cmd == "MAIL":
                mail["from"] = line.split(":", 1)[1].strip()
                self._say("250 OK")
            elif cmd == "RCPT":
                mail["rcpt"].append(line.split(":", 1)[1].strip())
                self._say("250 OK")
            elif cmd == "DATA":
                self._say("354 end with .")
                body = []
                while True:
                    part = self.rfile.readline().decode()
                    if part in (".\r\n", ".\n"):
                        break
                    body.append(part)
                mail["data"] = "".join(body)
                server.messages.append(dict(mail))
                mail = {"rcpt": []}
                self._say("250 queued")
            elif cmd == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 OK")


@contextmanager
def smtp_server() -> Iterator[Any]:
    """An SMTP server on an ephemeral port; ``.messages`` collects what it received."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    srv.daemon_threads = True
    srv.messages = []  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        server.posts.append({"path": self.path, "json": json.loads(body), "headers": dict(self.headers)})
        self.send_response(server.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def webhook_server(status: int = 200) -> Iterator[Any]:
    """An HTTP server on an ephemeral port; ``.posts`` collects the JSON bodies."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    srv.posts = []  # type: ignore[attr-defined]
    srv.status = status  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
