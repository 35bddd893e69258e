"""A real MCP server for tests: the `mcp` SDK's own MCPServer, over Streamable HTTP or stdio.

The gateway's MCP client is checked against the reference implementation rather than a hand-written
fake, so what it sends and understands is what real servers see. The server runs as a child process
(`McpServerProcess` for HTTP on a loopback port, `stdio_command()` for a stdio server the gateway
launches itself), so a test can kill it and start it again on the same port, an outage and a recovery.

Run as a script:

    python tests/support/mcp_server.py --transport http --port 8931 [--require-header NAME=VALUE] [--name N]
    python tests/support/mcp_server.py --transport stdio [--name N]

The HTTP server serves `http://127.0.0.1:PORT/mcp` and speaks both protocol eras (the 2026-07-28
single-exchange wire and the older initialize handshake), as the SDK does. Its tools are plain and
deterministic; `grow` adds a tool at run time and announces it in both eras.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, TypedDict

import uvicorn
from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SCRIPT = Path(__file__).resolve()
HOST = "127.0.0.1"
START_S = 20.0  # bound on a server's start-up (importing the SDK takes most of it)
STOP_S = 5.0  # bound on a graceful stop before SIGKILL
DEFAULT_NAME = "switchboard-test-mcp"
READY = "MCP server listening on port"  # the HTTP server's stdout line once uvicorn listens


class Order(TypedDict):
    order_id: str
    status: str
    items: int


def build_server(name: str = DEFAULT_NAME) -> MCPServer:
    """An MCPServer with the test tools (logging at WARNING: no line per request in test output)."""
    server = MCPServer(name, log_level="WARNING", warn_on_duplicate_tools=False)

    # Handshake-era clients learn from `initialize` whether the tool list can change; MCPServer builds
    # that answer with default NotificationOptions (listChanged false) and has no setting for it, so
    # the low-level server's builder is wrapped (the 2026-07-28 era derives the flag from the listen bus).
    lowlevel = server._lowlevel_server
    build_options = lowlevel.create_initialization_options

    def initialization_options(notification_options: Any = None, *args: Any, **kwargs: Any) -> Any:
        options = notification_options or NotificationOptions(tools_changed=True)
        return build_options(options, *args, **kwargs)

    lowlevel.create_initialization_options = initialization_options  # type: ignore[method-assign]

    @server.tool()
    def lookup_order(order_id: str) -> Order:
        """Look up an order by id (always shipped, 3 items)."""
        return {"order_id": order_id, "status": "shipped", "items": 3}

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo_headers(ctx: Context) -> dict[str, str]:
        """The HTTP request headers this call arrived with, names lower-cased ({} on stdio)."""
        headers = ctx.headers
        return {key.lower(): value for key, value in headers.items()} if headers else {}

    @server.tool()
    def fail(message: str) -> str:
        """Fail with `message` (an isError result)."""
        raise ToolError(message)

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep `seconds`, then answer "done"."""
        await asyncio.sleep(seconds)
        return "done"

    @server.tool()
    def secret_admin_tool() -> str:
        """A tool for allow/block-list checks."""
        return "classified"

    def grown(x: int) -> int:
        """Double x (added at run time by `grow`)."""
        return x * 2

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add the tool `grown` and tell clients the tool list changed."""
        ctx.mcp_server.add_tool(grown)
        # 2026-07-28 era: an event on the subscriptions/listen bus (nobody listens on older connections).
        with contextlib.suppress(Exception):
            await ctx.notify_tools_changed()
        # Handshake era: notifications/tools/list_changed on the session (the SDK drops it at 2026-07-28).
        with contextlib.suppress(Exception):
            await ctx.session.send_tool_list_changed()
        return "grown"

    @server.tool()
    def big(n: int) -> str:
        """A string of `n` "x" characters."""
        return "x" * n

    return server


def require_header(app: ASGIApp, name: str, value: str) -> ASGIApp:
    """ASGI middleware answering 401 to an HTTP request without header `name` equal to `value`."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and Headers(scope=scope).get(name) != value:
            await PlainTextResponse(f"missing or wrong {name} header", status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


async def serve_http(server: MCPServer, port: int, required: tuple[str, str] | None) -> None:
    """Serve Streamable HTTP on 127.0.0.1:`port` at /mcp until SIGTERM/SIGINT; print READY once listening."""
    app: ASGIApp = server.streamable_http_app(host=HOST)
    if required is not None:
        app = require_header(app, *required)
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", timeout_graceful_shutdown=1)
    http = uvicorn.Server(config)

    async def announce() -> None:
        while not http.started:
            await asyncio.sleep(0.01)
        print(f"{READY} {port}", flush=True)

    announcing = asyncio.create_task(announce())
    try:
        await http.serve()  # a failed bind exits the process from here (SystemExit)
    finally:
        announcing.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A real MCP server (the mcp SDK's MCPServer) for tests.")
    parser.add_argument("--transport", choices=("http", "stdio"), default="http")
    parser.add_argument("--port", type=int, default=0, help="loopback port for --transport http")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--require-header", metavar="NAME=VALUE",
                        help="answer 401 to HTTP requests without this header")
    args = parser.parse_args(argv)
    server = build_server(args.name)
    if args.transport == "stdio":
        asyncio.run(server.run_stdio_async())
        return
    if not args.port:
        parser.error("--transport http needs --port")
    required = None
    if args.require_header:
        header, sep, value = args.require_header.partition("=")
        if not sep or not header:
            parser.error("--require-header takes NAME=VALUE")
        required = (header.lower(), value)
    asyncio.run(serve_http(server, args.port, required))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def stdio_command(extra_args: tuple[str, ...] | list[str] = ()) -> tuple[str, list[str]]:
    """(command, args) that start this server over stdio, for a gateway's stdio server config."""
    return sys.executable, [str(SCRIPT), "--transport", "stdio", *extra_args]


class McpServerProcess:
    """The HTTP server as a child process on a fixed loopback port: `start()`, `kill()` (SIGKILL: an
    outage), `start()` again on the same port (a recovery), `stop()`. A context manager; blocking, with
    `astart()`/`astop()` for event loops that must keep serving meanwhile (the gateway under test)."""

    def __init__(self, *, port: int | None = None, name: str | None = None,
                 require_header: tuple[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.args = [str(SCRIPT), "--transport", "http", "--port", str(self.port)]
        if name is not None:
            self.args += ["--name", name]
        if require_header is not None:
            self.args += ["--require-header", "=".join(require_header)]
        self.args += extra_args
        self.proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/mcp"

    def output(self) -> str:
        """What the server (all its runs) wrote so far, stdout and stderr: logs, tracebacks."""
        return Path(self._log.name).read_text(errors="replace") if self._log is not None else ""

    def start(self, timeout_s: float = START_S) -> McpServerProcess:
        """Start the server and return once it says it listens (its own line, so a stranger holding the
        port is not mistaken for it)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the MCP server on port {self.port} is already running")
        if self._log is None:
            self._log = tempfile.NamedTemporaryFile(prefix=f"sb-mcp-{self.port}-", suffix=".log")  # noqa: SIM115
        log = Path(self._log.name)
        offset = log.stat().st_size  # earlier runs' output stays in the log; only this run's counts
        self.proc = subprocess.Popen([sys.executable, *self.args], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True)
        ready = f"{READY} {self.port}".encode()
        deadline = time.monotonic() + timeout_s
        while True:
            with log.open("rb") as f:
                f.seek(offset)
                if ready in f.read():
                    return self
            status = self.proc.poll()
            if status is not None or time.monotonic() > deadline:
                self.kill()
                why = f"exited with status {status}" if status is not None else f"did not start in {timeout_s:g}s"
                raise RuntimeError(f"the MCP server on port {self.port} {why}:\n{self.output()[-4000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop abruptly, as a crash would: SIGKILL, then reap."""
        if self.proc is not None:
            self.proc.kill()  # Popen skips the signal once the process is reaped (its pid may be reused)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), SIGKILL after STOP_S, and delete the output log."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                pass
            self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def astart(self, timeout_s: float = START_S) -> McpServerProcess:
        return await asyncio.to_thread(self.start, timeout_s)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> McpServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
