"""Running the server: one process, or N worker processes sharing a port with SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import sys
import time

from aiohttp import web

from .app import build_app
from .config import LoadedConfig

log = logging.getLogger("switchboard")


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run_worker(loaded: LoadedConfig, host: str, port: int, reuse_port: bool) -> None:
    """Serve in this process until SIGTERM/SIGINT."""
    _install_uvloop()
    web.run_app(build_app(loaded), host=host, port=port, reuse_port=reuse_port, access_log=None,
                handler_cancellation=True, print=None, shutdown_timeout=10)


def serve(loaded: LoadedConfig, host: str, port: int, workers: int) -> None:
    print(f"switchboard: listening on http://{host}:{port} with {workers} worker(s), "
          f"config {loaded.source}", file=sys.stderr, flush=True)
    if workers <= 1:
        run_worker(loaded, host, port, reuse_port=False)
        return
    ctx = multiprocessing.get_context("fork")
    procs: list[multiprocessing.Process] = []
    stopping = False

    def start_one() -> multiprocessing.Process:
        proc = ctx.Process(target=run_worker, args=(loaded, host, port, True), daemon=False)
        proc.start()
        return proc

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs.extend(start_one() for _ in range(workers))
    restarts: list[float] = []
    while procs:
        for i, proc in enumerate(list(procs)):
            proc.join(timeout=0.2)
            if proc.is_alive():
                continue
            if stopping or proc.exitcode == 0:
                procs.remove(proc)
                continue
            # A worker died on its own: replace it, unless workers keep crashing.
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5 * workers:
                log.error("workers keep exiting (last exit code %s); stopping", proc.exitcode)
                stop(signal.SIGTERM, None)
                procs.remove(proc)
                continue
            log.warning("worker %s exited with code %s; restarting it", proc.pid, proc.exitcode)
            procs[i] = start_one()
