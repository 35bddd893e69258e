"""Turning a results dict into targets, a markdown report, a README section and a PNG plot."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

README_BEGIN = "<!-- benchmarks:begin -->"
README_END = "<!-- benchmarks:end -->"
SOAK_GROWTH_LIMIT_MB = 2.0
ROOT = Path(__file__).resolve().parent.parent


# -- environment ---------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "usable_cpus": sorted(os.sched_getaffinity(0)), "cpu_model": model,
            "memory_gb": mem_gb, "kernel": platform.release(), "os": platform.system(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()], "hostname": platform.node()}


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def versions() -> dict[str, Any]:
    wrk = shutil.which("wrk")
    wrk_version = None
    if wrk:
        try:
            out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=5, check=False)
            wrk_version = (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            wrk_version = "unknown"
    commit = None
    try:  # read-only
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
        commit = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"python": platform.python_version(), "aiohttp": _version("aiohttp"), "uvloop": _version("uvloop"),
            "orjson": _version("orjson"), "switchboard": _version("switchboard"), "wrk": wrk_version,
            "matplotlib": _version("matplotlib"), "git_commit": commit}


# -- derived numbers ----------------------------------------------------------------------------------------
def soak_growth(samples: list[tuple[float, float | None]], requests: int) -> dict[str, Any]:
    """RSS growth after warm-up: the median of the last samples minus the median around 25% of the run."""
    pts = [(t, v) for t, v in samples if v is not None]
    if len(pts) < 3:
        return {"growth_mb": 0.0, "slope_mb_per_min": None, "bytes_per_request": None, "baseline_mb": None}
    total = pts[-1][0] or 1.0
    after = [(t, v) for t, v in pts if t >= 0.25 * total] or pts[-2:]
    base_window = [v for t, v in after if t <= 0.35 * total] or [after[0][1]]
    baseline = sorted(base_window)[len(base_window) // 2]
    tail = sorted(v for _, v in pts[-3:])
    end = tail[len(tail) // 2]
    growth = end - baseline
    slope = None
    if len(after) >= 3:
        mt = sum(t for t, _ in after) / len(after)
        mv = sum(v for _, v in after) / len(after)
        den = sum((t - mt) ** 2 for t, _ in after)
        slope = round(sum((t - mt) * (v - mv) for t, v in after) / den * 60.0, 3) if den else None
    share = (total - after[0][0]) / total
    return {"baseline_mb": round(baseline, 2), "end_mb": round(end, 2), "growth_mb": round(growth, 2),
            "slope_mb_per_min": slope,
            "bytes_per_request": round(growth * 1024 * 1024 / max(1, int(requests * share)), 1),
            "growth_limit_mb": SOAK_GROWTH_LIMIT_MB}


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        if data is None:
            return None
        if isinstance(key, int):
            data = data[key] if isinstance(data, list) and len(data) > key else None
        else:
            data = data.get(key) if isinstance(data, dict) else None
    return data


def _row(rows: list[dict], key: str, value: Any) -> dict | None:
    return next((r for r in rows or [] if r.get(key) == value), None)


def _production_section(prod: dict[str, Any], sc: dict[str, Any]) -> list[str]:
    if not prod:
        return []
    if prod.get("status") in ("skipped", "error"):
        return ["## 8. Production settings", "", f"{prod['status'].capitalize()}: {prod.get('reason')}.", ""]
    out = ["## 8. Production settings (scenarios 1-3 again)", "", f"{prod['settings']}. CPU per request beside the "
           "same point without auth and Redis (scenarios 1-3 of this run).", "",
           "| load | router p50 / p90 / p99 ms | added p50 / p99 ms | router CPU µs/req | without: µs/req |",
           "|---|---|---|---:|---:|"]

    def line(label: str, row: dict[str, Any], base: dict | None) -> str:
        return (f"| {label} | {_lat(row['router']['latency_ms'])} | {_f(_get(row, 'added_ms', 'p50'))} / "
                f"{_f(_get(row, 'added_ms', 'p99'))} | {_f(row['router']['router_cpu_us_per_req'], 0)} | "
                f"{_f(_get(base, 'router', 'router_cpu_us_per_req'), 0)} |")

    for row in prod.get("fixed_rate") or []:
        out.append(line(f"{row['offered_rps']} RPS offered", row,
                        _row(sc.get("fixed_rate"), "offered_rps", row["offered_rps"])))
    for row in prod.get("closed_loop") or []:
        out.append(line(f"closed loop c={row['concurrency']} ({_f(row['router']['rps'], 0)} RPS)", row,
                        _row(sc.get("closed_loop"), "concurrency", row["concurrency"])))
    streaming = prod.get("streaming")
    if streaming:
        out.append(f"| streams, {streaming['offered_rps']}/s | {_lat(streaming['router']['latency_ms'])} | "
                   f"{_f(_get(streaming, 'added_total_ms', 'p50'))} / {_f(_get(streaming, 'added_total_ms', 'p99'))} "
                   f"| {_f(streaming['router_cpu_us_per_stream'], 0)} | "
                   f"{_f(_get(sc, 'streaming', 'router_cpu_us_per_stream'), 0)} |")
    return [*out, ""]


def _many_streams_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    first = next((r for r in rows if "seconds" in r), None)
    pace = (f"each {first['seconds']:g} s long, a content chunk every {first['interval_ms']:g} ms" if first
            else "")
    out = [f"## 7. Many open streams ({pace}; opened 500 a second)", "",
           "Added = router percentile - direct percentile. Router CPU per chunk and RSS per stream are taken over "
           "the window in which every stream was open (only relaying happens then). The floor: the same streams "
           "through a bare byte pipe on the same event loop (one read and one write per chunk, nothing else), "
           "on one worker; the mock's CPU per chunk it sends is beside it.", "",
           "| streams | workers | completed | errors | added TTFT p50 / p99 ms | added gap p50 / p99 ms "
           "| router CPU µs/chunk | byte pipe µs/chunk | mock µs/chunk | RSS KB/stream | generator lag p99 ms |",
           "|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("status") in ("skipped", "error"):
            out.append(f"| {r['streams']:,} | {r['workers']} | {r['status']}: {r.get('reason')} | | | | | | | | |")
            continue
        routed = r["router"]
        out.append(f"| {r['streams']:,} | {r['workers']} | {routed['completed']:,} | {_errors(r)} | "
                   f"{_f(r['added_ttft_ms']['p50'])} / {_f(r['added_ttft_ms']['p99'])} | "
                   f"{_f(r['added_gap_ms']['p50'])} / {_f(r['added_gap_ms']['p99'])} | "
                   f"{_f(r['router_cpu_us_per_chunk'], 1)} | {_f(r.get('pipe_cpu_us_per_chunk'), 1)} | "
                   f"{_f(r.get('mock_cpu_us_per_chunk'), 1)} | {_f(r['rss_kb_per_stream'], 1)} | "
                   f"{_f(_get(routed, 'generator_lag_ms', 'p99'))} |")
    return [*out, ""]


def _errors(row: dict[str, Any]) -> int:
    """Streams through the router that failed (not ended by `[DONE]`)."""
    return sum((_get(row, "errors", "router") or {}).values())


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets, each with the measured value and pass/fail (None when not measured)."""
    sc = res.get("scenarios", {})
    at500 = _row(sc.get("fixed_rate"), "offered_rps", 500)
    w2 = _get(sc, "workers_2", "closed_loop")
    w2c64 = _row(w2, "concurrency", 64)
    chunks = _get(sc, "streaming", "chunks")
    idle = [*(_get(res, "memory", "idle", "rss_mb_per_worker") or []),
            *(_get(sc, "workers_2", "memory_idle", "rss_mb_per_worker") or [])]
    soak = sc.get("soak") or {}
    stream_run = _get(sc, "streaming", "router")
    w2_runs = [r["router"] for r in w2 or []]
    specs = [
        ("router CPU time per non-streaming request", _get(at500, "router", "router_cpu_us_per_req"), "<=", 250,
         "µs", "scenario 1 at 500 RPS, /proc utime+stime / requests", [_get(at500, "router")]),
        (f"router CPU time per {chunks or 20}-chunk stream", _get(sc, "streaming", "router_cpu_us_per_stream"),
         "<=", 1000, "µs", "scenario 3", [stream_run]),
        ("added latency p50 at 500 RPS offered", _get(at500, "added_ms", "p50"), "<=", 0.5, "ms",
         "scenario 1, router p50 - direct p50", [_get(at500, "router"), _get(at500, "direct")]),
        ("added latency p99 at 500 RPS offered", _get(at500, "added_ms", "p99"), "<=", 2.0, "ms",
         "scenario 1, router p99 - direct p99", [_get(at500, "router"), _get(at500, "direct")]),
        ("closed-loop throughput, concurrency 64, --workers 2", _get(w2c64, "router", "rps"), ">=", 4000, "RPS",
         "scenario 6" + (f" ({_get(w2c64, 'router', 'generator')})" if w2c64 else ""), w2_runs),
        ("idle RSS per worker (max)", max(idle) if idle else None, "<=", 80, "MB", "VmRSS after start-up", []),
        ("RSS growth over the soak", soak.get("growth_mb"), "<=", SOAK_GROWTH_LIMIT_MB, "MB",
         f"{soak.get('seconds', 0):g} s soak, after warm-up" if soak else "soak", [soak.get("load")]),
    ]
    prod = sc.get("production") or {}
    if prod.get("closed_loop"):
        top = max(prod["closed_loop"], key=lambda r: r["concurrency"])
        p500 = _row(prod.get("fixed_rate"), "offered_rps", 500)
        ratio = None
        if p500 and _get(p500, "direct", "mock_cpu_us_per_req"):
            ratio = round(p500["router"]["router_cpu_us_per_req"] / p500["direct"]["mock_cpu_us_per_req"], 2)
        specs += [
            ("router CPU per non-streaming request, production settings, at saturation",
             _get(top, "router", "router_cpu_us_per_req"), "<=", 200, "µs",
             f"scenario 8, closed loop c={top['concurrency']}", [top.get("router")]),
            ("router CPU / mock upstream CPU per request, production settings, 500 RPS offered", ratio, "<=", 4,
             "x", "scenario 8 at 500 RPS, each from /proc", [_get(p500, "router")]),
            (f"router CPU per {chunks or 20}-chunk stream, production settings",
             _get(prod, "streaming", "router_cpu_us_per_stream"), "<=", 1000, "µs", "scenario 8 streams",
             [_get(prod, "streaming", "router")])]
    for row in sc.get("many_streams") or []:
        if row.get("status") in ("skipped", "error"):
            continue
        where = f"scenario 7, {row['streams']:,} streams, {row['workers']} worker(s)"
        floor = row.get("pipe_cpu_us_per_chunk")
        failed = [{"failed": _errors(row)}]
        specs += [
            (f"router CPU per relayed chunk ({row['streams']:,} open streams)", row["router_cpu_us_per_chunk"], "<=",
             30, "µs", where + ", all streams open" + (f"; byte pipe floor {floor:g} µs" if floor else ""), failed),
            (f"added TTFT p99 ({row['streams']:,} open streams)", _get(row, "added_ttft_ms", "p99"), "<=", 20, "ms",
             where, failed),
            (f"added inter-chunk delay p99 ({row['streams']:,} open streams)", _get(row, "added_gap_ms", "p99"), "<=",
             20, "ms", where, failed),
            (f"RSS per open stream ({row['streams']:,} streams)", row["rss_kb_per_stream"], "<=", 30, "KB", where,
             failed)]
    out = []
    for name, value, op, limit, unit, source, runs in specs:
        failed = sum((r or {}).get("failed", 0) for r in runs)
        passed = None if value is None else (value <= limit if op == "<=" else value >= limit)
        if failed and value is not None:
            passed = False
            source += f"; INVALID: {failed} requests failed"
        out.append({"target": name, "value": value, "op": op, "limit": limit, "unit": unit, "pass": passed,
                    "source": source, "failed_requests": failed,
                    "noisy": any((r or {}).get("noisy") for r in runs)})
    return out


