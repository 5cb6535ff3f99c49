"""The sending side of one client's WebSocket, bounded so a stalled client cannot hold the server.

A client that stops reading (a frozen tab, a kiosk on a dead Wi-Fi link that TCP has
not noticed yet) makes every send wait on the transport's drain. Without a bound the
session's tasks wait forever, its audio piles up in kernel and user-space buffers,
and a heartbeat only notices once pings go unanswered. So: the kernel send buffer and
the transport's high-water mark are capped (``server.send_buffer_bytes``), and a send
that cannot get through within ``server.send_timeout_s`` aborts the connection. The
read loop then ends and the session closes like any other disconnect; other sessions
never wait on this one, because each send awaits only its own socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from aiohttp import web

log = logging.getLogger(__name__)


class ClientStalled(ConnectionResetError):
    """The client stopped reading; the connection was aborted. Sessions treat it like a disconnect."""


class ClientSocket:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, send_timeout_s: float,
                 send_buffer_bytes: int) -> None:
        self._ws = ws
        self._request = request
        self._send_timeout_s = send_timeout_s
        self.stalled = False
        self._bound_buffers(send_buffer_bytes)

    def _bound_buffers(self, limit: int) -> None:
        transport = self._request.transport
        if transport is None or limit <= 0:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)
            except OSError:  # some transports (tests, proxies) refuse it; the timeout still bounds
                log.debug("could not set SO_SNDBUF", exc_info=True)
        transport.set_write_buffer_limits(high=limit)

    async def send_str(self, data: str) -> None:
        await self._send(self._ws.send_str(data))

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self._ws.send_bytes(data))

    async def _send(self, sending) -> None:
        if self.stalled:
            sending.close()
            raise ClientStalled("the client stopped reading")
        try:
            async with asyncio.timeout(self._send_timeout_s):  # no extra task, no extra trip round the loop
                await sending
        except TimeoutError:
            self._abort()
            raise ClientStalled(f"the client read nothing for {self._send_timeout_s:g} s") from None

    def _abort(self) -> None:
        """A close frame would queue behind the unread data, so the TCP connection is reset."""
        if self.stalled:
            return
        self.stalled = True
        log.warning("client %s stopped reading for %g s: connection aborted", self._request.remote,
                    self._send_timeout_s)
        if (transport := self._request.transport) is not None:
            transport.abort()
