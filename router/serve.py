"""Running the server: one process, or N worker processes sharing a port with SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import gc
import glob
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time

from aiohttp import web

from .config import LoadedConfig

log = logging.getLogger("switchboard")


def _install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def raise_open_files_limit() -> int:
    """Every open stream holds two sockets (client, upstream): the soft limit on open files (often 1,024)
    is raised to the hard limit, as servers commonly do. Returns the limit in force."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):  # no `resource` (Windows), or a limit we may not set
        return -1


def run_worker(loaded: LoadedConfig, host: str, port: int, reuse_port: bool) -> None:
    """Serve in this process until SIGTERM/SIGINT."""
    for sig in (signal.SIGTERM, signal.SIGINT):  # not the supervisor's handlers, inherited by a fork
        signal.signal(sig, signal.SIG_DFL)
    raise_open_files_limit()
    _install_uvloop()
    asyncio.run(_serve_until_stopped(loaded, host, port, reuse_port))


async def _serve_until_stopped(loaded: LoadedConfig, host: str, port: int, reuse_port: bool) -> None:
    from .app import build_app  # imports prometheus_client: after `_metrics_dir` set its directory
    from .edge_server import EdgeRunner

    app = build_app(loaded)
    app.on_startup.append(_settle_gc)  # after the gateway and observer started (cleanup_ctx runs first)
    server = loaded.config.server
    runner = EdgeRunner(app, headers_s=server.timeouts.headers_s, idle_s=server.timeouts.idle_s,
                        max_headers=server.max_headers, max_field_size=server.max_header_bytes)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a stop during start-up is honoured once it is done
        loop.add_signal_handler(sig, stopped.set)
    await runner.setup()
    try:
        if not stopped.is_set():
            await web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024).start()
            await stopped.wait()
    finally:
        await runner.cleanup()  # stops accepting, lets requests in flight finish, then the app's cleanup


GC_GEN0_THRESHOLD = 10_000  # default 700: a young collection every few requests under load


async def _settle_gc(_app: web.Application) -> None:
    """Start-up objects (modules, config, providers, metric families) live as long as the worker:
    collect once, then freeze them out of the collector's view so the rare full collections stay
    short (they were the p99 spikes), and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def serve(loaded: LoadedConfig, host: str, port: int, workers: int) -> None:
    print(f"switchboard: listening on http://{host}:{port} with {workers} worker(s), "
          f"config {loaded.source}", file=sys.stderr, flush=True)
    if workers <= 1:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # one process: the default registry
        run_worker(loaded, host, port, reuse_port=False)
        return
    metrics_dir, owned = _metrics_dir()
    try:
        _supervise(loaded, host, port, workers, metrics_dir)
    finally:
        _clean_metrics_dir(metrics_dir, owned)


def _metrics_dir() -> tuple[str, bool]:
    """Workers keep their metric values in files here (prometheus_client multiprocess mode). Set before
    anything imports prometheus_client: it picks its value store at import. A directory the operator
    named is emptied; otherwise a fresh temporary one is made (and removed at exit)."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        _clean_metrics_dir(given, owned=False)
        path, owned = given, False
    else:
        _remove_stale_dirs()
        path, owned = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-"), True
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    if "prometheus_client" in sys.modules:
        log.warning("prometheus_client was imported before the metrics directory was set; "
                    "metrics of other workers will be missing")
    return path, owned


_DIR_PREFIX = "switchboard-metrics-"


def _remove_stale_dirs() -> None:
    """Directories left by a parent that was killed (SIGKILL skips the clean-up): named after its pid."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), _DIR_PREFIX + "*-*")):
        pid = os.path.basename(path)[len(_DIR_PREFIX):].partition("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # that parent is gone
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive (another user's process, or a pid out of range): leave it
            pass


def _clean_metrics_dir(path: str, owned: bool) -> None:
    if owned:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in glob.glob(os.path.join(path, "*.db")):
        try:
            os.remove(name)
        except OSError:
            pass


def _worker_exited(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's `live*` gauges (in-flight, breakers...); its counters stay summed."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid, metrics_dir)
    except OSError:
        pass


def _supervise(loaded: LoadedConfig, host: str, port: int, workers: int, metrics_dir: str) -> None:
    from . import app  # noqa: F401  (import once here, shared copy-on-write by the forked workers)

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
            _worker_exited(proc.pid, metrics_dir)
            if stopping:
                procs.remove(proc)
                continue
            # A worker ended on its own (crash, OOM kill, a stray SIGTERM): replace it, unless
            # workers keep dying.
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < 60] + [now]
            if len(restarts) > 5 * workers:
                log.error("workers keep exiting (last exit code %s); stopping", proc.exitcode)
                stop(signal.SIGTERM, None)
                procs.remove(proc)
                continue
            log.warning("worker %s exited with code %s; restarting it", proc.pid, proc.exitcode)
            procs[i] = start_one()