# -- markdown -----------------------------------------------------------------------------------------------
def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _lat(lat: dict | None, keys: tuple[str, ...] = ("p50", "p90", "p99")) -> str:
    return " / ".join(_f(lat.get(k)) for k in keys) if lat else "-"


def _gen(run: dict) -> str:
    """The generator that produced a number, plus flags: failed requests, disturbed by other processes."""
    text = run["generator"]
    if run.get("failed"):
        text += f", **{run['failed']} failed**"
    if run.get("noisy"):
        text += f", noisy ({run['foreign_busy_cores']:.2f} cores used by others)"
    return text


def _direct_flags(run: dict) -> str:
    return f"; direct: {_gen(run)}" if run.get("failed") or run.get("noisy") else ""


def _verdict(t: dict) -> str:
    return "not measured" if t["pass"] is None else ("**pass**" if t["pass"] else "**FAIL**")


def machine_line(m: dict[str, Any]) -> str:
    return (f"- Machine: **{m['cores']} cores** ({m['cpu_model'] or 'unknown CPU'}), {_f(m['memory_gb'], 1)} GB RAM, "
            f"{m['os']} {m['kernel']}; load average at start {', '.join(map(str, m['loadavg_at_start']))}.")


def versions_line(v: dict[str, Any]) -> str:
    return (f"- Versions: Python {v['python']}, aiohttp {v['aiohttp']}, uvloop {v['uvloop'] or 'not installed'}, "
            f"orjson {v['orjson']}, switchboard {v['switchboard'] or '?'}"
            + (f" (git {v['git_commit']})" if v.get("git_commit") else "") + ".")


