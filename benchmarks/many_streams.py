"""Scenario 7, many open streams: N long, slowly paced streams held open at once, direct and through
the router, on their own mock upstream and router processes.

    python -m benchmarks.many_streams [--points 1000:1,5000:2] [--seconds 30] [--interval-ms 500] [--out DIR]

Each stream lasts `--seconds` with a content chunk every `--interval-ms` (the mock upstream paces
them); the streams are opened at `RAMP_PER_S` a second. Reported per point (N streams, W workers):
- time to first token and the gaps between content chunks, direct and through the router, and the
  router's added p50/p99 (router percentile minus direct percentile);
- router CPU per relayed chunk, over the window in which every stream was open (no request
  handling in it, only relaying), from /proc utime+stime of the worker processes, sampled every
  0.25 s, divided by the chunks the generator received in the same window;
- RSS per open stream: the workers' summed RSS at its highest in that window, minus their RSS just
  before, over N;
- the load generator's own lag and CPU (its numbers are only the router's when its lag is small).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import procs

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "bench_config.yaml"
RAMP_PER_S = 500.0  # new streams per second
MODEL_DIRECT, MODEL_ROUTER = "gpt-4o-mini", "bench/gpt-4o-mini"


class _Sampler:
    """CPU seconds and RSS of a process set, sampled in a thread with perf_counter timestamps."""

    def __init__(self, pids: list[int], every_s: float = 0.25) -> None:
        self.pids = pids
        self.every_s = every_s
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu_s, rss_mb)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _take(self) -> None:
        rss = sum(procs.rss_mb(p) or 0.0 for p in self.pids)
        self.samples.append((time.perf_counter(), procs.cpu_seconds(self.pids), rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.every_s)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()

    def cpu_between(self, a: float, b: float) -> float:
        def at(t: float) -> float:
            s = self.samples
            for (t0, c0, _), (t1, c1, _) in itertools.pairwise(s):
                if t0 <= t <= t1:
                    return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
            return s[0][1] if t < s[0][0] else s[-1][1]
        return at(b) - at(a)

    def rss_max_between(self, a: float, b: float) -> float:
        inside = [r for t, _, r in self.samples if a <= t <= b]
        return max(inside) if inside else self.samples[-1][2]


def _events_between(result: dict[str, Any], a: float, b: float) -> int:
    buckets = result["event_buckets"]
    start, width = buckets["start"], buckets["width_s"]
    return sum(n for i, n in enumerate(buckets["counts"]) if a <= start + i * width and start + (i + 1) * width <= b)


def _generate(url: str, model: str, streams: int, interval_ms: float, out: Path, key: str | None,
              cpus: set[int] | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.open_streams", "--url", url, "--model", model, "--streams",
           str(streams), "--ramp-s", f"{max(1.0, streams / RAMP_PER_S):g}", "--interval-ms", f"{interval_ms:g}",
           "--out", str(out)]
    if key:
        cmd += ["--key", key]
    pinned = set(cpus or procs.ALL_CPUS)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
                          preexec_fn=lambda: os.sched_setaffinity(0, pinned))
    if not out.exists():
        raise RuntimeError(f"open_streams failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(out.read_text())


def _window(result: dict[str, Any], sampler: _Sampler) -> tuple[int, float, float]:
    """Chunks received and CPU seconds spent while every stream was open (less a margin at each end),
    and the window's length."""
    a, b = result["all_open_at"]
    margin = 2 * result["event_buckets"]["width_s"]
    if b - a <= 2 * margin:
        return 0, 0.0, 0.0
    return (_events_between(result, a + margin, b - margin), sampler.cpu_between(a + margin, b - margin),
            b - a - 2 * margin)


def _us_per_chunk(events: int, cpu: float) -> float | None:
    return round(cpu / events * 1e6, 1) if events else None


