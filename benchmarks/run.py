"""Switchboard load benchmark: the router beside the direct path, on one machine, loopback only.

    python -m benchmarks.run [--quick] [--out benchmarks/results] [--no-pin] [--upstream-latency-ms 0]

Starts the mock upstream (`benchmarks/mock_upstream.py`) and the router (`python -m router serve
--config benchmarks/bench_config.yaml`) as subprocesses on free loopback ports, runs the scenarios
below, each once straight against the mock ("direct") and once through the router, and writes
`results.json`, `results.md` and `latency.png` to `--out`. Subprocesses are always stopped (also on
Ctrl-C or SIGTERM). See benchmarks/README.md for what each scenario measures.

  1 fixed_rate     open loop at 200/500/1000 RPS: p50/p90/p99, added latency = router - direct
  2 closed_loop    concurrency 1/16/64: RPS through the router as a ratio of RPS direct
  3 streaming      20-chunk streams at a fixed rate: time to first token and total, added
  4 fallback       first target 503, second serves: latency vs a direct success, as a ratio
  5 redis_cache_accounting  accounting in Redis, then the response cache on (hits), at a fixed rate
  6 workers_2      `--workers 2`, closed loop at concurrency 64 (and 16)
  8 production     scenarios 1-3 again with auth, accounting in Redis, metrics and the access log
  7 many_streams   N long streams paced 500 ms apart held open at once (benchmarks/many_streams.py)
  + memory (idle RSS, after load) and a soak (RSS over time), router CPU time per request everywhere
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import loadgen, many_streams, procs, report

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "bench_config.yaml"
DIRECT_MODEL = "gpt-4o-mini"
ROUTER_MODEL = "bench/gpt-4o-mini"
FALLBACK_MODEL = "bench-fallback"
NOISE_LIMIT_CORES = 0.25  # other processes using more than this during a run make it "noisy"
MAX_NOISY_RETRIES = 2


@dataclass(frozen=True)
class Profile:
    name: str
    rates: tuple[int, ...] = (200, 500, 1000)
    concurrency: tuple[int, ...] = (1, 16, 64)
    duration_s: float = 10.0
    max_requests: int = 1_000_000
    stream_rate: int = 100
    fallback_rate: int = 200
    workers_concurrency: tuple[int, ...] = (16, 64)
    soak_s: float = 300.0
    soak_concurrency: int = 8
    warmup_s: float = 2.0
    generator: str = "auto"  # closed loop: wrk when installed
    plot: bool = True
    workers_2: bool = True
    # scenario 7: (streams, workers) points, each stream `stream_seconds` long with a chunk every 500 ms
    many_streams: tuple[tuple[int, int], ...] = ((1000, 1), (5000, 2), (10000, 2))
    stream_seconds: float = 30.0
    stream_interval_ms: float = 500.0
    in_process_generator: bool = False  # the asyncio generator inside this process (saves start-up time)
    settle_s: float = 1.0  # idle time before a memory reading
    patience_s: float = 600.0  # see Bench.load


PROFILES = {
    "full": Profile("full"),
    "quick": Profile("quick", duration_s=3.0, soak_s=20.0, warmup_s=1.0, patience_s=180.0,
                     many_streams=((1000, 1),), stream_seconds=10.0),
    # The pytest smoke test: every piece once, tiny and bounded, no wrk, no plot, no second router.
    "smoke": Profile("smoke", rates=(100,), concurrency=(4,), duration_s=0.5, max_requests=50, stream_rate=40,
                     fallback_rate=40, workers_concurrency=(), soak_s=1.0, soak_concurrency=2, warmup_s=0.2,
                     many_streams=((20, 1),), stream_seconds=1.0, stream_interval_ms=200.0,
                     generator="asyncio", plot=False, workers_2=False, in_process_generator=True, settle_s=0.2,
                     patience_s=0.0),
}


@dataclass
class Layout:
    """Which CPUs each party may use (None: all)."""

    router: set[int] | None = None
    client: set[int] | None = None  # the mock upstream and the load generator
    note: str = "not pinned"


@dataclass
class Bench:
    profile: Profile
    out: Path
    upstream_latency_ms: float
    chunks: int
    chunk_interval_ms: float
    pin: bool
    patience_s: float = 0.0  # budget for waiting out other processes and repeating noisy runs
    profile_router: bool = False  # sample the router with py-spy under load
    die_with_harness: bool = False  # subprocesses get SIGTERM if this process dies (procs.Service)
    mock: procs.Service | None = None
    router: procs.Service | None = None
    mock_port: int = 0
    router_port: int = 0
    layout: Layout = field(default_factory=Layout)
    t0: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)

    # -- progress ---------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        elapsed = int(time.monotonic() - self.t0)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)

    # -- processes -------------------------------------------------------------------------------------
    def direct_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}/v1/chat/completions"

    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}/v1/chat/completions"

    def start_mock(self) -> None:
        self.mock_port = procs.free_port()
        cmd = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(self.mock_port),
               "--latency-ms", str(self.upstream_latency_ms), "--chunks", str(self.chunks),
               "--chunk-interval-ms", str(self.chunk_interval_ms), "--max-seconds", "7200"]
        self.mock = procs.Service("mock upstream", cmd, cwd=ROOT, log_path=self.out / "mock_upstream.log",
                                  cpus=self.layout.client, die_with_parent=self.die_with_harness)
        self.mock.start()
        self.mock.wait_http(f"http://127.0.0.1:{self.mock_port}/healthz", timeout_s=20)
        self.say(f"mock upstream ready on :{self.mock_port} (pid {self.mock.pid}, "
                 f"latency {self.upstream_latency_ms:g} ms, {self.chunks} chunks every {self.chunk_interval_ms:g} ms)")

    def start_router(self, workers: int, config: Path = CONFIG) -> None:
        self.router_port = procs.free_port()
        env = {**os.environ, "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{self.mock_port}/v1",
               "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "router", "serve", "--config", str(config), "--host", "127.0.0.1",
               "--port", str(self.router_port), "--workers", str(workers)]
        cpus = self.layout.router if workers == 1 else None
        self.router = procs.Service(f"router ({workers} worker(s))", cmd, cwd=ROOT, env=env,
                                    log_path=self.out / f"router_w{workers}.log", cpus=cpus,
                                    die_with_parent=self.die_with_harness)
        self.router.start()
        self.router.wait_http(f"http://127.0.0.1:{self.router_port}/readyz", timeout_s=60,
                              successes=1 if workers == 1 else 10)
        if workers > 1:  # every worker up (the master plus `workers` children)
            deadline = time.monotonic() + 20
            while len(self.router.pids()) < workers + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
        self._check_router()
        self.say(f"router ready on :{self.router_port} with {workers} worker(s) (pids {self.router.pids()})")

    def _check_router(self) -> None:
        """A few plain requests must succeed before anything is measured (fail fast, with the log)."""
        for _ in range(4):
            req = urllib.request.Request(self.router_url(), data=loadgen.request_body(ROUTER_MODEL),
                                         headers=loadgen.HEADERS, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    ok = resp.status == 200 and "choices" in json.loads(resp.read())
            except (OSError, ValueError) as exc:
                ok, detail = False, str(exc)
            else:
                detail = "no choices in the answer"
            if not ok:
                raise RuntimeError(f"the router does not answer a plain chat completion ({detail}); "
                                   f"its log ends with:\n{self.router.log_tail(15)}")

    def stop_router(self) -> None:
        if self.router is not None:
            self.router.stop()
            self.router = None

    def stop_all(self) -> None:
        for service in (self.router, self.mock):
            if service is not None:
                try:
                    service.stop()
                except Exception as exc:  # keep stopping the others
                    print(f"warning: stopping {service.name}: {exc}", file=sys.stderr)
        self.router = self.mock = None

    def router_worker_pids(self) -> list[int]:
        """The processes that serve requests: the single process, or the forked workers."""
        pids = self.router.pids() if self.router else []
        return pids[1:] if len(pids) > 1 else pids

    # -- one measured load run -------------------------------------------------------------------------
    def load(self, label: str, path: str, *, quiet: bool = False, **kwargs: Any) -> dict[str, Any]:
        """One measured run. On a shared machine, first wait (briefly) for other processes to go quiet,
        and repeat a run during which they used more than NOISE_LIMIT_CORES, within the patience budget."""
        tries = 0
        while True:
            if not quiet:
                self.await_quiet(limit_s=10.0, hold_s=0.5)
            t0 = time.monotonic()
            res = self._measure(label, path, **kwargs)
            tries += 1
            res["tries"] = tries
            res["noisy"] = res["foreign_busy_cores"] > NOISE_LIMIT_CORES
            if quiet or not res["noisy"] or tries > MAX_NOISY_RETRIES or self.patience_s <= 0:
                break
            self.patience_s -= time.monotonic() - t0
            self.say(f"{label} {path}: other processes used {res['foreign_busy_cores']:.2f} cores "
                     f"during the run; measuring again")
        if not quiet:
            self._report_line(label, path, res)
        return res

    def _measure(self, label: str, path: str, *, model: str, rate: float | None = None,
                 concurrency: int | None = None, duration: float | None = None, stream: bool = False,
                 generator: str | None = None, max_requests: int | None = None) -> dict[str, Any]:
        """Run the load generator (a subprocess, or in process for the smoke profile) and attach
        router/mock CPU time and machine load from /proc."""
        url = self.router_url() if path == "router" else self.direct_url()
        duration = duration or self.profile.duration_s
        max_requests = max_requests or self.profile.max_requests
        generator = generator or self.profile.generator
        before = self._snapshot()
        if self.profile.in_process_generator:
            res = loadgen.run(url, model=model, rate=rate, concurrency=concurrency, duration=duration,
                              max_requests=max_requests, stream=stream, generator=generator)
        else:
            cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--model", model,
                   "--duration", str(duration), "--requests", str(max_requests), "--generator", generator]
            cmd += ["--rate", str(rate)] if rate else ["--concurrency", str(concurrency)]
            if stream:
                cmd.append("--stream")
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration + 60,
                                  check=False, preexec_fn=self._client_affinity())
            if proc.returncode != 0:
                raise RuntimeError(f"load generator failed ({label}, {path}): {proc.stderr.strip()[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
        after = self._snapshot()
        done = max(res["sent"], 1)  # every answered request cost router CPU, failed ones too
        wall = after["wall"] - before["wall"]
        router_cpu = after["router"] - before["router"]
        mock_cpu = after["mock"] - before["mock"]
        gen_cpu = after["children"] - before["children"]
        own_cpu = after["self"] - before["self"]
        busy = after["busy"] - before["busy"]
        res.update({
            "path": path, "label": label, "failed": res["sent"] - res["ok"],
            "router_cpu_s": round(router_cpu, 3),
            "router_cpu_us_per_req": round(router_cpu / done * 1e6, 1) if path == "router" else None,
            "mock_cpu_us_per_req": round(mock_cpu / done * 1e6, 1),
            "generator_process_cpu_s": round(gen_cpu, 3),  # incl. the generator's start-up
            "generator_cpu_us_per_req": round(res["generator_cpu_s"] / done * 1e6, 1),  # during the run
            "wall_s": round(wall, 3),
            "machine_busy_cores": round(busy / wall, 3),
            "steal_cores": round((after["steal"] - before["steal"]) / wall, 3),
            # CPU used by processes that are not part of this benchmark (other jobs on the machine).
            "foreign_busy_cores": round(max(0.0, busy - router_cpu - mock_cpu - gen_cpu - own_cpu) / wall, 3),
        })
        return res

    def await_quiet(self, limit_s: float, hold_s: float, threshold_cores: float = 0.2) -> None:
        """Wait until the machine is idle (our processes idle too) for `hold_s`, at most `limit_s` and
        never beyond the remaining patience budget."""
        limit_s = min(limit_s, self.patience_s)
        if limit_s <= 0:
            return
        start = time.monotonic()
        quiet_since = None
        busy0, _, _ = procs.machine_cpu()
        t0 = start
        announced = False
        while time.monotonic() - start < limit_s:
            time.sleep(0.25)
            busy1, _, _ = procs.machine_cpu()
            t1 = time.monotonic()
            cores = (busy1 - busy0) / (t1 - t0)
            busy0, t0 = busy1, t1
            if cores < threshold_cores:
                quiet_since = quiet_since or t1
                if t1 - quiet_since >= hold_s:
                    break
            else:
                quiet_since = None
                if not announced and limit_s >= 5:
                    self.say(f"waiting up to {limit_s:.0f}s for other processes to leave the CPUs "
                             f"({cores:.2f} cores busy)")
                    announced = True
        self.patience_s -= time.monotonic() - start

    def _client_affinity(self):
        client = set(self.layout.client or procs.ALL_CPUS)
        return lambda: os.sched_setaffinity(0, client)

    def _snapshot(self) -> dict[str, float]:
        busy, steal, _ = procs.machine_cpu()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {"wall": time.monotonic(), "busy": busy, "steal": steal,
                "router": procs.cpu_seconds(self.router.pids()) if self.router else 0.0,
                "mock": procs.cpu_seconds(self.mock.pids()) if self.mock else 0.0,
                "children": kids.ru_utime + kids.ru_stime, "self": me.ru_utime + me.ru_stime}

    def _report_line(self, label: str, path: str, res: dict[str, Any]) -> None:
        lat = res.get("latency_ms") or {}
        parts = [f"{label:<28} {path:<6}", f"{res['rps']:>8.0f} rps"]
        if lat:
            parts.append(f"p50 {lat['p50']:.2f} p90 {lat['p90']:.2f} p99 {lat['p99']:.2f} ms")
        if res.get("ttft_ms"):
            parts.append(f"ttft p50 {res['ttft_ms']['p50']:.2f} ms")
        if res.get("router_cpu_us_per_req") is not None:
            parts.append(f"router {res['router_cpu_us_per_req']:.0f} us/req")
        bad = res["sent"] - res["ok"]
        if bad or res.get("errors"):
            parts.append(f"FAILED {bad} {res.get('errors')}")
        if res.get("foreign_busy_cores", 0) > 0.15:
            parts.append(f"(other jobs used {res['foreign_busy_cores']:.2f} cores)")
        parts.append(f"[{res['generator']}, n={res['ok']}]")
        self.say("  ".join(parts))

    def warm_up(self) -> None:
        for path, model in (("direct", DIRECT_MODEL), ("router", ROUTER_MODEL)):
            self.load("warm-up", path, model=model, concurrency=8, duration=self.profile.warmup_s,
                      generator="asyncio", quiet=True, max_requests=5000)
            self.load("warm-up", path, model=model, rate=50, duration=self.profile.warmup_s, stream=True,
                      generator="asyncio", quiet=True, max_requests=200)

    def sample_router(self) -> dict[str, Any]:
        """py-spy samples of the router under closed-loop load (c=16, non-streaming): where time goes."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(spy).exists():
            return {"status": "skipped", "reason": "py-spy is not installed (pip install py-spy)"}
        seconds = max(3, int(self.profile.duration_s))
        raw = self.out / "router_profile.txt"
        cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", self.router_url(), "--model", ROUTER_MODEL,
               "--concurrency", "16", "--duration", str(seconds + 2), "--generator", self.profile.generator]
        self.say(f"profile: py-spy on the router for {seconds}s under closed-loop load (c=16)")
        load = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=self._client_affinity())
        try:
            time.sleep(1.0)
            spied = subprocess.run([spy, "record", "--pid", str(self.router.pid), "--duration", str(seconds),
                                    "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(raw)],
                                   capture_output=True, text=True, timeout=seconds + 30, check=False,
                                   preexec_fn=self._client_affinity())
        finally:
            try:
                load.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                load.kill()
                load.wait()
        if spied.returncode != 0 or not raw.exists():
            return {"status": "error", "reason": (spied.stderr or spied.stdout).strip()[-500:]}
        summary = report.profile_summary(raw.read_text())
        self.say("profile: " + ", ".join(f"{k} {v:.0f}%" for k, v in summary["by_layer_pct"].items()))
        return {"status": "ok", "seconds": seconds, "raw_file": raw.name, **summary}

    # -- memory ----------------------------------------------------------------------------------------
    def memory(self) -> dict[str, Any]:
        pids = self.router.pids() if self.router else []
        workers = self.router_worker_pids()
        return {"processes": len(pids),
                "rss_mb_per_worker": [round(procs.rss_mb(p) or 0.0, 1) for p in workers],
                "pss_mb_per_worker": [round(procs.pss_mb(p) or 0.0, 1) for p in workers],
                "rss_mb_total": round(sum(procs.rss_mb(p) or 0.0 for p in pids), 1),
                "pss_mb_total": round(sum(procs.pss_mb(p) or 0.0 for p in pids), 1)}

    # -- scenarios -------------------------------------------------------------------------------------
    def scenario_fixed_rate(self) -> list[dict[str, Any]]:
        rows = []
        for rate in self.profile.rates:
            d = self.load(f"1 fixed rate {rate}/s", "direct", model=DIRECT_MODEL, rate=rate)
            r = self.load(f"1 fixed rate {rate}/s", "router", model=ROUTER_MODEL, rate=rate)
            rows.append({"offered_rps": rate, "direct": d, "router": r,
                         "added_ms": _added(d["latency_ms"], r["latency_ms"])})
        return rows

    def scenario_closed_loop(self, concurrencies: tuple[int, ...], label: str = "2 closed loop") -> list[dict]:
        rows = []
        for c in concurrencies:
            d = self.load(f"{label} c={c}", "direct", model=DIRECT_MODEL, concurrency=c)
            r = self.load(f"{label} c={c}", "router", model=ROUTER_MODEL, concurrency=c)
            rows.append({"concurrency": c, "direct": d, "router": r,
                         "rps_ratio": round(r["rps"] / d["rps"], 4) if d["rps"] else None,
                         "added_ms": _added(d["latency_ms"], r["latency_ms"])})
        return rows

    def scenario_streaming(self) -> dict[str, Any]:
        rate = self.profile.stream_rate
        d = self.load(f"3 streaming {rate}/s", "direct", model=DIRECT_MODEL, rate=rate, stream=True)
        r = self.load(f"3 streaming {rate}/s", "router", model=ROUTER_MODEL, rate=rate, stream=True)
        return {"offered_rps": rate, "chunks": self.chunks, "chunk_interval_ms": self.chunk_interval_ms,
                "direct": d, "router": r, "added_ttft_ms": _added(d["ttft_ms"], r["ttft_ms"]),
                "added_total_ms": _added(d["latency_ms"], r["latency_ms"]),
                "router_cpu_us_per_stream": r["router_cpu_us_per_req"]}

    def scenario_fallback(self) -> dict[str, Any]:
        check = self._check_fallback()
        rate = self.profile.fallback_rate
        d = self.load(f"4 fallback {rate}/s", "direct", model=DIRECT_MODEL, rate=rate)
        ok = self.load(f"4 fallback {rate}/s (no fb)", "router", model=ROUTER_MODEL, rate=rate)
        fb = self.load(f"4 fallback {rate}/s (503->ok)", "router", model=FALLBACK_MODEL, rate=rate)
        ratio = {k: round(fb["latency_ms"][k] / d["latency_ms"][k], 3) for k in ("p50", "p90", "p99")} \
            if fb["latency_ms"] and d["latency_ms"] else None
        return {"offered_rps": rate, "verified": check, "direct": d, "router_success": ok, "router_fallback": fb,
                "latency_ratio_vs_direct": ratio,
                "added_ms_vs_direct": _added(d["latency_ms"], fb["latency_ms"]),
                "added_ms_vs_router_success": _added(ok["latency_ms"], fb["latency_ms"]),
                "router_cpu_us_per_req": fb["router_cpu_us_per_req"]}

    def _check_fallback(self) -> dict[str, Any]:
        """One request by hand: the answer must come from the fallback after a 503 attempt."""
        body = loadgen.request_body(FALLBACK_MODEL)
        req = urllib.request.Request(self.router_url(), data=body, headers=loadgen.HEADERS, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read())
        attempts = (data.get("extra_fields") or {}).get("attempts") or []
        served = (data.get("extra_fields") or {}).get("model")
        ok = len(attempts) == 2 and attempts[0].get("status") == 503 and served == ROUTER_MODEL
        if not ok:
            self.say(f"WARNING: fallback did not behave as expected: served {served}, attempts {attempts}")
        return {"ok": ok, "served_by": served, "attempt_statuses": [a.get("status") for a in attempts]}

    def scenario_redis(self) -> dict[str, Any]:
        """Scenario 5: state in a private redis-server. (a) accounting only (every request batched
        to Redis, no cache), (b) the response cache on as well (identical requests: hits after the
        first), each at the same fixed rate as the direct path."""
        if shutil.which("redis-server") is None:
            self.say("5 redis cache+accounting   skipped: redis-server is not installed")
            return {"status": "skipped", "reason": "redis-server is not installed"}
        rate = self.profile.rates[min(1, len(self.profile.rates) - 1)] if self.profile.rates else 200
        redis, port = self._start_redis()
        out: dict[str, Any] = {"offered_rps": rate, "redis": "private redis-server on loopback, no persistence"}
        try:
            base = yaml.safe_load(CONFIG.read_text())
            state = {"redis": {"url": f"redis://127.0.0.1:{port}/0"}}
            variants = (("accounting", {**state, "cache": {"backend": "off"}}),
                        ("cache_hits", {**state, "cache": {"ttl_s": 3600}}))
            for name, extra in variants:
                path = self.out / f"bench_config_{name}.yaml"
                path.write_text(yaml.safe_dump({**base, **extra}, sort_keys=False))
                self.stop_router()
                self.start_router(workers=1, config=path)
                self.warm_up()
                out[name] = self.load(f"5 redis {name} {rate}/s", "router", model=ROUTER_MODEL, rate=rate)
            out["direct"] = self.load(f"5 redis {rate}/s", "direct", model=DIRECT_MODEL, rate=rate)
            for name, _ in variants:
                out[f"added_ms_{name}"] = _added(out["direct"]["latency_ms"], out[name]["latency_ms"])
        except RuntimeError as exc:
            self.say(f"5 redis FAILED: {exc}")
            return {"status": "error", "reason": str(exc).splitlines()[0]}
        finally:
            self.stop_router()
            redis.stop()
        return out

    def _start_redis(self) -> tuple[procs.Service, int]:
        """A private redis-server on a free loopback port, no persistence (the caller stops it)."""
        port = procs.free_port()
        redis = procs.Service("redis-server", [shutil.which("redis-server") or "redis-server", "--port", str(port),
                                               "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                               "--protected-mode", "no"],
                              cwd=ROOT, log_path=self.out / "redis.log", cpus=self.layout.client)
        redis.start()
        try:
            _wait_redis(port)
        except RuntimeError:
            redis.stop()
            raise
        return redis, port

    def scenario_production(self) -> dict[str, Any]:
        """Scenario 8: scenarios 1-3 again with every production feature on: client auth (a virtual key),
        accounting in Redis, metrics and the access log (both on in every scenario)."""
        if shutil.which("redis-server") is None:
            self.say("8 production settings   skipped: redis-server is not installed")
            return {"status": "skipped", "reason": "redis-server is not installed"}
        redis, port = self._start_redis()
        out: dict[str, Any] = {"settings": "auth (one virtual key, no limits), accounting in a private Redis, "
                                           "metrics, access log to the router's stdout"}
        try:
            base = yaml.safe_load(CONFIG.read_text())
            key = loadgen.HEADERS["authorization"].removeprefix("Bearer ")
            path = self.out / "bench_config_production.yaml"
            path.write_text(yaml.safe_dump({**base, "redis": {"url": f"redis://127.0.0.1:{port}/0"},
                                            "auth": {"keys": [{"name": "bench", "key": key}]}}, sort_keys=False))
            self.stop_router()
            self.start_router(workers=1, config=path)
            self.warm_up()
            if self.profile.rates:
                out["fixed_rate"] = self.scenario_fixed_rate()
            out["closed_loop"] = self.scenario_closed_loop(self.profile.concurrency, label="8 closed loop")
            out["streaming"] = self.scenario_streaming()
        except RuntimeError as exc:
            self.say(f"8 production FAILED: {exc}")
            return {"status": "error", "reason": str(exc).splitlines()[0]}
        finally:
            self.stop_router()
            redis.stop()
        return out

    def scenario_many_streams(self) -> list[dict[str, Any]]:
        """Scenario 7 on its own paced mock and routers (the others are stopped first: nothing else runs)."""
        self.stop_all()
        p = self.profile
        rows = []
        for streams, workers in p.many_streams:
            if streams * 2 // workers + 200 > procs.fd_limit():
                rows.append({"streams": streams, "workers": workers, "status": "skipped",
                             "reason": f"needs about {streams * 2 // workers} descriptors per worker"})
                continue
            try:
                rows.append(many_streams.point(streams, workers, p.stream_seconds, p.stream_interval_ms, self.out,
                                               say=self.say))
            except Exception as exc:  # one point failing must not lose the report
                rows.append({"streams": streams, "workers": workers, "status": "error", "reason": str(exc)[:500]})
        return rows

    def scenario_workers(self) -> dict[str, Any]:
        """Scenario 6: `--workers 2`, nothing pinned (the workers need both cores)."""
        self.stop_router()
        saved = self.layout
        self.layout = Layout(note="not pinned (scenario 6 needs both cores for the workers)")
        procs.set_affinity(self.mock.pids(), None)
        try:
            self.start_router(workers=2)
            time.sleep(self.profile.settle_s)
            idle = self.memory()
            self.warm_up()
            rows = self.scenario_closed_loop(self.profile.workers_concurrency, label="6 workers=2")
            loaded = self.memory()
        except RuntimeError as exc:
            self.say(f"6 workers=2 FAILED: {exc}")
            return {"status": "error", "reason": str(exc).splitlines()[0]}
        finally:
            self.stop_router()
            self.layout = saved
            procs.set_affinity(self.mock.pids(), saved.client)
        return {"workers": 2, "pinning": "none", "memory_idle": idle, "memory_after_load": loaded, "closed_loop": rows}

    def soak(self) -> dict[str, Any]:
        """Closed-loop load (every 4th request a stream) for `soak_s`; router RSS sampled throughout."""
        seconds = self.profile.soak_s
        c = self.profile.soak_concurrency
        every = max(1.0, seconds / 40.0)
        cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", self.router_url(), "--model", ROUTER_MODEL,
               "--concurrency", str(c), "--duration", str(seconds), "--stream-every", "4",
               "--generator", self.profile.generator]
        pid = self.router_worker_pids()[0]
        self.say(f"soak: {seconds:g}s closed loop c={c} (every 4th request streams), RSS every {every:.1f}s")
        cpu0 = procs.cpu_seconds(self.router.pids())
        samples = [(0.0, procs.rss_mb(pid))]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=self._client_affinity())
        try:
            next_sample = start + every
            next_note = start + 30.0
            while proc.poll() is None and time.monotonic() < start + seconds + 60:
                time.sleep(min(0.2, max(0.0, next_sample - time.monotonic())))
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((round(now - start, 2), procs.rss_mb(pid)))
                    next_sample += every
                if now >= next_note:
                    self.say(f"soak: {now - start:.0f}/{seconds:g}s, router RSS {samples[-1][1]:.1f} MB")
                    next_note += 30.0
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f"soak load generator failed: {err.strip()[-2000:]}")
        res = json.loads(out.strip().splitlines()[-1])
        samples.append((round(time.monotonic() - start, 2), procs.rss_mb(pid)))
        cpu = procs.cpu_seconds(self.router.pids()) - cpu0
        growth = report.soak_growth(samples, res["ok"])
        self.say(f"soak: {res['ok']} requests at {res['rps']:.0f} rps, RSS {samples[0][1]:.1f} -> "
                 f"{samples[-1][1]:.1f} MB, growth after warm-up {growth['growth_mb']:+.2f} MB "
                 f"[{res['generator']}]")
        return {"seconds": seconds, "concurrency": c, "stream_every": 4, "load": res, "rss_samples": samples,
                "router_cpu_us_per_req": round(cpu / max(res["ok"], 1) * 1e6, 1), **growth}

    # -- the whole run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        p = self.profile
        self.layout = _layout(self.pin)
        if self.layout.client:  # this process only waits, or runs the in-process generator: client side
            os.sched_setaffinity(0, self.layout.client)
        self.await_quiet(limit_s=60.0, hold_s=2.0)
        res = self.results
        res.update({"schema": 1, "profile": p.name, "started_at": _now(), "machine": report.machine_info(),
                    "versions": report.versions(), "settings": {
                        "upstream_latency_ms": self.upstream_latency_ms, "stream_chunks": self.chunks,
                        "stream_chunk_interval_ms": self.chunk_interval_ms, "pinning": self.layout.note,
                        "router_cpus": sorted(self.layout.router) if self.layout.router else None,
                        "client_cpus": sorted(self.layout.client) if self.layout.client else None,
                        "profile": asdict(p)},
                    "generators": {"open_loop": "asyncio (aiohttp client)",
                                   "closed_loop": "wrk" if p.generator != "asyncio" and loadgen.wrk_path()
                                   else "asyncio (aiohttp client)", "streams": "asyncio (aiohttp client)",
                                   "wrk_path": loadgen.wrk_path()},
                    "scenarios": {}, "memory": {}})
        self.say(f"profile {p.name}: {res['machine']['cores']} cores, {self.layout.note}; "
                 f"closed loop by {res['generators']['closed_loop']}, open loop by asyncio")
        sc = res["scenarios"]
        self.start_mock()
        self.start_router(workers=1)
        time.sleep(p.settle_s)
        res["memory"]["idle"] = self.memory()
        self.say(f"router idle RSS {res['memory']['idle']['rss_mb_per_worker']} MB")
        self.warm_up()
        if p.rates:
            sc["fixed_rate"] = self.scenario_fixed_rate()
        sc["closed_loop"] = self.scenario_closed_loop(p.concurrency)
        if self.profile_router:
            res["router_profile"] = self.sample_router()
        sc["streaming"] = self.scenario_streaming()
        sc["fallback"] = self.scenario_fallback()
        time.sleep(p.settle_s)
        res["memory"]["after_load"] = self.memory()
        self.say(f"router RSS after load {res['memory']['after_load']['rss_mb_per_worker']} MB")
        if p.soak_s > 0:
            sc["soak"] = self.soak()
        sc["redis_cache_accounting"] = self.scenario_redis()  # restarts the router with Redis configs
        sc["production"] = self.scenario_production()
        if p.workers_2:
            sc["workers_2"] = self.scenario_workers()
        else:
            sc["workers_2"] = {"status": "skipped", "reason": f"not part of the {p.name} profile"}
        sc["many_streams"] = self.scenario_many_streams()
        res["finished_at"] = _now()
        res["noise"] = {"limit_cores": NOISE_LIMIT_CORES, "max_retries": MAX_NOISY_RETRIES,
                        "patience_left_s": round(self.patience_s, 1)}
        res["targets"] = report.targets(res)
        return res


