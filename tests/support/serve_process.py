"""Driving `python -m router serve --workers N` as a subprocess, for the multi-worker tests.

The router runs in its own session; these helpers start it, talk to it over fresh connections, look
at its workers through Linux /proc, wait with a bound, and kill whatever it started.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import orjson

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """A clean environment: no vendor keys leak in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def start_serve(config: Path, port: int, env: dict[str, str], stdout: int | IO, stderr: int | IO,
                workers: int = 2) -> subprocess.Popen:
    """Start `python -m router serve` on 127.0.0.1:`port` with `workers` workers, in a new session."""
    return subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of one request on a new connection, so any worker may answer it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"connection": "close"}
        if body is not None:
            headers["content-type"] = "application/json"
        conn.request(method, path, body=orjson.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/`pid`/stat after the command name (state first), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> set[int]:
    """Live (non-zombie) child processes of `pid`."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) and int(fields[1]) == pid \
                and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state on `port` (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:  # 0A = LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets `pid` holds open."""
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def wait_for(predicate, timeout_s: float, what: str, *, interval_s: float = 0.1,
             ignore: tuple[type[BaseException], ...] = ()):
    """Poll `predicate` until it returns something truthy (returned); an `ignore`d exception counts as falsy."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except ignore:
            value = None
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


def kill_all(proc: subprocess.Popen, pids: set[int], timeout_s: float) -> None:
    """SIGKILL the parent first (so it starts no replacement), then every live worker, by pid."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=timeout_s)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
