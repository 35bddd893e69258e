"""The floor of scenario 7: a bare TCP byte pipe on the same event loop, its own process.

    python -m benchmarks.byte_pipe --port P --upstream-port U

Every client connection is piped to the upstream and back, byte for byte, with the least work an
asyncio proxy can do per chunk: one `data_received` (one read), one `transport.write` (one send), flow
control through pause/resume reading. No HTTP parsing, no JSON, no accounting. Its CPU per relayed
chunk, measured under the same streams as the router, is what the kernel and the event loop cost on
this machine: the part of the router's per-chunk cost that no Python code can remove.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


class _Half(asyncio.Protocol):
    """One side of a pipe: what it reads is written to its peer."""

    __slots__ = ("peer", "pending", "transport")

    def __init__(self) -> None:
        self.peer: _Half | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # read before the peer connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Half):
    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__()
        self.upstream = upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        upstream = _Half()
        upstream.peer = self
        try:
            await asyncio.get_running_loop().create_connection(lambda: upstream, *self.upstream)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        self.peer = upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()


async def _serve(port: int, upstream: tuple[str, int]) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream), "127.0.0.1", port, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"byte pipe on 127.0.0.1:{port} -> {upstream[0]}:{upstream[1]}", flush=True)
    async with server:
        await stop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--upstream-host", default="127.0.0.1")
    args = ap.parse_args(argv)
    serve = _serve(args.port, (args.upstream_host, args.upstream_port))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve)
    else:
        uvloop.run(serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