def _wait_redis(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def _added(direct: dict | None, router: dict | None) -> dict[str, float] | None:
    if not direct or not router:
        return None
    return {k: round(router[k] - direct[k], 4) for k in ("p50", "p90", "p99", "mean")}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _layout(pin: bool) -> Layout:
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return Layout(note="not pinned" + ("" if pin else " (--no-pin)"))
    router, client = {cpus[0]}, set(cpus[1:])
    return Layout(router, client, f"router pinned to CPU {cpus[0]}, mock upstream and load generator to CPU "
                                  f"{','.join(map(str, sorted(client)))} (scenario 6 unpinned)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (3 s per point, 20 s soak)")
    ap.add_argument("--smoke", action="store_true", help="tiny bounded run for the test suite")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory for results.json/.md and latency.png")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the router and the client to separate CPUs")
    ap.add_argument("--upstream-latency-ms", type=float, default=0.0, help="mock upstream time to first byte")
    ap.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer")
    ap.add_argument("--chunk-interval-ms", type=float, default=1.0, help="delay between stream chunks")
    ap.add_argument("--patience", type=float, metavar="SECONDS",
                    help="time budget for waiting out other processes and repeating runs they disturbed "
                         "(default: 600 full, 180 quick, 0 smoke)")
    ap.add_argument("--profile", action="store_true",
                    help="also sample the router with py-spy under load (writes router_profile.txt)")
    ap.add_argument("--soak-seconds", type=float, help="override the soak length (0 skips it)")
    ap.add_argument("--update-readme", metavar="README", help="replace the block between "
                    f"'{report.README_BEGIN}' and '{report.README_END}' in this file with the summary")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: write the report (and --update-readme) again from --out's results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        return _report_only(Path(args.out), args.update_readme)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.soak_seconds is not None:
        if not 0 <= args.soak_seconds <= 3600:
            ap.error("--soak-seconds must be within [0, 3600]")
        profile = Profile(**{**asdict(profile), "soak_s": args.soak_seconds})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(profile, out, args.upstream_latency_ms, args.chunks, args.chunk_interval_ms, pin=not args.no_pin,
                  patience_s=profile.patience_s if args.patience is None else max(0.0, args.patience),
                  profile_router=args.profile)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        results = bench.run()
    except KeyboardInterrupt:
        bench.say("interrupted: stopping the mock upstream and the router")
        return 130
    finally:
        bench.stop_all()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.markdown(results)
    (out / "results.md").write_text(markdown)
    written = ["results.json", "results.md"]
    if profile.plot:
        note = report.plot(results, out / "latency.png")
        if note:
            bench.say(f"no plot: {note}")
        else:
            written.append("latency.png")
    if args.update_readme:
        report.update_readme(Path(args.update_readme), results)
        written.append(args.update_readme)
    bench.say(f"wrote {', '.join(written)} to {out} ({platform.node() or 'this machine'})")
    print(markdown)
    return 0


def _report_only(out: Path, readme: str | None) -> int:
    """The report of a finished run, written again (after a change to the report, or to the README)."""
    results = json.loads((out / "results.json").read_text())
    (out / "results.md").write_text(report.markdown(results))
    if readme:
        report.update_readme(Path(readme), results)
    print(f"wrote results.md{' and ' + readme if readme else ''} from {out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
