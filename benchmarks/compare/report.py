"""compare.json → compare.md: both gateways side by side, the ratios, versions and machine facts."""

from __future__ import annotations

from typing import Any

from .. import report
from ..report import _f, _gen, _get, _lat

NAMES = {"direct": "direct (no gateway)", "switchboard": "**Switchboard**", "litellm": "**LiteLLM**"}


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"


def _cpu(run: dict) -> str:
    value = run.get("gateway_cpu_us_per_req")
    if value is None:
        return ""
    tick = run.get("cpu_tick_us_per_req") or 0.0
    text = _f(float(value), 0)
    return text + (f" (±{tick:,.0f})" if value and tick / value > 0.05 else "")


def _state(row: dict, key: str) -> str:
    """How a gateway coped with an offered rate: not at all, or only by queueing on a full core."""
    if key == "direct":
        return ""
    r = row[key]
    if not row["kept_up"][key]:
        return " (did not keep up)"
    if r.get("saturated"):
        return f" (CPU-bound: {r['gateway_cpu_cores']:.2f} cores, requests queue)"
    return ""


def _added(row: dict, key: str, field: str = "added_ms") -> str:
    added = _get(row, field, key)
    return f"{_f(added.get('p50'))} / {_f(added.get('p99'))}" if added else ""


def _setup_lines(res: dict[str, Any]) -> list[str]:
    s, g, ll = res["settings"], res["generators"], res["litellm"]
    comp = ll.get("components") or {}
    installed = (f"installed in {ll['install_s']:.0f} s on {ll.get('installed_at', '?')[:10]}"
                 if ll.get("install_s") is not None else "install time not recorded")
    parser = ("httptools" if comp.get("httptools")
              else f"h11 {comp.get('h11') or '?'} (httptools is not installed by the extra)")
    lines = [
        report.machine_line(res["machine"]),
        report.versions_line(res["versions"]).replace("- Versions:", "- Switchboard side:"),
        f"- LiteLLM side: **litellm {ll.get('version')}** (`{ll.get('package')}` from PyPI in `{ll.get('venv')}`, "
        f"{ll.get('packages', '?')} packages, {_f(ll.get('venv_size_mb'), 0)} MB, {installed}); uvicorn "
        f"{comp.get('uvicorn')} with uvloop {comp.get('uvloop')}, HTTP parser {parser}; FastAPI "
        f"{comp.get('fastapi')}, Starlette {comp.get('starlette')}, pydantic {comp.get('pydantic')}, "
        f"httpx {comp.get('httpx')}, aiohttp {comp.get('aiohttp')}, openai {comp.get('openai')}.",
        f"- Run: `{res['profile']}` profile, {res['started_at']} to {res.get('finished_at', '?')}; CPU layout: "
        f"{s['pinning']}. {_f(s['profile']['duration_s'], 0)} s per measured point.",
        "- Each gateway is **one worker process**, as shipped: Switchboard `python -m router serve --workers 1` "
        "(aiohttp) with `benchmarks/bench_config.yaml`; LiteLLM `litellm --config … --num_workers 1` (uvicorn), "
        "no database. **Client auth is on in both**: Switchboard " + s["client_auth"]["switchboard"]
        + "; LiteLLM " + s["client_auth"]["litellm"] + ". Both log every request as shipped (Switchboard a "
        "JSON access line, LiteLLM uvicorn's access log), each to a file.",
        f"- Same upstream for both: `benchmarks/mock_upstream.py`, {_f(s['upstream_latency_ms'], 1)} ms to first "
        f"byte, streams of {s['stream_chunks']} content chunks {_f(s['stream_chunk_interval_ms'], 1)} ms apart; the "
        f"same model name (`{s['model']}`) and byte-identical request bodies through both gateways.",
        f"- Load generators (`benchmarks/loadgen.py`): closed loop by **{g['closed_loop']}**; fixed rate and "
        f"streams by **{g['open_loop']}**. Each point runs direct (no gateway) first, then both gateways "
        "back to back (their order alternates from point to point).",
    ]
    return lines


