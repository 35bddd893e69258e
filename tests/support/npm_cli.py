"""What the real command-line clients the tests run (Claude Code, Codex) have in common.

Each is an npm package pinned by a lockfile under tests/faces/, whose native binary npm installs
through an optional dependency: `npm ci` runs once when `node_modules` is missing, and the tests skip
only when `node` is not installed. A run is an asyncio subprocess (the server under test serves from
the same event loop) in a process group of its own, so that on timeout or cancellation the CLI and
anything it started (shell commands, ripgrep) are killed; a timeout raises TimeoutError carrying what
it printed so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest


def installed(package: Path, binary: Path, what: str) -> Path:
    """`binary`, installed with `npm ci` from `package`'s lockfile on first use."""
    if shutil.which("node") is None:
        pytest.skip(f"node is not installed: the {what} check needs Node and npm (apt-get install nodejs npm)")
    if not binary.exists():
        npm = shutil.which("npm")
        assert npm is not None, f"node is installed but npm is not: install npm to run the {what} check"
        subprocess.run([npm, "ci", "--prefix", str(package), "--no-audit", "--no-fund", "--loglevel=error"],
                       check=True, timeout=600)
    return binary


async def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float, what: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `args`, stdin closed (see the module doc for the process group)."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=str(cwd), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    out = asyncio.ensure_future(proc.stdout.read())
    err = asyncio.ensure_future(proc.stderr.read())
    try:
        done, _ = await asyncio.wait({asyncio.ensure_future(proc.wait())}, timeout=timeout)
        timed_out = not done
    finally:
        if proc.returncode is None:  # timed out, or the test was cancelled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    stdout, stderr = (await out).decode(errors="replace"), (await err).decode(errors="replace")
    if timed_out:
        raise TimeoutError(f"{what} did not finish within {timeout}s and was killed; "
                           f"stdout: {stdout[-2000:]!r}; stderr: {stderr[-2000:]!r}")
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr
