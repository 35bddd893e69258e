"""The comparison itself: Switchboard and LiteLLM's proxy side by side, in one run, on one machine.

Both gateways run at the same time, each as one worker process pinned to the same CPU (the "router"
CPU of run.py's layout); the mock upstream and the load generator get the other CPU(s). Both point at
the same mock upstream, require the same client key, and receive byte-identical requests (the model
is called `bench/gpt-4o-mini` in both). Each load point is run straight at the mock ("direct") and
then through each gateway, back to back, with the measuring code of `run.Bench` (load generators from
`loadgen.py`, /proc readings from `procs.py`): nothing here times or counts requests by itself.
"""

from __future__ import annotations

import json
import os
import re
import socketserver
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import loadgen, mock_upstream, procs, report, run
from . import install

GATEWAYS = ("switchboard", "litellm")
NAMES = {"switchboard": "Switchboard", "litellm": "LiteLLM", "direct": "direct"}
MODEL = run.ROUTER_MODEL  # "bench/gpt-4o-mini" in both gateways: the request bodies are identical
DIRECT_MODEL = run.DIRECT_MODEL
CLIENT_KEY = loadgen.HEADERS["authorization"].removeprefix("Bearer ")  # what loadgen and wrk's script send
UPSTREAM_KEY = "sk-bench-not-a-real-key"  # what both gateways send to the mock (it does not check)
WRONG_KEY = "sk-bench-wrong-key-for-the-auth-check"

# LiteLLM, offline: what it would otherwise fetch or send over the network.
LITELLM_OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # the model cost map shipped in the wheel, not GitHub's
    "LITELLM_TELEMETRY_DISABLED": "true",  # the telemetry veto (LITELLM_TELEMETRY_*)
    "LITELLM_LOCAL_BLOG_POSTS": "True",  # the admin UI's blog feed from the wheel
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
    "HF_HUB_OFFLINE": "1",  # never ask the Hugging Face hub for a tokenizer
}
# Lines in LiteLLM's log that mean it tried the network anyway.
OFFLINE_FAILURE = re.compile(r"ConnectError|Name or service not known|Temporary failure in name resolution|"
                             r"Failed to fetch|getaddrinfo|Network is unreachable|ProxyError|403 Forbidden",
                             re.IGNORECASE)
SATURATED_CORES = 0.9  # a gateway busy this much of the run's wall time (one worker) is at its limit
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # our own checks: always direct


@dataclass(frozen=True)
class CompareProfile:
    name: str
    rates: tuple[int, ...]  # open loop, requests/s: rates one LiteLLM worker can serve
    concurrency: int  # closed loop
    stream_rate: int  # 20-chunk streams/s, open loop
    duration_s: float  # per measured point
    warmup_s: float
    idle_s: float  # idle time after start-up: idle CPU and RSS
    patience_s: float  # budget for waiting out other processes (run.Bench.load)

    def bench_profile(self) -> run.Profile:
        return run.Profile(self.name, rates=self.rates, concurrency=(self.concurrency,), duration_s=self.duration_s,
                           stream_rate=self.stream_rate, workers_concurrency=(), soak_s=0.0, warmup_s=self.warmup_s,
                           plot=False, workers_2=False, settle_s=self.idle_s, patience_s=self.patience_s)


PROFILES = {
    "full": CompareProfile("full", rates=(25, 50, 75), concurrency=16, stream_rate=20, duration_s=15.0,
                           warmup_s=2.0, idle_s=5.0, patience_s=150.0),
    "quick": CompareProfile("quick", rates=(25, 50), concurrency=16, stream_rate=20, duration_s=5.0,
                            warmup_s=1.0, idle_s=2.0, patience_s=30.0),
    # A few seconds of load in all: checks the set-up (install, start-up, checks, report), measures little.
    "smoke": CompareProfile("smoke", rates=(25,), concurrency=4, stream_rate=10, duration_s=1.0, warmup_s=0.3,
                            idle_s=0.5, patience_s=0.0),
}


