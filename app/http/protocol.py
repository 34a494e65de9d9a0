"""uvicorn's httptools protocol, with a response's head and body sent in one system call.

uvicorn writes the head of a response when the app sends `http.response.start` and the body when it sends
`http.response.body`: two `write` calls, and on loopback each is a trip through the kernel's TCP stack. In the
profile of bench/api_load.py the API's socket writes were a quarter of its CPU. Here the head is held until the
body comes, which for a plain response is in the same turn of the event loop, and sent with it; a streamed
response (Server-Sent Events) has its head sent at the next turn of the loop if no body came with it, so a
client waiting for the head never waits on an event.

`kerasd api` runs uvicorn with this protocol (`http="app.http.protocol:HttpToolsProtocol"`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http import httptools_impl


class _HeldHead:
    """The transport as one response's cycle sees it: its first write is held until the next write or the next
    turn of the loop, whichever comes first; everything else goes to the transport as it is."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        elif self._loop is not None:
            self._held = data
            self._loop.call_soon(self.flush)
            self._loop = None  # only the first write (the head) is held
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _HeldHead(self.transport, self.loop)  # type: ignore[assignment]