def _checks_lines(res: dict[str, Any]) -> list[str]:
    out = ["## Checks before and after timing", ""]
    for key in ("switchboard", "litellm"):
        c = (res.get("checks") or {}).get(key)
        if not c:
            continue
        out.append(f"- {NAMES[key]}: answer identical to the mock's (content and usage) "
                   f"{'yes' if c['plain']['content_matches_mock'] else 'NO'}, the mock saw "
                   f"{c['plain']['upstream_calls']} call(s) for it; a stream arrived whole "
                   f"({c['stream']['content_chunks']} content chunks, ends with `[DONE]`: "
                   f"{'yes' if c['stream']['ends_with_done'] else 'NO'}); no key → HTTP {c['auth']['no_key_status']}, "
                   f"wrong key → HTTP {c['auth']['wrong_key_status']}, "
                   + ("neither reached the mock." if c["auth"]["refused"] else "**not refused**."))
    integ = res.get("integrity")
    if integ:
        out.append(f"- After the run: the mock served {integ['mock_requests']:,} requests for {integ['ok_answers']:,} "
                   f"successful answers (direct and through both gateways, warm-up included): "
                   + ("every answer came from the mock." if integ["every_answer_came_from_the_mock"]
                      else "**fewer requests than answers: something answered without the mock.**"))
    off = res.get("offline")
    if off:
        env = ", ".join(f"`{k}={v}`" for k, v in res["settings"]["litellm_env"].items())
        attempts = off["tripwire_proxy_attempts"]
        remote = {k: v for k, v in off["non_loopback_sockets"].items() if v}
        out.append(f"- Offline: LiteLLM ran with {env}, a clean environment, and HTTP(S)_PROXY pointing at a "
                   "local tripwire that records and refuses every proxied request (loopback exempt). Tripwire: "
                   + (f"**{len(attempts)} attempt(s)**: {', '.join(sorted(set(attempts))[:5])}" if attempts
                      else "no attempt")
                   + "; sockets to non-loopback addresses (sampled after each point): "
                   + (f"**{remote}**" if remote else "none")
                   + "; network errors in LiteLLM's log: "
                   + (f"**{len(off['litellm_log_network_errors'])}** (see compare.json)"
                      if off["litellm_log_network_errors"] else "none") + ".")
    out.append("")
    return out


