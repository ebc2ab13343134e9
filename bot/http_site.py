"""A TCPSite whose socket is bound first and served later: a busy port fails before anything starts.

Its own module because it subclasses aiohttp's TCPSite: importing it imports aiohttp, which only
the serving bot needs.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class ReservedSite(web.TCPSite):
    """A TCPSite whose socket is bound first and served later (`start_serving=False`)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        super().__init__(runner, host, port)
        self.started = False
        self._reserved: asyncio.Server | None = None

    async def bind(self) -> None:
        server = self._runner.server
        assert server is not None
        self._reserved = await asyncio.get_running_loop().create_server(
            server, self._host, self._port, start_serving=False
        )
        self._server = self._reserved
        sockets = self._reserved.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def start(self) -> None:
        assert self._reserved is not None
        self._runner._reg_site(self)
        await self._reserved.start_serving()
        self.started = True

    def close(self) -> None:
        if self._reserved is not None:
            self._reserved.close()
