"""OneWriteTransport: a response's headers and small body leave in one socket write, and nothing held
back is ever lost or late by more than one turn of the loop."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from app.lib.http_protocol import HOLD_BYTES, OneWriteTransport


class Recorder:
    """A transport that records each call that would be a socket write."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("writelines", b"".join(lines)))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return f"extra:{name}"


async def _wrapped() -> tuple[OneWriteTransport, Recorder]:
    real = Recorder()
    return OneWriteTransport(real, asyncio.get_running_loop()), real  # type: ignore[arg-type]


async def test_headers_and_body_go_out_in_one_call() -> None:
    t, real = await _wrapped()
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert real.calls == [] and t.get_write_buffer_size() == 19
    t.write(b'{"ok":true}')
    assert real.calls == [("writelines", b'HTTP/1.1 200 OK\r\n\r\n{"ok":true}')]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert len(real.calls) == 1


async def test_a_lone_write_leaves_on_the_next_turn_of_the_loop() -> None:
    t, real = await _wrapped()
    t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    await asyncio.sleep(0)
    assert real.calls == [("write", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")]


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([HOLD_BYTES + 1], [("write", HOLD_BYTES + 1)]),  # large: straight through
        ([10, HOLD_BYTES * 4], [("writelines", 10 + HOLD_BYTES * 4)]),  # headers + a large body
        ([10, 20, 30], [("writelines", 30), ("write", 30)]),  # held once per burst, not twice
    ],
)
async def test_what_is_held(sizes: list[int], expected: list[tuple[str, int]]) -> None:
    t, real = await _wrapped()
    for n in sizes:
        t.write(b"x" * n)
    await asyncio.sleep(0)
    assert [(kind, len(data)) for kind, data in real.calls] == expected


@pytest.mark.parametrize("end", ["close", "write_eof", "writelines"])
async def test_nothing_held_is_lost_or_reordered(end: str) -> None:
    t, real = await _wrapped()
    t.write(b"head")
    if end == "writelines":
        t.writelines([b"a", b"b"])
    else:
        getattr(t, end)()
    assert real.calls[0] == ("write", b"head") and len(real.calls) == 2


async def test_the_real_transport_answers_the_rest() -> None:
    t, real = await _wrapped()
    assert t.get_extra_info("peername") == "extra:peername"
    real.closed = True
    t.write(b"late")  # a closing transport holds nothing back
    assert real.calls == [("write", b"late")]


async def test_a_real_server_answers_in_one_write() -> None:
    """uvicorn with the protocol, a real socket: the client reads headers and body of each response
    on a keep-alive connection (a wrapper bug would hang or garble it)."""
    import uvicorn

    from app.lib.http_protocol import OneWriteHttpProtocol

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b"x" * (HOLD_BYTES * 3 if scope["path"] == "/big" else 5)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # connections queue in the kernel until the server accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(asgi, http=OneWriteHttpProtocol, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path, size in (("/", 5), ("/big", HOLD_BYTES * 3), ("/", 5)):
            writer.write(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK") and f"content-length: {size}".encode() in head
            assert await asyncio.wait_for(reader.readexactly(size), 5) == b"x" * size
        writer.close()
    finally:
        server.should_exit = True
        await task