def markdown(res: dict[str, Any]) -> str:
    sc = res["scenarios"]
    out = [f"# Switchboard vs LiteLLM proxy ({res['profile']} run)", "",
           "Both gateways side by side in one run on one machine, loopback only, in front of the same mock "
           "upstream. Ratios are taken within this run only.", "", *_setup_lines(res), ""]
    rows = res.get("summary") or []
    if rows:
        out += ["## Headline", "", "| metric | Switchboard | LiteLLM | ratio |", "|---|---:|---:|---|"]
        for r in rows:
            digits = 0 if r["unit"] in ("µs", "RPS", "MB") else 2
            sb = f"{_f(r['switchboard'] if r['switchboard'] is None else float(r['switchboard']), digits)} {r['unit']}"
            ll = f"{_f(r['litellm'] if r['litellm'] is None else float(r['litellm']), digits)} {r['unit']}"
            out.append(f"| {r['metric']} | {sb} | {ll} | {_x(r['ratio'])} ({r['ratio_is']}) |")
        out.append("")
    fixed = sc.get("fixed_rate") or []
    if fixed:
        out += ["## 1. Fixed offered load (open loop)", "",
                "Latency in ms, timed from the moment each request was sent; added = gateway - direct, per "
                "percentile. CPU = utime+stime of the gateway's process tree / requests (± one clock tick "
                "spread over the run's requests, shown when it is more than 5 %).", "",
                "| offered RPS | path | achieved RPS | p50 / p90 / p99 ms | added p50 / p99 ms | CPU µs/req | "
                "generator lag p99 ms | generator |", "|---:|---|---:|---|---|---:|---:|---|"]
        for row in fixed:
            for key in row["order"]:
                r = row[key]
                out.append(f"| {row['offered_rps']} | {NAMES[key]} | {_f(r['rps'], 1)}{_state(row, key)} | "
                           f"{_lat(r['latency_ms'])} | {_added(row, key) if key != 'direct' else ''} | {_cpu(r)} | "
                           f"{_f(_get(r, 'lag_ms', 'p99'))} | {_gen(r)} |")
            q = row["ratios_litellm_over_switchboard"]
            out.append(f"| {row['offered_rps']} | LiteLLM ÷ Switchboard | | p50 {_x(q['latency_p50'])}, p99 "
                       f"{_x(q['latency_p99'])} | p50 {_x(q.get('added_p50'))}, p99 {_x(q.get('added_p99'))} | "
                       f"{_x(q['cpu_per_request'])} | | |")
        out.append("")
    cl = sc.get("closed_loop")
    if cl:
        out += [f"## 2. Closed loop, concurrency {cl['concurrency']}", "",
                "Each connection sends its next request when the previous answer is complete: the throughput one "
                "gateway worker reaches on its CPU (direct: what the mock and the generator reach without a "
                "gateway).", "",
                "| path | RPS | p50 / p90 / p99 ms | CPU µs/req | generator |", "|---|---:|---|---:|---|"]
        for key in cl["order"]:
            r = cl[key]
            out.append(f"| {NAMES[key]} | {_f(r['rps'], 0)} | {_lat(r['latency_ms'])} | {_cpu(r)} | {_gen(r)} |")
        q = cl["ratios_litellm_over_switchboard"]
        out += ["", f"Switchboard ÷ LiteLLM throughput: **{_x(cl['throughput_switchboard_over_litellm'])}**; "
                f"LiteLLM ÷ Switchboard: latency p50 {_x(q['latency_p50'])}, p99 {_x(q['latency_p99'])}, CPU per "
                f"request {_x(q['cpu_per_request'])}.", ""]
    st = sc.get("streaming")
    if st:
        out += [f"## 3. Streams ({st['chunks']} content chunks {_f(st['chunk_interval_ms'], 1)} ms apart, "
                f"{st['offered_rps']} streams/s offered)", "",
                "| path | achieved streams/s | TTFT p50 / p90 / p99 ms | total p50 / p90 / p99 ms | "
                "added TTFT p50 / p99 ms | added total p50 / p99 ms | CPU µs/stream | generator |",
                "|---|---:|---|---|---|---|---:|---|"]
        for key in st["order"]:
            r = st[key]
            out.append(f"| {NAMES[key]} | {_f(r['rps'], 1)}{_state(st, key)} | {_lat(r['ttft_ms'])} | "
                       f"{_lat(r['latency_ms'])} | "
                       f"{_added(st, key, 'added_ttft_ms') if key != 'direct' else ''} | "
                       f"{_added(st, key, 'added_total_ms') if key != 'direct' else ''} | {_cpu(r)} | {_gen(r)} |")
        q = st["ratios_litellm_over_switchboard"]
        out += ["", f"LiteLLM ÷ Switchboard: CPU per stream {_x(q['cpu_per_request'])}, added TTFT p50 "
                f"{_x(q.get('added_ttft_p50'))}, added total p50 {_x(q.get('added_p50'))}.", ""]
    idle, after = res.get("idle") or {}, res.get("memory_after_load") or {}
    if idle:
        out += ["## Memory and start-up", "",
                "| gateway | processes | threads | idle RSS MB | idle PSS MB | CPU while idle | RSS after load MB | "
                "start-up to ready s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for key in ("switchboard", "litellm"):
            i, a = idle[key], after.get(key) or {}
            out.append(f"| {NAMES[key]} | {i['processes']} | {i['threads']} | {_f(i['rss_mb'], 1)} | "
                       f"{_f(i['pss_mb'], 1)} | {_f(i['idle_cpu_pct'], 1)} % over {_f(i['idle_window_s'], 1)} s | "
                       f"{_f(a.get('rss_mb'), 1)} | {_f(i['startup_s'], 1)} |")
        out.append("")
    out += _checks_lines(res)
    out += ["## How to read this", "",
            "- Both gateways are Python and run one worker on the same pinned CPU; neither is tuned beyond its "
            "shipped defaults. The numbers hold for this machine and this mock (an upstream that answers in "
            "microseconds), where the gateway's own cost is all there is to see; with a real model, the "
            "model's seconds dominate latency, and CPU per request decides how many cores a given load needs.",
            "- At these low rates every request wakes an idle CPU, so CPU per request and latency are higher "
            "than at saturation for both gateways (compare the closed loop's CPU per request); that is why the "
            "fixed-rate and closed-loop ratios differ.",
            "- Ratios: for costs (CPU, latency, memory) LiteLLM ÷ Switchboard, for throughput Switchboard ÷ "
            "LiteLLM; above 1 favours Switchboard. A ratio of added latencies is shown only when both are "
            "positive.",
            "- \"did not keep up\": the gateway answered fewer than 95 % of the offered requests per second (or "
            "some failed). \"CPU-bound\": it kept up but used at least 0.9 of its one core, so requests wait for "
            "it and its latency is mostly queueing. Either way that rate is beyond what one worker of it serves "
            "comfortably on this machine.",
            "- While one gateway is measured the other idles on the same CPU; the CPU it used meanwhile is in "
            "compare.json (`other_gateway_cpu_s`), as are the mock's and the generator's CPU per request and "
            "the CPU used by other processes on the machine (`foreign_busy_cores`; runs disturbed by them are "
            "repeated, and marked noisy if they stay disturbed).",
            "- Reproduce: `make bench-compare` (or `make bench-compare-quick`); the logs of all three servers are "
            "in `compare-logs/` beside this file.", ""]
    return "\n".join(out)