def header_lines(res: dict[str, Any]) -> list[str]:
    m, v, s = res["machine"], res["versions"], res["settings"]
    gens = res["generators"]
    foreign = _max_foreign(res)
    lines = [
        machine_line(m),
        versions_line(v),
        f"- Run: `{res['profile']}` profile, {res['started_at']} to {res.get('finished_at', '?')}; "
        f"CPU layout: {s['pinning']}.",
        f"- Upstream: `benchmarks/mock_upstream.py` (raw asyncio protocol on uvloop, pre-serialised bodies), "
        f"{_f(s['upstream_latency_ms'], 1)} ms to first byte, streams of {s['stream_chunks']} content chunks "
        f"{_f(s['stream_chunk_interval_ms'], 1)} ms apart.",
        f"- Load generators: closed loop by **{gens['closed_loop']}**"
        + (f" ({v['wrk']})" if v.get("wrk") and "wrk" in gens["closed_loop"] else "")
        + f"; fixed rate and streams by **{gens['open_loop']}** (Debian's wrk has no fixed-rate mode).",
        "- Everything shares the same cores: the load generator and the mock upstream take CPU the router "
        "could use, so direct and router numbers are each measured under the same conditions, back to back.",
    ]
    if foreign is not None:
        lines.append(f"- Other processes on the machine (not part of the benchmark) used up to **{foreign:.2f} "
                     "cores** during a measurement (from /proc/stat)"
                     + ("; numbers are noisier than on an idle machine." if foreign > 0.1 else "."))
    steal = _run_values(res, "steal_cores")
    if steal and max(steal) > 0.05:
        lines.append(f"- The hypervisor gave the CPUs to other guests (steal time in /proc/stat) for "
                     f"**{sum(steal) / len(steal):.2f} cores** on average during the measurements (up to "
                     f"{max(steal):.2f}): each core ran slower than on a host of its own, so absolute CPU times "
                     "and rates are inflated; ratios taken in the same run (router against direct, against the "
                     "floor) hold.")
    return lines


