"""Metrics under `switchboard serve --workers 2`: every scrape, whichever worker answers it, counts every
request of every worker, including those of a worker that was killed and replaced.

The router runs as a subprocess in its own session; every wait is bounded and every process it
started is killed in `finally`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.redis_server import free_port
from support.serve_process import ROOT, children, kill_all, request, start_serve, wait_for

START_S = 30
STOP_S = 15
CONFIG = """\
providers:
  demo: {type: mock, models: [echo]}
server: {extra_fields: true}
"""
CHAT = {"model": "demo/echo", "messages": [{"role": "user", "content": "count me"}]}

pytestmark = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")


def _scrape(port: int) -> dict[str, float]:
    """Chat request totals of one scrape, summed over label sets."""
    status, body = request(port, "GET", "/metrics")
    assert status == 200
    totals = {"requests": 0.0, "latency_count": 0.0, "in_flight": 0.0}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.labels.get("route") != "chat":
                continue
            if s.name == "switchboard_requests_total":
                totals["requests"] += s.value
            elif s.name == "switchboard_request_duration_seconds_count":
                totals["latency_count"] += s.value
            elif s.name == "switchboard_in_flight_requests":
                totals["in_flight"] += s.value
    return totals


def _metrics_dir(pid: int) -> Path | None:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if "switchboard-metrics-" in line and line.endswith(".db"):
            return Path(line.split()[-1]).parent
    return None


def _pids_served(stdout: Path) -> list[int]:
    pids = []
    for line in stdout.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = orjson.loads(line)
            if entry.get("path") == "/v1/chat/completions":
                pids.append(entry["pid"])
    return pids


def _wait_for(predicate, timeout: float, what: str):
    """`wait_for`, polling every 50 ms, with a request that fails to connect counting as not yet."""
    return wait_for(predicate, timeout, what, interval_s=0.05, ignore=(OSError,))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_two_workers_every_scrape_counts_everyrequest(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = start_serve(config, port, _env(), out, err)
    seen: set[int] = set()
    try:
        workers = _wait_for(lambda: c if len(c := children(proc.pid)) == 2 else None, START_S, "two workers")
        seen |= workers
        _wait_for(lambda: request(port, "GET", "/healthz")[0] == 200, START_S, "/healthz")
        _wait_for(lambda: all(_metrics_dir(pid) for pid in workers), START_S, "both workers' metric files")
        metrics_dir = _metrics_dir(min(workers))
        assert metrics_dir is not None and metrics_dir == _metrics_dir(max(workers))

        # New connections until both workers have served some (a worker may still be binding at first).
        n = 0
        deadline = time.monotonic() + START_S
        while n < 40 or set(_pids_served(stdout)) != workers:
            assert time.monotonic() < deadline, f"both workers never served: {set(_pids_served(stdout))}"
            assert request(port, "POST", "/v1/chat/completions", CHAT)[0] == 200
            n += 1
            if n >= 40:
                time.sleep(0.05)  # access-log lines are written in batches
        _wait_for(lambda: len(_pids_served(stdout)) == n, 5, f"{n} access-log lines")
        for _ in range(6):  # new connections: the kernel hands scrapes to either worker
            assert _scrape(port) == {"requests": n, "latency_count": n, "in_flight": 0}

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = _wait_for(lambda: c if len(c := children(proc.pid)) == 2 and victim not in c else None,
                             START_S, "the killed worker to be replaced")
        seen |= replaced
        _wait_for(lambda: not (metrics_dir / f"gauge_livesum_{victim}.db").exists(), STOP_S,
                  "the dead worker's live gauges to be dropped")
        assert (metrics_dir / f"counter_{victim}.db").exists()  # its counts stay in the sums
        time.sleep(0.1)  # the kernel drops the dead listener from the SO_REUSEPORT group a moment later
        for _ in range(6):
            assert _scrape(port) == {"requests": n, "latency_count": n, "in_flight": 0}
        m = 10
        for _ in range(m):
            assert request(port, "POST", "/v1/chat/completions", CHAT)[0] == 200
        # Metrics and the access log are written just after each response: wait for the log lines.
        _wait_for(lambda: len(_pids_served(stdout)) == n + m, 5, f"{n + m} access-log lines")
        for _ in range(4):
            assert _scrape(port)["requests"] == n + m

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_S) == 0
        _wait_for(lambda: not metrics_dir.exists(), STOP_S, "the metrics directory to be removed")
    finally:
        kill_all(proc, seen, STOP_S)
    log = stderr.read_text()
    assert "Traceback" not in log, log
