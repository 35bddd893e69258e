"""A real browser for tests: headless Debian Chromium loading pages from a local page server.

Cross-origin behaviour (CORS, preflights, what a page may read) is enforced by the browser, not by
the server, so only a real browser shows what a web page can do with the gateway. The page server
is its own origin (its own loopback port); each page runs a script and POSTs what it saw back to the
page server, same-origin. Waiting for that report (rather than `--dump-dom` with a virtual time
budget) keeps real network waits, such as streamed answers, out of Chromium's virtual clock.

Chromium runs with a fresh profile and without background networking, component updates or sync:
it must not try to reach the internet, which may be closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = ("chromium", "chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-default-browser-check")
PROBE_S = 30.0  # bound on the start-up check (one page, no network)

# The page around each test script: `main()` returns what the page saw; the result (or the error
# the script threw, as the browser words it) goes into the DOM and back to the page server.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title></head>
<body><pre id="result">pending</pre>
<script>
const CONFIG = {config};
{helpers}
{script}
async function report(outcome) {{
  document.getElementById("result").textContent = JSON.stringify(outcome);
  await fetch("/result/{name}", {{method: "POST", body: JSON.stringify(outcome)}});
}}
main().then(value => report({{ok: value}}),
            error => report({{error: String(error)}}));
</script></body></html>
"""

# Shared page helpers: read an SSE body as it arrives, and turn a failed fetch into data.
HELPERS = """
async function readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const events = [];
  let buffer = "", reads = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    reads += 1;
    buffer += decoder.decode(value, {stream: true}).replaceAll("\\r\\n", "\\n");
    let end;
    while ((end = buffer.indexOf("\\n\\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\\n").filter(l => l.startsWith("data:"))
                        .map(l => l.slice(5).replace(/^ /, "")).join("\\n");
      if (data) events.push(data === "[DONE]" ? data : JSON.parse(data));
    }
  }
  return {events, reads};
}

async function attempt(url, init) {
  try {
    const response = await fetch(url, init);
    return {status: response.status, type: response.type, body: await response.text()};
  } catch (error) {
    return {error: String(error)};
  }
}
"""


def chromium_path() -> str | None:
    """The Chromium binary, if one is installed."""
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


def ensure_chromium() -> str | None:
    """The Chromium binary, installing it first with scripts/system-deps.sh (root + apt-get) if missing."""
    found = chromium_path()
    if found is None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([str(ROOT / "scripts" / "system-deps.sh")], check=True, timeout=900,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = chromium_path()
    return found


def probe(binary: str) -> str | None:
    """Why Chromium cannot run a page's script here, or None when it can."""
    with tempfile.TemporaryDirectory(prefix="chromium-probe-", ignore_cleanup_errors=True) as scratch:
        tmp = Path(scratch, "tmp")
        tmp.mkdir()
        try:
            done = subprocess.run(
                [binary, *FLAGS, f"--user-data-dir={Path(scratch, 'profile')}", "--dump-dom",
                 "data:text/html,<p id=p>no</p><script>document.getElementById('p').textContent='yes'</script>"],
                capture_output=True, timeout=PROBE_S, env={**os.environ, "TMPDIR": str(tmp)})
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{binary} did not run: {exc}"
    if b">yes</p>" not in done.stdout:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return f"{binary} did not run a page (exit {done.returncode}): {' | '.join(tail)}"
    return None


class PageServer:
    """Serves test pages on its own loopback origin and collects what each page reports."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.pages: dict[str, str] = {}
        self.results: dict[str, asyncio.Future[Any]] = {}
        self.server: TestServer | None = None
        self.origin = ""

    async def start(self) -> PageServer:
        app = web.Application()
        app.router.add_get("/page/{name}", self._page)
        app.router.add_post("/result/{name}", self._result)
        app.router.add_get("/favicon.ico", _no_content)
        self.server = TestServer(app, host=self.host, port=0)
        await self.server.start_server()
        self.origin = f"http://{self.host}:{self.server.port}"
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def add(self, name: str, script: str, **config: Any) -> str:
        """Register a page whose `script` defines `async function main()`; `config` is its `CONFIG`.
        Returns the page's URL."""
        self.pages[name] = PAGE.format(name=name, config=orjson.dumps(config).decode(), helpers=HELPERS,
                                       script=script)
        self.results[name] = asyncio.get_running_loop().create_future()
        return f"{self.origin}/page/{name}"

    async def _page(self, request: web.Request) -> web.Response:
        html = self.pages.get(request.match_info["name"])
        if html is None:
            raise web.HTTPNotFound()
        return web.Response(text=html, content_type="text/html", headers={"cache-control": "no-store"})

    async def _result(self, request: web.Request) -> web.Response:
        future = self.results.get(request.match_info["name"])
        if future is None:
            raise web.HTTPNotFound()
        if not future.done():
            future.set_result(orjson.loads(await request.read()))
        return web.Response(status=204)


async def _no_content(_: web.Request) -> web.Response:
    return web.Response(status=204)


async def run_page(binary: str, server: PageServer, name: str, url: str, timeout_s: float) -> Any:
    """Load `url` in a fresh headless Chromium and return what the page reported within `timeout_s`.

    Chromium leads its own process group and gets a private profile and TMPDIR, all removed
    afterwards: no browser process or file outlives the run, whatever the page did."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as scratch:
        profile, tmp = Path(scratch, "profile"), Path(scratch, "tmp")
        tmp.mkdir()
        proc = await asyncio.create_subprocess_exec(
            binary, *FLAGS, f"--user-data-dir={profile}", url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True)
        log = bytearray()
        drain = asyncio.ensure_future(_collect(proc.stderr, log))
        exited = asyncio.ensure_future(proc.wait())
        reported = server.results[name]
        try:
            done, _ = await asyncio.wait({reported, exited}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if reported in done:
                return reported.result()
            why = f"exited with {proc.returncode}" if exited in done else f"reported nothing within {timeout_s:g}s"
            tail = log.decode("utf-8", "replace")[-2000:]
            raise AssertionError(f"chromium {why} on {url}\n{tail}")
        finally:
            await _stop(proc, exited)
            drain.cancel()


async def _collect(stream: asyncio.StreamReader | None, into: bytearray, limit: int = 1 << 16) -> None:
    """Keep reading Chromium's log (a full pipe would stall it), keeping the last `limit` bytes."""
    if stream is None:
        return
    while chunk := await stream.read(4096):
        into.extend(chunk)
        del into[:-limit]


async def _stop(proc: asyncio.subprocess.Process, exited: asyncio.Future[int]) -> None:
    """Ask the browser to quit (it removes its own files), then kill what is left of its group."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), 5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group this browser leads: only its own helpers
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), 5)
