"""One socket write per small response: uvicorn's httptools protocol with its header write held back.

uvicorn writes a response's status line and headers when the ASGI app sends ``http.response.start``
and the body when it sends ``http.response.body``: two ``send()`` calls for every response, where
one would carry both (an autosave's answer is ~300 bytes). On exam day the second system call was
about a tenth of the server's CPU. ``OneWriteTransport`` holds a first small write back and sends
it with the next one (``writelines``: one system call); a held write that nothing follows (a
streaming response's headers before its first chunk) goes out at the end of the loop's current
iteration, so nothing waits on it. Larger writes, and every write after the first of a burst, go
straight through, so flow control and memory stay uvicorn's.

Passed to uvicorn as its ``http`` protocol class (``app serve``): a public option of uvicorn's
``Config``; the protocol class itself is uvicorn's, only its transport is wrapped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HOLD_BYTES = 16 * 1024
"""A write this small may wait for its successor (headers are a few hundred bytes)."""


class OneWriteTransport:
    """The transport uvicorn writes to, holding back one small write until the next (or the loop's
    next turn); every other method is the real transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines([held, data])
        elif len(data) <= HOLD_BYTES and not self._transport.is_closing():
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, lines: Any) -> None:
        self.flush()
        self._transport.writelines(lines)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a ``OneWriteTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = OneWriteTransport(transport, asyncio.get_running_loop())
        super().connection_made(wrapped)


__all__ = ["HOLD_BYTES", "OneWriteHttpProtocol", "OneWriteTransport"]