class Tripwire:
    """A fake HTTP(S) proxy on loopback. LiteLLM gets HTTP(S)_PROXY pointing here (NO_PROXY: loopback),
    so an attempt of a proxy-aware client (httpx, aiohttp with trust_env, requests) to reach the internet
    is recorded and refused with 403, instead of failing unseen. Connections to the mock go direct."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> str:
        attempts = self.attempts

        class Handler(socketserver.StreamRequestHandler):
            timeout = 5

            def handle(self) -> None:
                try:
                    line = self.rfile.readline(4096).decode("latin-1").strip()
                except OSError:
                    return
                if line:  # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1": host and path only
                    attempts.append(line.split("?", 1)[0][:200])
                try:
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="tripwire", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Gateway:
    key: str
    service: procs.Service
    port: int
    startup_s: float
    config_path: Path

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 15.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _NO_PROXY.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _ratio(num: float | None, den: float | None, digits: int = 2) -> float | None:
    if num is None or den is None or num <= 0 or den <= 0:
        return None
    return round(num / den, digits)


def _lat(run_res: dict, key: str = "latency_ms") -> dict:
    return run_res.get(key) or {}


@dataclass
class CompareBench(run.Bench):
    """run.Bench with two gateways instead of one router: `use(key)` points its measuring code (which
    times requests to `router_url()` and charges `router.pids()` for CPU) at one gateway at a time."""

    cprofile: CompareProfile | None = None
    gateways: dict[str, Gateway] = field(default_factory=dict)
    active: str | None = None
    tripwire: Tripwire = field(default_factory=Tripwire)
    total_ok: int = 0  # successful answers the generators got (the mock must have seen at least as many)
    remote_seen: dict[str, list[str]] = field(default_factory=dict)
    _snaps: list[dict[str, float]] = field(default_factory=list)

    # -- which gateway is measured -----------------------------------------------------------------------
    def use(self, key: str | None) -> None:
        self.active = key
        if key is None:
            self.router, self.router_port = None, 0
        else:
            gw = self.gateways[key]
            self.router, self.router_port = gw.service, gw.port

    def _snapshot(self) -> dict[str, float]:
        snap = super()._snapshot()
        others = [pid for key, gw in self.gateways.items() if key != self.active for pid in gw.service.pids()]
        idle = procs.cpu_seconds(others)
        snap["bystander"] = idle
        snap["self"] += idle  # the gateway not under test is part of the benchmark, not "other processes"
        self._snaps.append(snap)
        return snap

    def _measure(self, label: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self._snaps.clear()
        res = super()._measure(label, path, **kwargs)
        before, after = self._snaps[0], self._snaps[-1]
        res["gateway"] = self.active or "direct"
        res["gateway_cpu_us_per_req"] = res["router_cpu_us_per_req"]
        res["other_gateway_cpu_s"] = round(after["bystander"] - before["bystander"], 3)
        # utime+stime count clock ticks: one tick spread over the run's requests is the resolution.
        res["cpu_tick_us_per_req"] = round(1e6 / procs.CLK_TCK / max(res["sent"], 1), 1) if self.active else None
        # One worker cannot use more than one core: near that, requests queue and latency is mostly waiting.
        res["gateway_cpu_cores"] = round(res["router_cpu_s"] / max(res["wall_s"], 1e-9), 3) if self.active else None
        res["saturated"] = bool(self.active) and res["gateway_cpu_cores"] >= SATURATED_CORES
        self.total_ok += res["ok"]
        return res

    def _report_line(self, label: str, path: str, res: dict[str, Any]) -> None:
        super()._report_line(label, f"{NAMES[self.active or 'direct']:<11}", res)

    def measure(self, key: str | None, label: str, **kwargs: Any) -> dict[str, Any]:
        self.use(key)
        try:
            model = MODEL if key else DIRECT_MODEL
            return self.load(label, "router" if key else "direct", model=model, **kwargs)
        finally:
            self.use(None)

    # -- processes ---------------------------------------------------------------------------------------
    def start_switchboard(self) -> Gateway:
        """`python -m router serve` with the load benchmark's config plus one client key without limits."""
        cfg = yaml.safe_load(run.CONFIG.read_text())
        cfg["auth"] = {"keys": [{"name": "bench", "key": CLIENT_KEY}]}
        path = self.out / "switchboard_config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t0 = time.monotonic()
        self.start_router(workers=1, config=path)  # pinned to the gateway CPU; 4 plain requests must succeed
        gw = Gateway("switchboard", self.router, self.router_port, round(time.monotonic() - t0, 2), path)
        self.gateways["switchboard"] = gw
        self.use(None)
        return gw

    def start_litellm(self, tripwire_url: str) -> Gateway:
        """`litellm --config … --num_workers 1` from its own venv, offline, master key as the client key."""
        port = procs.free_port()
        home = self.out / "litellm-home"
        home.mkdir(parents=True, exist_ok=True)
        cfg = {"model_list": [{"model_name": MODEL, "litellm_params": {
                   "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{self.mock_port}/v1",
                   "api_key": UPSTREAM_KEY}}],
               "general_settings": {"master_key": CLIENT_KEY}}
        path = self.out / "litellm_config.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        no_proxy = "127.0.0.1,localhost,::1"
        # A clean environment: nothing of ours (keys, tokens, proxies) reaches a third-party process.
        env = {"PATH": f"{install.VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
               "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **LITELLM_OFFLINE_ENV,
               "HTTP_PROXY": tripwire_url, "HTTPS_PROXY": tripwire_url, "http_proxy": tripwire_url,
               "https_proxy": tripwire_url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
        cmd = [str(install.VENV / "bin" / "litellm"), "--config", str(path), "--host", "127.0.0.1",
               "--port", str(port), "--num_workers", "1"]
        service = procs.Service("LiteLLM proxy", cmd, cwd=home, env=env, log_path=self.out / "litellm.log",
                                cpus=self.layout.router, die_with_parent=True)
        t0 = time.monotonic()
        service.start()
        gw = Gateway("litellm", service, port, 0.0, path)
        self.gateways["litellm"] = gw  # registered first: stopped in stop_all even if it never gets ready
        service.wait_http(gw.url("/health/liveliness"), timeout_s=180)
        gw.startup_s = round(time.monotonic() - t0, 2)
        self.say(f"LiteLLM ready on :{port} after {gw.startup_s:.1f}s (pids {service.pids()})")
        return gw

    def stop_all(self) -> None:
        services = [gw.service for gw in self.gateways.values()]
        for gw in self.gateways.values():
            try:
                gw.service.stop()
            except Exception as exc:  # keep stopping the others
                self.say(f"warning: stopping {NAMES[gw.key]}: {exc}")
        if self.router in services:
            self.router = None
        super().stop_all()  # the mock, and a router that failed before it became a gateway
        self.tripwire.stop()

    # -- checks ------------------------------------------------------------------------------------------
    def mock_requests(self) -> int:
        with _NO_PROXY.open(f"http://127.0.0.1:{self.mock_port}/stats", timeout=5) as resp:
            return json.loads(resp.read())["requests"]

    def verify(self, key: str) -> dict[str, Any]:
        """Before timing anything: the gateway answers with the mock's answer (and the mock saw the call),
        streams arrive whole, and a request without the key or with a wrong one is refused."""
        gw = self.gateways[key]
        expected = json.loads(mock_upstream.completion_body(MODEL))
        expected_stream = "".join(
            (json.loads(e[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
            for e in mock_upstream.stream_events(MODEL, self.chunks, True) if e != b"data: [DONE]\n\n")
        before = self.mock_requests()
        status, body = _post(gw.url(), loadgen.request_body(MODEL), loadgen.HEADERS)
        upstream_calls = self.mock_requests() - before - 1  # the second /stats request counts itself
        try:
            data = json.loads(body)
            content = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            data, content, usage = {}, None, {}
        plain_ok = (status == 200 and data.get("object") == "chat.completion" and upstream_calls >= 1
                    and content == expected["choices"][0]["message"]["content"]
                    and usage.get("total_tokens") == expected["usage"]["total_tokens"])
        s_status, raw = _post(gw.url(), loadgen.request_body(MODEL, stream=True), loadgen.HEADERS)
        events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
        pieces = []
        for event in events:
            if event == b"[DONE]":
                continue
            try:
                choices = json.loads(event).get("choices") or [{}]
            except ValueError:
                continue
            pieces.append((choices[0].get("delta") or {}).get("content") or "")
        stream_ok = (s_status == 200 and bool(events) and events[-1] == b"[DONE]"
                     and "".join(pieces) == expected_stream and sum(1 for p in pieces if p) == self.chunks)
        # Refused = no 200 and no call to the mock (the status varies: LiteLLM answers a request without
        # a key with 500, its error handler importing `prisma`, which only the database extra installs).
        before = self.mock_requests()
        no_key = _post(gw.url(), loadgen.request_body(MODEL), {"content-type": "application/json"})[0]
        wrong_key = _post(gw.url(), loadgen.request_body(MODEL),
                          {"content-type": "application/json", "authorization": f"Bearer {WRONG_KEY}"})[0]
        leaked = self.mock_requests() - before - 1
        auth_ok = no_key >= 400 and wrong_key >= 400 and leaked == 0
        out = {"plain": {"status": status, "upstream_calls": upstream_calls, "content_matches_mock": plain_ok,
                         "usage": usage},
               "stream": {"status": s_status, "events": len(events), "content_chunks": sum(1 for p in pieces if p),
                          "ends_with_done": bool(events) and events[-1] == b"[DONE]", "ok": stream_ok},
               "auth": {"no_key_status": no_key, "wrong_key_status": wrong_key, "upstream_calls": leaked,
                        "refused": auth_ok},
               "passed": plain_ok and stream_ok and auth_ok}
        self.say(f"check {NAMES[key]}: answer from the mock {'yes' if plain_ok else 'NO'} "
                 f"(mock saw {upstream_calls} call(s)), stream {'whole' if stream_ok else 'BROKEN'} "
                 f"({out['stream']['content_chunks']} content chunks), no key -> {no_key}, wrong key -> {wrong_key}")
        if not out["passed"]:
            raise RuntimeError(f"{NAMES[key]} failed the pre-flight check {out}; its log ends with:\n"
                               f"{gw.service.log_tail(20)}\nanswer: {body[:500]!r}")
        return out

    def note_remote(self) -> None:
        for key, gw in self.gateways.items():
            seen = set(self.remote_seen.get(key, [])) | set(procs.remote_connections(gw.service.pids()))
            self.remote_seen[key] = sorted(seen)

    # -- memory ------------------------------------------------------------------------------------------
    def memory_of(self, key: str) -> dict[str, Any]:
        pids = self.gateways[key].service.pids()
        threads = 0
        for pid in pids:
            try:
                threads += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                pass
        return {"processes": len(pids), "threads": threads,
                "rss_mb": round(sum(procs.rss_mb(p) or 0.0 for p in pids), 1),
                "pss_mb": round(sum(procs.pss_mb(p) or 0.0 for p in pids), 1)}

    def idle(self, seconds: float) -> dict[str, Any]:
        """Both gateways idle for `seconds`: the CPU each uses doing nothing, then RSS/PSS of each tree."""
        cpu0 = {k: procs.cpu_seconds(gw.service.pids()) for k, gw in self.gateways.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        out = {}
        for key, gw in self.gateways.items():
            cpu = procs.cpu_seconds(gw.service.pids()) - cpu0[key]
            out[key] = {**self.memory_of(key), "idle_cpu_pct": round(100.0 * cpu / wall, 2),
                        "idle_window_s": round(wall, 1), "startup_s": gw.startup_s}
        return out

    # -- scenarios ---------------------------------------------------------------------------------------
    def warm_up_all(self) -> None:
        p = self.cprofile
        for key in (None, *GATEWAYS):
            self.measure(key, "warm-up", concurrency=8, duration=p.warmup_s, generator="asyncio", quiet=True,
                         max_requests=2000)
            self.measure(key, "warm-up", rate=p.stream_rate, duration=p.warmup_s, stream=True,
                         generator="asyncio", quiet=True, max_requests=200)

    def point(self, index: int, label: str, **kwargs: Any) -> dict[str, Any]:
        """One load point: direct, then both gateways (which goes first alternates from point to point)."""
        order = GATEWAYS if index % 2 == 0 else GATEWAYS[::-1]
        row: dict[str, Any] = {"order": ["direct", *order], "direct": self.measure(None, label, **kwargs)}
        for key in order:
            row[key] = self.measure(key, label, **kwargs)
        self.note_remote()
        return row

    def compare_fixed_rate(self) -> list[dict[str, Any]]:
        rows = []
        for i, rate in enumerate(self.cprofile.rates):
            row = {"offered_rps": rate, **self.point(i, f"1 fixed rate {rate}/s", rate=rate)}
            row["added_ms"] = {k: run._added(_lat(row["direct"]), _lat(row[k])) for k in GATEWAYS}
            row["kept_up"] = {k: row[k]["failed"] == 0 and row[k]["rps"] >= 0.95 * rate for k in GATEWAYS}
            row["ratios_litellm_over_switchboard"] = _ratios(row, stream=False)
            rows.append(row)
        return rows

    def compare_closed_loop(self) -> dict[str, Any]:
        c = self.cprofile.concurrency
        row = {"concurrency": c, **self.point(len(self.cprofile.rates), f"2 closed loop c={c}", concurrency=c)}
        row["throughput_switchboard_over_litellm"] = _ratio(row["switchboard"]["rps"], row["litellm"]["rps"])
        row["ratios_litellm_over_switchboard"] = _ratios(row, stream=False)
        return row

    def compare_streaming(self) -> dict[str, Any]:
        rate = self.cprofile.stream_rate
        row = {"offered_rps": rate, "chunks": self.chunks, "chunk_interval_ms": self.chunk_interval_ms,
               **self.point(len(self.cprofile.rates) + 1, f"3 streams {rate}/s", rate=rate, stream=True)}
        row["added_ttft_ms"] = {k: run._added(_lat(row["direct"], "ttft_ms"), _lat(row[k], "ttft_ms"))
                                for k in GATEWAYS}
        row["added_total_ms"] = {k: run._added(_lat(row["direct"]), _lat(row[k])) for k in GATEWAYS}
        row["kept_up"] = {k: row[k]["failed"] == 0 and row[k]["rps"] >= 0.95 * rate for k in GATEWAYS}
        row["ratios_litellm_over_switchboard"] = _ratios(row, stream=True)
        return row

    # -- the whole run -----------------------------------------------------------------------------------
    def compare(self, litellm_info: dict[str, Any]) -> dict[str, Any]:
        p = self.cprofile
        self.layout = run._layout(self.pin)
        if self.layout.client:
            os.sched_setaffinity(0, self.layout.client)
        res = self.results
        res.update({"schema": 1, "kind": "compare", "profile": p.name, "started_at": run._now(),
                    "machine": report.machine_info(), "versions": report.versions(),
                    "litellm": {**litellm_info, "components": install.component_versions()},
                    "settings": {"profile": asdict(p), "pinning": self.layout.note.replace(
                                     "router pinned", "both gateways pinned").replace(" (scenario 6 unpinned)", ""),
                                 "gateway_cpus": sorted(self.layout.router) if self.layout.router else None,
                                 "client_cpus": sorted(self.layout.client) if self.layout.client else None,
                                 "upstream_latency_ms": self.upstream_latency_ms, "stream_chunks": self.chunks,
                                 "stream_chunk_interval_ms": self.chunk_interval_ms, "model": MODEL,
                                 "client_auth": {"switchboard": "auth.keys: one virtual key, no limits",
                                                 "litellm": "general_settings.master_key (no database)"},
                                 "litellm_env": LITELLM_OFFLINE_ENV},
                    "generators": {"open_loop": "asyncio (aiohttp client)", "streams": "asyncio (aiohttp client)",
                                   "closed_loop": "wrk" if loadgen.wrk_path() else "asyncio (aiohttp client)",
                                   "wrk_path": loadgen.wrk_path()},
                    "scenarios": {}})
        self.say(f"profile {p.name}: {res['machine']['cores']} cores, {res['settings']['pinning']}; "
                 f"closed loop by {res['generators']['closed_loop']}")
        self.await_quiet(limit_s=min(30.0, p.patience_s), hold_s=1.0)
        self.start_mock()
        tripwire_url = self.tripwire.start()
        self.start_switchboard()
        self.say(f"Switchboard ready after {self.gateways['switchboard'].startup_s:.1f}s")
        self.start_litellm(tripwire_url)
        res["checks"] = {k: self.verify(k) for k in GATEWAYS}
        res["idle"] = self.idle(p.idle_s)
        self.say("idle: " + ", ".join(f"{NAMES[k]} RSS {v['rss_mb']:.0f} MB ({v['processes']} process(es), "
                                      f"{v['threads']} threads), {v['idle_cpu_pct']:.1f}% CPU"
                                      for k, v in res["idle"].items()))
        self.note_remote()
        mock_before = self.mock_requests()
        self.total_ok = 0
        self.warm_up_all()
        sc = res["scenarios"]
        sc["fixed_rate"] = self.compare_fixed_rate()
        sc["closed_loop"] = self.compare_closed_loop()
        sc["streaming"] = self.compare_streaming()
        time.sleep(min(p.idle_s, 2.0))
        res["memory_after_load"] = {k: self.memory_of(k) for k in GATEWAYS}
        mock_seen = self.mock_requests() - mock_before - 1
        log_lines = [line.strip()[:300] for line in self.gateways["litellm"].service.log_tail(100_000).splitlines()
                     if OFFLINE_FAILURE.search(line)]
        res["integrity"] = {"mock_requests": mock_seen, "ok_answers": self.total_ok,
                            "every_answer_came_from_the_mock": mock_seen >= self.total_ok}
        res["offline"] = {"tripwire_proxy_attempts": list(self.tripwire.attempts),
                          "non_loopback_sockets": self.remote_seen,
                          "litellm_log_network_errors": log_lines[:20],
                          "clean": not self.tripwire.attempts and not any(self.remote_seen.values())
                          and not log_lines}
        res["finished_at"] = run._now()
        res["noise"] = {"limit_cores": run.NOISE_LIMIT_CORES, "max_retries": run.MAX_NOISY_RETRIES,
                        "patience_left_s": round(self.patience_s, 1)}
        res["summary"] = summary(res)
        return res


def _ratios(row: dict[str, Any], stream: bool) -> dict[str, float | None]:
    """LiteLLM ÷ Switchboard for the costs of one point (> 1: LiteLLM costs more)."""
    sb, ll = row["switchboard"], row["litellm"]
    out = {"cpu_per_request": _ratio(ll["gateway_cpu_us_per_req"], sb["gateway_cpu_us_per_req"]),
           "latency_p50": _ratio(_lat(ll).get("p50"), _lat(sb).get("p50")),
           "latency_p99": _ratio(_lat(ll).get("p99"), _lat(sb).get("p99"))}
    added = row.get("added_total_ms" if stream else "added_ms") or {}
    if added:
        out["added_p50"] = _ratio((added.get("litellm") or {}).get("p50"), (added.get("switchboard") or {}).get("p50"))
        out["added_p99"] = _ratio((added.get("litellm") or {}).get("p99"), (added.get("switchboard") or {}).get("p99"))
    if stream:
        ttft = row.get("added_ttft_ms") or {}
        out["added_ttft_p50"] = _ratio((ttft.get("litellm") or {}).get("p50"),
                                       (ttft.get("switchboard") or {}).get("p50"))
    return out


def summary(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline rows: (metric, unit, Switchboard, LiteLLM, ratio, which way the ratio is taken)."""
    sc = res["scenarios"]
    get = report._get
    rows: list[dict[str, Any]] = []

    def add(metric: str, unit: str, sb: float | None, ll: float | None, better: str = "lower") -> None:
        if better == "lower":
            rows.append({"metric": metric, "unit": unit, "switchboard": sb, "litellm": ll,
                         "ratio": _ratio(ll, sb), "ratio_is": "LiteLLM / Switchboard"})
        else:
            rows.append({"metric": metric, "unit": unit, "switchboard": sb, "litellm": ll,
                         "ratio": _ratio(sb, ll), "ratio_is": "Switchboard / LiteLLM"})

    idle = res.get("idle") or {}
    if idle:
        add("idle RSS (process tree, after start-up)", "MB", idle["switchboard"]["rss_mb"], idle["litellm"]["rss_mb"])
        add("start-up time to ready", "s", idle["switchboard"]["startup_s"], idle["litellm"]["startup_s"])
    fixed = sc.get("fixed_rate") or []
    if fixed:
        top = fixed[-1]
        r = top["offered_rps"]
        add(f"CPU per request at {r} RPS", "µs", top["switchboard"]["gateway_cpu_us_per_req"],
            top["litellm"]["gateway_cpu_us_per_req"])
        for q in ("p50", "p99"):
            add(f"added latency {q} at {r} RPS (gateway - direct)", "ms", get(top, "added_ms", "switchboard", q),
                get(top, "added_ms", "litellm", q))
    cl = sc.get("closed_loop")
    if cl:
        c = cl["concurrency"]
        add(f"closed-loop throughput, concurrency {c}", "RPS", cl["switchboard"]["rps"], cl["litellm"]["rps"],
            better="higher")
        add(f"closed-loop latency p50, concurrency {c}", "ms", _lat(cl["switchboard"]).get("p50"),
            _lat(cl["litellm"]).get("p50"))
        add(f"closed-loop latency p99, concurrency {c}", "ms", _lat(cl["switchboard"]).get("p99"),
            _lat(cl["litellm"]).get("p99"))
        add(f"CPU per request, closed loop c={c}", "µs", cl["switchboard"]["gateway_cpu_us_per_req"],
            cl["litellm"]["gateway_cpu_us_per_req"])
    st = sc.get("streaming")
    if st:
        add(f"CPU per {st['chunks']}-chunk stream", "µs", st["switchboard"]["gateway_cpu_us_per_req"],
            st["litellm"]["gateway_cpu_us_per_req"])
        add("added time to first token p50 (streams)", "ms", get(st, "added_ttft_ms", "switchboard", "p50"),
            get(st, "added_ttft_ms", "litellm", "p50"))
        add("added total stream time p50", "ms", get(st, "added_total_ms", "switchboard", "p50"),
            get(st, "added_total_ms", "litellm", "p50"))
    return rows