def _pinning(workers: int) -> tuple[set[int] | None, set[int] | None]:
    """(router CPUs, client CPUs): one worker gets a core to itself, as in scenarios 1-3; two share them."""
    cpus = sorted(procs.ALL_CPUS)
    if workers > 1 or len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def point(streams: int, workers: int, seconds: float, interval_ms: float, out: Path,
          config: Path = CONFIG, key: str | None = None, say=print) -> dict[str, Any]:
    """One (N streams, W workers) point: a paced mock, direct run, router run and, on one worker, the
    same streams through a bare byte pipe (the floor); every process stopped. One worker is pinned to
    a CPU of its own (the pipe too), the mock and the generator to the others."""
    router_cpus, client_cpus = _pinning(workers)
    chunks = max(2, int(seconds * 1000 / interval_ms))
    mock_port, router_port, pipe_port = procs.free_port(), procs.free_port(), procs.free_port()
    mock = procs.Service("paced mock upstream", [sys.executable, "-m", "benchmarks.mock_upstream", "--port",
                                                 str(mock_port), "--chunks", str(chunks), "--chunk-interval-ms",
                                                 f"{interval_ms:g}", "--max-seconds", "7200"],
                         cwd=ROOT, log_path=out / "mock_paced.log", cpus=client_cpus)
    env = {**os.environ, "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{mock_port}/v1", "PYTHONUNBUFFERED": "1"}
    router = procs.Service(f"router ({workers} worker(s))", [sys.executable, "-m", "router", "serve", "--config",
                                                             str(config), "--host", "127.0.0.1", "--port",
                                                             str(router_port), "--workers", str(workers)],
                           cwd=ROOT, env=env, log_path=out / f"router_streams_w{workers}.log", cpus=router_cpus)
    pipe = procs.Service("byte pipe", [sys.executable, "-m", "benchmarks.byte_pipe", "--port", str(pipe_port),
                                       "--upstream-port", str(mock_port)], cwd=ROOT, log_path=out / "byte_pipe.log",
                         cpus=router_cpus)
    label = f"scenario 7: {streams} streams of {seconds:g} s, {workers} worker(s)"
    piped: dict[str, Any] | None = None
    try:
        mock.start()
        mock.wait_http(f"http://127.0.0.1:{mock_port}/healthz", timeout_s=20)
        router.start()
        router.wait_http(f"http://127.0.0.1:{router_port}/readyz", timeout_s=60, successes=1 if workers == 1 else 10)
        deadline = time.monotonic() + 20
        while workers > 1 and len(router.pids()) < workers + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        say(f"{label}: direct")
        with _Sampler([mock.pid]) as mock_sampler:
            direct = _generate(f"http://127.0.0.1:{mock_port}/v1/chat/completions", MODEL_DIRECT, streams,
                               interval_ms, out / f"streams_{streams}_direct.json", None, client_cpus)
        pids = router.pids()
        pids = pids[1:] if len(pids) > 1 else pids
        say(f"{label}: router")
        (_, steal0, _), wall0 = procs.machine_cpu(), time.monotonic()
        with _Sampler(pids) as sampler:
            idle_rss = sampler.samples[0][2] if sampler.samples else sum(procs.rss_mb(p) or 0.0 for p in pids)
            routed = _generate(f"http://127.0.0.1:{router_port}/v1/chat/completions", MODEL_ROUTER, streams,
                               interval_ms, out / f"streams_{streams}_router.json", key, client_cpus)
        steal = (procs.machine_cpu()[1] - steal0) / max(1e-9, time.monotonic() - wall0)
        router.stop()
        if workers == 1:
            pipe.start()
            pipe.wait_http(f"http://127.0.0.1:{pipe_port}/healthz", timeout_s=20)
            say(f"{label}: byte pipe (the floor)")
            with _Sampler([pipe.pid]) as pipe_sampler:
                piped = _generate(f"http://127.0.0.1:{pipe_port}/v1/chat/completions", MODEL_DIRECT, streams,
                                  interval_ms, out / f"streams_{streams}_pipe.json", None, client_cpus)
    finally:
        pipe.stop()
        router.stop()
        mock.stop()
    events, cpu, window_s = _window(routed, sampler)
    mock_events, mock_cpu, _ = _window(direct, mock_sampler)
    peak = sampler.rss_max_between(*routed["all_open_at"])

    def added(metric: str, pct: str) -> float | None:
        d, r = direct.get(metric), routed.get(metric)
        return round(r[pct] - d[pct], 3) if d and r else None

    per_chunk = _us_per_chunk(events, cpu)
    pipe_per_chunk = _us_per_chunk(*_window(piped, pipe_sampler)[:2]) if piped else None
    return {
        "streams": streams, "workers": workers, "seconds": seconds, "interval_ms": interval_ms,
        "direct": direct, "router": routed,
        "added_ttft_ms": {"p50": added("ttft_ms", "p50"), "p99": added("ttft_ms", "p99")},
        "added_gap_ms": {"p50": added("gap_excess_ms", "p50"), "p99": added("gap_excess_ms", "p99")},
        "router_cpu_us_per_chunk": per_chunk,
        "mock_cpu_us_per_chunk": _us_per_chunk(mock_events, mock_cpu),
        "pipe_cpu_us_per_chunk": pipe_per_chunk,
        "router_vs_pipe": round(per_chunk / pipe_per_chunk, 2) if per_chunk and pipe_per_chunk else None,
        "pipe_errors": piped["errors"] if piped else None,
        "pipe_completed": piped["completed"] if piped else None,
        "chunks_in_window": events, "window_s": round(window_s, 2),
        "steal_cores": round(steal, 3),  # the hypervisor's share of the CPUs during the router run
        "rss_idle_mb": round(idle_rss, 1), "rss_peak_mb": round(peak, 1),
        "rss_kb_per_stream": round((peak - idle_rss) * 1024 / streams, 1),
        "errors": {"direct": direct["errors"], "router": routed["errors"]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default="1000:1", help="N:workers,... (default 1000:1)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval-ms", type=float, default=500.0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for spec in args.points.split(","):
        n, w = (int(x) for x in spec.split(":"))
        res = point(n, w, args.seconds, args.interval_ms, out, say=lambda m: print(m, file=sys.stderr))
        results.append(res)
        brief = {k: res[k] for k in ("streams", "workers", "added_ttft_ms", "added_gap_ms", "router_cpu_us_per_chunk",
                                      "pipe_cpu_us_per_chunk", "mock_cpu_us_per_chunk", "rss_kb_per_stream",
                                      "errors")}
        brief["generator_lag_p99_ms"] = res["router"]["generator_lag_ms"]["p99"]
        print(json.dumps(brief), flush=True)
    (out / "many_streams.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
