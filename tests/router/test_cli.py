"""`switchboard check` and `switchboard serve` as subprocesses (`python -m router ...`).

Every wait is bounded and every process started here is killed in `finally`. The multi-worker test
proves two workers serve without adding any header: each worker holds its own SO_REUSEPORT listening
socket (read from /proc), a SIGKILLed worker is replaced while requests keep succeeding, and SIGTERM
to the parent stops every process cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from support.redis_server import free_port
from support.serve_process import (
    ROOT,
    alive,
    children,
    clean_env,
    kill_all,
    listening_inodes,
    proc_stat,
    request,
    socket_inodes,
    start_serve,
    wait_for,
)

RUN_S = 30  # bound on a `check` run
START_S = 30  # bound on the router becoming ready
STOP_S = 15  # bound on a clean shutdown

GOOD = """\
providers:
  openai:
    keys: [{value: "${OPENAI_API_KEY}"}]
  demo: {type: mock, models: [echo, lorem]}
models:
  fast:
    targets: [{model: openai/gpt-4o-mini, weight: 3}, {model: demo/echo}]
    fallbacks: [demo/lorem]
  quick: demo/echo
"""
BAD = """\
server: {port: eighty}
providers:
  openai:
    keys: [{value: 5, wieght: 2}]
  demo: {type: mock, colour: blue}
"""
MOCK = """\
providers:
  demo: {type: mock, models: [echo, lorem]}
models:
  fast: demo/echo
"""


def _check(config: Path, *command: str) -> subprocess.CompletedProcess:
    argv = list(command or (sys.executable, "-m", "router"))
    return subprocess.run([*argv, "check", "--config", str(config)], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=RUN_S)


def test_check_prints_the_resolved_routes(tmp_path: Path) -> None:
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    result = _check(config)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == f"{config}: ok"
    assert "provider demo: type mock, local://mock, 0 key(s)" in out
    assert "provider openai: disabled" in out
    assert "model fast: targets demo/echo (weight 1); fallbacks demo/lorem" in out
    assert "model quick: targets demo/echo (weight 1); fallbacks none" in out
    assert result.stderr.splitlines() == ["warning: providers.openai: every key is empty; provider disabled"]


def test_check_with_the_key_set(tmp_path: Path) -> None:
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    result = subprocess.run([sys.executable, "-m", "router", "check", "--config", str(config)], cwd=ROOT,
                            env=clean_env(OPENAI_API_KEY="sk-from-env"), capture_output=True, text=True, timeout=RUN_S)
    assert result.returncode == 0, result.stderr
    assert "provider openai: type openai, https://api.openai.com/v1, 1 key(s)" in result.stdout
    assert "model fast: targets openai/gpt-4o-mini (weight 3), demo/echo (weight 1); fallbacks demo/lorem" \
        in result.stdout
    assert "sk-from-env" not in result.stdout + result.stderr
    assert result.stderr == ""


def test_check_reports_one_line_per_problem_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD)
    result = _check(config)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.partition(": ")[0] for line in lines] == [
        "server.port", "providers.openai.keys[0].value", "providers.openai.keys[0].wieght", "providers.demo.colour"]
    assert lines[2] == "providers.openai.keys[0].wieght: unknown key"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (None, "cannot read config"),
    ("providers: [unclosed\n", "invalid YAML"),
    ("providers:\n  x: {type: nope}\n", "providers.x.type: unknown provider type 'nope'"),
])
def test_check_fails_on_an_unusable_file(tmp_path: Path, content: str | None, expected: str) -> None:
    config = tmp_path / "config.yaml"
    if content is not None:
        config.write_text(content)
    result = _check(config)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_switchboard_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("switchboard")
    if not script.exists():
        pytest.skip("the console script is installed by `pip install -e .`")
    config = tmp_path / "good.yaml"
    config.write_text(GOOD)
    assert _check(config, str(script)).returncode == 0
    config.write_text(BAD)
    result = _check(config, str(script))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 4


# -- serve --workers 2 ----------------------------------------------------------------------------
def _process_group(pgid: int) -> set[int]:
    """Live processes in process group `pgid` (the parent runs in its own session, its workers inherit it)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) and int(fields[2]) == pgid \
                and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def _kill_all(proc: subprocess.Popen, workers: set[int]) -> None:
    """Kill the parent and every worker, sweep the parent's process group too, and fail if any survives."""
    kill_all(proc, workers, STOP_S)
    deadline = time.monotonic() + STOP_S
    while (left := {pid for pid in workers if alive(pid)} | _process_group(proc.pid)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert not left, f"processes left behind: {sorted(left)}"


def _workers_listening(parent: int, port: int, count: int) -> dict[int, set[str]] | None:
    """{worker pid: its listening sockets on `port`} once `count` workers each hold their own."""
    listening = listening_inodes(port)
    held = {pid: socket_inodes(pid) & listening for pid in children(parent)}
    if len(held) == count and all(held.values()) and len(set().union(*held.values())) >= count:
        return held
    return None


CHAT = {"model": "fast", "messages": [{"role": "user", "content": "hello workers"}]}


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_serve_two_workers_restart_and_clean_shutdown(tmp_path: Path) -> None:
    config = tmp_path / "mock.yaml"
    config.write_text(MOCK)
    port = free_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = start_serve(config, port, clean_env(), out, err)
    seen: set[int] = set()  # every worker pid, for the cleanup
    try:
        held = wait_for(lambda: _workers_listening(proc.pid, port, 2), START_S, "two listening workers")
        first_workers = set(held)
        seen |= first_workers
        # Two processes, each with its own listening socket on the port: SO_REUSEPORT sharing.
        assert len(first_workers) == 2 and proc.pid not in first_workers
        assert not (socket_inodes(proc.pid) & listening_inodes(port)), "the parent itself must not listen"
        wait_for(lambda: _healthy(port), START_S, "/healthz")

        for _ in range(50):
            status, body = request(port, "POST", "/v1/chat/completions", CHAT)
            assert status == 200, body
            assert orjson.loads(body)["choices"][0]["message"]["content"] == "hello workers"

        victim = min(first_workers)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), STOP_S, "the killed worker to die")
        # The kernel drops the dead listener from the SO_REUSEPORT group a moment after the process
        # is a zombie; a connection made in that instant is reset. Give it that moment.
        time.sleep(0.1)
        for _ in range(20):  # the surviving worker (and soon its replacement) keeps serving
            status, body = request(port, "POST", "/v1/chat/completions", CHAT)
            assert status == 200, body
        held = wait_for(lambda: (h := _workers_listening(proc.pid, port, 2)) and victim not in h and h,
                         START_S, "the parent to restart the killed worker")
        seen |= set(held)
        replacement = set(held) - first_workers
        assert len(replacement) == 1 and set(held) - replacement == first_workers - {victim}
        for _ in range(10):
            assert request(port, "GET", "/v1/models")[0] == 200

        workers = set(held)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_S) == 0
        wait_for(lambda: not any(alive(pid) for pid in workers), STOP_S, "every worker to exit")
        with pytest.raises(OSError):
            request(port, "GET", "/healthz")
    finally:
        _kill_all(proc, seen)
    log = stderr.read_text()
    assert "Traceback" not in log, log
    assert f"listening on http://127.0.0.1:{port} with 2 worker(s)" in log
    assert f"worker {victim} exited with code -9; restarting it" in log


def _healthy(port: int) -> bool:
    try:
        return request(port, "GET", "/healthz") == (200, b'{"status":"ok"}')
    except OSError:
        return False