def _run_values(res: dict[str, Any], name: str) -> list[float]:
    """Every run's `name` (a machine-load figure) anywhere in the scenarios."""
    vals: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get(name), int | float):
                vals.append(node[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(res.get("scenarios"))
    return vals


def _max_foreign(res: dict[str, Any]) -> float | None:
    vals = _run_values(res, "foreign_busy_cores")
    return max(vals) if vals else None


def targets_table(res: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | limit | result | from |", "|---|---:|---:|---|---|"]
    for t in res.get("targets", []):
        digits = {"µs": 0, "RPS": 0, "MB": 1}.get(t["unit"], 2)
        value = t["value"] if not isinstance(t["value"], int) else float(t["value"])
        lines.append(f"| {t['target']} | {_f(value, digits)} {t['unit']} | {t['op']} {_f(t['limit'])} {t['unit']} | "
                     f"{_verdict(t)} | {t['source']} |")
    return lines


def markdown(res: dict[str, Any]) -> str:
    sc = res["scenarios"]
    out = [f"# Switchboard benchmark ({res['profile']} run)", "", *header_lines(res), "", "## Targets", "",
           *targets_table(res), ""]
    rows = sc.get("fixed_rate")
    if rows:
        out += ["## 1. Fixed offered load (open loop)", "",
                "Latency in ms, p50 / p90 / p99, timed from the moment each request was sent; "
                "added = router - direct (difference of the percentiles).", "",
                "| offered RPS | achieved RPS (router) | direct | router | added p50 | added p99 | "
                "router CPU µs/req | generator lag p99 ms | generator |",
                "|---:|---:|---|---|---:|---:|---:|---:|---|"]
        for r in rows:
            d, ro = r["direct"], r["router"]
            out.append(f"| {r['offered_rps']} | {_f(ro['rps'], 0)} | {_lat(d['latency_ms'])} | "
                       f"{_lat(ro['latency_ms'])} | {_f(_get(r, 'added_ms', 'p50'))} | "
                       f"{_f(_get(r, 'added_ms', 'p99'))} | {_f(ro['router_cpu_us_per_req'], 0)} | "
                       f"{_f(_get(ro, 'lag_ms', 'p99'))} | {_gen(ro)}{_direct_flags(d)} |")
        out.append("")
    rows = sc.get("closed_loop")
    if rows:
        out += _closed_table("## 2. Closed loop (one router worker)", rows)
    st = sc.get("streaming")
    if st:
        out += [f"## 3. Streaming ({st['chunks']} content chunks {_f(st['chunk_interval_ms'], 1)} ms apart, "
                f"{st['offered_rps']} streams/s offered)", "",
                "| path | TTFT p50 / p90 / p99 ms | total p50 / p90 / p99 ms | router CPU µs/stream | generator |",
                "|---|---|---|---:|---|"]
        for name in ("direct", "router"):
            r = st[name]
            out.append(f"| {name} | {_lat(r['ttft_ms'])} | {_lat(r['latency_ms'])} | "
                       f"{_f(r['router_cpu_us_per_req'], 0)} | {_gen(r)} |")
        out += ["", f"Added: TTFT p50 {_f(_get(st, 'added_ttft_ms', 'p50'))} ms, p99 "
                f"{_f(_get(st, 'added_ttft_ms', 'p99'))} ms; total p50 {_f(_get(st, 'added_total_ms', 'p50'))} ms, "
                f"p99 {_f(_get(st, 'added_total_ms', 'p99'))} ms.", ""]
    fb = sc.get("fallback")
    if fb:
        ver = fb.get("verified") or {}
        out += [f"## 4. Fallback (first target answers 503, the fallback serves; {fb['offered_rps']} RPS offered)",
                "", f"Checked by hand first: attempts {ver.get('attempt_statuses')}, served by "
                f"`{ver.get('served_by')}` ({'as expected' if ver.get('ok') else 'NOT as expected'}).", "",
                "| path | p50 / p90 / p99 ms | router CPU µs/req | generator |", "|---|---|---:|---|"]
        for name, label in (("direct", "direct success"), ("router_success", "router, no fallback"),
                            ("router_fallback", "router, 503 then fallback")):
            r = fb[name]
            out.append(f"| {label} | {_lat(r['latency_ms'])} | {_f(r['router_cpu_us_per_req'], 0)} | {_gen(r)} |")
        ratio = fb.get("latency_ratio_vs_direct") or {}
        out += ["", f"Fallback vs direct success: ratio p50 {_f(ratio.get('p50'))}x, p99 {_f(ratio.get('p99'))}x; "
                f"added p50 {_f(_get(fb, 'added_ms_vs_direct', 'p50'))} ms, p99 "
                f"{_f(_get(fb, 'added_ms_vs_direct', 'p99'))} ms (vs a router success: p50 "
                f"{_f(_get(fb, 'added_ms_vs_router_success', 'p50'))} ms).", ""]
    rd = sc.get("redis_cache_accounting")
    if rd and rd.get("direct"):
        out += ["## 5. Redis: accounting, then the response cache",
                "", f"Fixed rate {rd['offered_rps']} RPS; {rd['redis']}. `accounting`: every request's usage "
                "batched to Redis, cache off. `cache_hits`: the cache on too, every request identical (hits "
                "after the first, served without the upstream).", "",
                "| path | p50 / p90 / p99 ms | added p50 / p99 ms | router CPU µs/req | generator |",
                "|---|---|---:|---:|---|",
                f"| direct | {_lat(rd['direct']['latency_ms'])} | | | {_gen(rd['direct'])} |"]
        for name in ("accounting", "cache_hits"):
            r, added = rd[name], rd.get(f"added_ms_{name}") or {}
            out.append(f"| router, {name} | {_lat(r['latency_ms'])} | {_f(added.get('p50'))} / "
                       f"{_f(added.get('p99'))} | {_f(r['router_cpu_us_per_req'], 0)} | {_gen(r)} |")
        out.append("")
    elif rd:
        verb = "Failed" if rd.get("status") == "error" else "Skipped"
        out += ["## 5. Redis cache and accounting", "", f"{verb}: {rd.get('reason')}.", ""]
    w2 = sc.get("workers_2") or {}
    if w2.get("closed_loop"):
        out += _closed_table("## 6. `--workers 2` (closed loop, nothing pinned)", w2["closed_loop"])
        idle, loaded = w2["memory_idle"], w2["memory_after_load"]
        out += [f"Idle RSS per worker {idle['rss_mb_per_worker']} MB (PSS {idle['pss_mb_per_worker']} MB); "
                f"after load {loaded['rss_mb_per_worker']} MB; all router processes incl. the master: "
                f"RSS {loaded['rss_mb_total']} MB, PSS {loaded['pss_mb_total']} MB.", ""]
    elif w2:
        verb = "Failed" if w2.get("status") == "error" else "Skipped"
        out += ["## 6. `--workers 2`", "", f"{verb}: {w2.get('reason')}.", ""]
    out += _many_streams_section(sc.get("many_streams") or [])
    out += _production_section(sc.get("production") or {}, sc)
    prof = res.get("router_profile")
    if prof and prof.get("status") == "ok":
        out += [f"## Where router time goes (py-spy, {prof['samples']} samples, closed loop c=16, non-streaming)",
                "", "| layer | share of samples |", "|---|---:|"]
        out += [f"| {k} | {v:.1f} % |" for k, v in prof["by_layer_pct"].items()]
        out += ["", "Most self time: " + ", ".join(f"`{t['function']}` {t['pct']:.1f} %"
                                                    for t in prof["top_self_pct"][:10]) + ".", ""]
    mem = res.get("memory", {})
    soak = sc.get("soak")
    out += ["## Memory (one worker)", "", "| idle RSS | after scenarios 1-4 | soak start → end | growth after warm-up "
            "| slope | soak requests |", "|---:|---:|---:|---:|---:|---:|"]
    idle = _get(mem, "idle", "rss_mb_per_worker", 0)
    after = _get(mem, "after_load", "rss_mb_per_worker", 0)
    if soak:
        first, last = soak["rss_samples"][0][1], soak["rss_samples"][-1][1]
        out.append(f"| {_f(idle, 1)} MB | {_f(after, 1)} MB | {_f(first, 1)} → {_f(last, 1)} MB | "
                   f"{_f(soak['growth_mb'])} MB | {_f(soak['slope_mb_per_min'], 3)} MB/min | "
                   f"{_f(soak['load']['ok'])} in {soak['seconds']:g} s ({soak['load']['generator']}) |")
    else:
        out.append(f"| {_f(idle, 1)} MB | {_f(after, 1)} MB | - | - | - | - |")
    out += ["", "Raw numbers, including CPU used by the mock upstream and the load generator per request and "
            "by other processes on the machine, are in `results.json`.", ""]
    return "\n".join(out)


def _closed_table(title: str, rows: list[dict]) -> list[str]:
    out = [title, "", "| concurrency | direct RPS | router RPS | router / direct | direct p50 / p99 ms | "
           "router p50 / p99 ms | router CPU µs/req | generator |", "|---:|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        d, ro = r["direct"], r["router"]
        out.append(f"| {r['concurrency']} | {_f(d['rps'], 0)} | {_f(ro['rps'], 0)} | {_f(r['rps_ratio'], 3)} | "
                   f"{_lat(d['latency_ms'], ('p50', 'p99'))} | {_lat(ro['latency_ms'], ('p50', 'p99'))} | "
                   f"{_f(ro['router_cpu_us_per_req'], 0)} | {_gen(ro)}{_direct_flags(d)} |")
    out.append("")
    return out


def readme_section(res: dict[str, Any]) -> str:
    """The README's performance section: machine, versions, targets, the main tables."""
    full = markdown(res)
    body = full.split("\n", 2)[2]  # drop the title
    return "\n".join([README_BEGIN, "", f"_Generated by `python -m benchmarks.run` ({res['profile']} profile); "
                      "do not edit by hand._", "", body.replace("\n## ", "\n#### "), README_END])


def update_readme(path: Path, res: dict[str, Any]) -> None:
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{path}: add the markers {README_BEGIN} and {README_END} where the section goes")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(head + readme_section(res) + tail)


# -- profile ------------------------------------------------------------------------------------------------
_LAYERS = (("router code (router/, providers/)", ("(router/", "/router/", "(providers/", "/providers/")),
           ("aiohttp client (upstream call)", ("aiohttp/client", "aiohttp/connector")),
           ("aiohttp server (client-facing)", ("aiohttp/web_",)))  # not web.py: run_app is every stack's root


_BOOTSTRAP = ("router/__main__.py", "router/cli.py", "router/serve.py")  # below the event loop, not per request


def profile_summary(raw: str, top: int = 15) -> dict[str, Any]:
    """Summarise py-spy's collapsed stacks: share by layer (the leaf's nearest classified frame) and the
    functions with the most self time."""
    total = 0
    layers: dict[str, int] = {name: 0 for name, _ in _LAYERS}
    layers["event loop, syscalls, other"] = 0
    self_time: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf = frames[-1].rsplit(":", 1)[0] + (")" if "(" in frames[-1] else "")
        self_time[leaf] = self_time.get(leaf, 0) + n
        for frame in reversed(frames):
            if any(m in frame for m in _BOOTSTRAP):
                continue
            layer = next((name for name, marks in _LAYERS if any(m in frame for m in marks)), None)
            if layer:
                layers[layer] += n
                break
        else:
            layers["event loop, syscalls, other"] += n
    pct = {k: round(100.0 * v / max(total, 1), 1) for k, v in layers.items()}
    hot = sorted(self_time.items(), key=lambda kv: -kv[1])[:top]
    return {"samples": total, "by_layer_pct": pct,
            "top_self_pct": [{"function": f, "pct": round(100.0 * n / max(total, 1), 1)} for f, n in hot]}


# -- plot ---------------------------------------------------------------------------------------------------
def plot(res: dict[str, Any], path: Path) -> str | None:
    """Latency vs offered load (direct and router, p50 and p99) and the added latency; None when written."""
    rows = res["scenarios"].get("fixed_rate")
    if not rows:
        return "no fixed-rate results"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    rates = [r["offered_rps"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for path_name, color in (("direct", "tab:gray"), ("router", "tab:blue")):
        for pct, style in (("p50", "-o"), ("p99", "--s")):
            ax1.plot(rates, [_get(r, path_name, "latency_ms", pct) for r in rows], style, color=color,
                     label=f"{path_name} {pct}")
    ax1.set_xlabel("offered load (requests/s)")
    ax1.set_ylabel("latency (ms)")
    ax1.set_yscale("log")
    ax1.set_title("Latency vs offered load")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=8, loc="best")
    for pct, style, limit in (("p50", "-o", 0.5), ("p99", "--s", 2.0)):
        ax2.plot(rates, [_get(r, "added_ms", pct) for r in rows], style, label=f"added {pct}")
        ax2.axhline(limit, linestyle=":", color="tab:red" if pct == "p99" else "tab:orange",
                    label=f"{pct} target ({limit} ms at 500 RPS)")
    ax2.set_xlabel("offered load (requests/s)")
    ax2.set_ylabel("router - direct (ms)")
    ax2.set_title("Latency added by the router")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, loc="best")
    m, v = res["machine"], res["versions"]
    fig.suptitle(f"Switchboard {v.get('switchboard') or ''} on {m['cores']} cores, {res['profile']} run, "
                 f"{res['started_at'][:10]} (open loop, asyncio generator)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
