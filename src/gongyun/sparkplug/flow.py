"""Flow control for an aiomqtt client: stop reading its socket while the consumer is busy."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt


class SocketReading:
    """Pause and resume reading one aiomqtt client's socket, so that TCP flow control and then the
    broker's queue hold what the host cannot take yet (nothing is read into memory meanwhile).

    aiomqtt has no public switch for this: it reads the socket from an event loop reader that it
    installs, so pausing removes that reader and resuming installs an equivalent one (paho's
    ``loop_read``; a failure ends the connection as aiomqtt's own reader does). Without a socket
    (not connected, or another library version) nothing is paused and the bounded incoming queue
    of the client is the backstop. While paused paho still sends keep-alives; a pause longer than
    about twice the keep-alive interval ends the connection and the host reconnects.
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.paho: Any = getattr(client, "_client", None)
        self._sock: Any = None
        self.pauses = 0

    @property
    def paused(self) -> bool:
        """Whether the socket is not being read now."""
        return self._sock is not None

    def pause(self) -> bool:
        """Stop reading; False when already paused or not possible."""
        sock = self.paho.socket() if self.paho is not None else None
        if self._sock is not None or sock is None or sock.fileno() < 0:
            return False
        asyncio.get_running_loop().remove_reader(sock.fileno())
        self._sock = sock
        self.pauses += 1
        return True

    def resume(self) -> None:
        """Read again (unless the connection closed meanwhile)."""
        sock, self._sock = self._sock, None
        if sock is not None and self.paho.socket() is sock and sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        try:
            while True:
                self.paho.loop_read()
                pending = getattr(self.paho.socket(), "pending", None)  # TLS: decoded bytes left
                if pending is None or pending() <= 0:
                    break
        except Exception as exc:  # the connection broke: end it as aiomqtt's reader would
            disconnected = getattr(self.client, "_disconnected", None)
            if isinstance(disconnected, asyncio.Future) and not disconnected.done():
                disconnected.set_exception(exc)
