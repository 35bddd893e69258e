"""The shipped Grafana dashboard against a real Prometheus scraping a real router under load.

A private `prometheus` (Debian package; `scripts/system-deps.sh` installs it) scrapes a
`switchboard serve --workers 2` subprocess every second while a short, bounded load produces
every series the dashboard charts: successes, streams, embeddings, cache hits, a fallback with a
retry, upstream/caller/auth errors, a 429 and a 402 key, a provider key cool-down, Redis and the
accounting buffer. Then every panel's PromQL (template variables substituted as Grafana would with
"All" selected) is evaluated through Prometheus' HTTP API and must return data. A broken or
misspelt query fails here, so it fails CI. The dashboard is also linted: every panel and target
uses the `${datasource}` variable.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "dashboards" / "switchboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana substitutes, with "All" selected for the multi-value variables (allValue ".*").
VARIABLES = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "1h", "$provider": ".*", "$model": ".*",
             "$key": ".*"}
START_S = 30
WAVES = 3

ROUTER_CONFIG = """\
server: {{extra_fields: true}}
providers:
  demo: {{type: mock, models: [echo, lorem, fail-503], max_retries: 1}}
  bad: {{type: mock, models: [fail-401]}}
models:
  fast: {{targets: [demo/fail-503], fallbacks: [demo/echo]}}
routing:
  retry: {{base_s: 0.001, max_s: 0.002}}
  cooldown: {{failures: 1000}}
redis: {{url: "{redis_url}"}}
cache: {{ttl_s: 600}}
auth:
  keys:
    - {{name: team-a, key: sk-dash-team-a, budget_usd: 10, rpm: 1000, tpm: 1000000}}
    - {{name: tiny, key: sk-dash-tiny, budget_usd: 0.0000001}}
    - {{name: slow-lane, key: sk-dash-slow, rpm: 2}}
pricing:
  demo/echo: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
  demo/lorem: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
"""
PROMETHEUS_CONFIG = """\
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: switchboard
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""


# -- the dashboard file ---------------------------------------------------------------------------
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels") or []))
    return out


def _exprs() -> list[tuple[str, str]]:
    return [(f"{p['title']} [{t['refId']}]", t["expr"]) for p in _panels(_dashboard()["panels"])
            for t in p.get("targets") or ()]


def _substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name]).replace("${" + name[1:] + "}", VARIABLES[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    panels = _panels(dashboard["panels"])
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Traffic & errors", "Latency, overhead & time to first token", "Tokens & cost", "Cache",
                    "Failover", "Budgets & limits", "Redis & accounting buffer"]
    for panel in panels:
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
        for target in panel.get("targets") or ():
            assert target.get("datasource") == DATASOURCE, (panel["title"], target["refId"])
            assert target["expr"].strip(), (panel["title"], target["refId"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


# -- Prometheus -----------------------------------------------------------------------------------
def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:  # try to install it as CI does (root + apt-get), else skip with the reason
        try:
            subprocess.run([str(ROOT / "scripts" / "system-deps.sh")], check=True, timeout=600,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            pass
        found = shutil.which("prometheus")
    if found is None:
        pytest.skip("the `prometheus` binary is not installed and could not be installed "
                    "(Debian: apt-get install prometheus, or run scripts/system-deps.sh as root)")
    return found


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], log: Path, **kw: Any) -> subprocess.Popen:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)  # the router's workers share its process group
                except ProcessLookupError:
                    pass
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


async def _wait_http(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                if resp.status == 200:
                    return
        except (TimeoutError, aiohttp.ClientError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready after {START_S}s:\n" + log.read_text(errors="replace")[-3000:])


async def _query(session: aiohttp.ClientSession, prom: str, expr: str) -> dict[str, Any]:
    async with session.get(f"{prom}/api/v1/query", params={"query": expr},
                           timeout=aiohttp.ClientTimeout(total=10)) as resp:
        body = await resp.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]


def _has_data(data: dict[str, Any]) -> bool:
    """Non-empty, with at least one number that is not NaN (a quantile over nothing is NaN)."""
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(series["value"][1])) for series in data["result"])


# -- the load -------------------------------------------------------------------------------------
def _chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def _post(session: aiohttp.ClientSession, url: str, body: Any, key: str | None,
                expect: set[int]) -> None:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as resp:
        await resp.read()
        assert resp.status in expect, (body, resp.status)


async def _wave(session: aiohttp.ClientSession, base: str, wave: int) -> None:
    chat, emb = base + "/v1/chat/completions", base + "/v1/embeddings"
    team = "sk-dash-team-a"
    requests = [
        (chat, _chat("demo/echo", f"hello dashboard {wave}"), team, {200}),
        (chat, _chat("demo/lorem", f"lorem {wave}", max_tokens=16), team, {200}),
        (chat, _chat("demo/echo", "the same question every wave"), team, {200}),  # a cache hit from wave 2 on
        (chat, _chat("demo/echo", f"stream {wave}", stream=True), team, {200}),
        (chat, _chat("demo/lorem", f"stream lorem {wave}", stream=True, max_tokens=12), team, {200}),
        (emb, {"model": "demo/echo", "input": [f"embed {wave}", "embed"]}, team, {200}),
        (chat, _chat("fast", f"fall back {wave}"), team, {200}),  # fail-503, a retry, then demo/echo
        (chat, _chat("demo/fail-503", f"no fallback {wave}"), team, {502, 503}),
        (chat, _chat("bad/fail-401", f"bad provider key {wave}"), team, {502}),
        (chat, b"{not json", team, {400}),
        (chat, _chat("demo/echo", "who am i"), "sk-wrong", {401}),
        (chat, _chat("demo/echo", f"too poor {wave}"), "sk-dash-tiny", {402}),
    ] + [(chat, _chat("demo/echo", f"slow lane {wave} {i}"), "sk-dash-slow", {200, 429}) for i in range(3)]
    await asyncio.gather(*(_post(session, *r) for r in requests))


async def test_every_panel_query_returns_data(tmp_path: Path, redis_url: str) -> None:
    prometheus = _prometheus_binary()
    router_port, prom_port = free_port(), free_port()
    (tmp_path / "router.yaml").write_text(ROUTER_CONFIG.format(redis_url=redis_url))
    (tmp_path / "prometheus.yml").write_text(PROMETHEUS_CONFIG.format(port=router_port))
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    procs = Procs()
    base, prom = f"http://127.0.0.1:{router_port}", f"http://127.0.0.1:{prom_port}"
    # A new connection per request, so the kernel spreads the load over both workers.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=8)) as session:
        try:
            router = procs.start([sys.executable, "-m", "router", "serve", "--config", str(tmp_path / "router.yaml"),
                                  "--host", "127.0.0.1", "--port", str(router_port), "--workers", "2"],
                                 tmp_path / "router.log", cwd=ROOT, env=env)
            server = procs.start([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                                  f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                  f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                 tmp_path / "prometheus.log")
            await _wait_http(session, base + "/readyz", router, tmp_path / "router.log")
            await _wait_http(session, prom + "/-/ready", server, tmp_path / "prometheus.log")
            deadline = time.monotonic() + START_S  # the first scrape, before any load
            while not (await _query(session, prom, 'up{job="switchboard"} == 1'))["result"]:
                assert time.monotonic() < deadline, "Prometheus never scraped the router"
                await asyncio.sleep(0.2)

            for wave in range(WAVES):  # spread over several scrapes, so every rate() sees increases
                await _wave(session, base, wave)
                await asyncio.sleep(1.3)
            await asyncio.sleep(2.5)  # two more scrapes after the last request

            # The check can fail: a misspelt metric has no data.
            assert not (await _query(session, prom, "sum(rate(switchboard_no_such_metric_total[1m]))"))["result"]
            empty = []
            for where, expr in _exprs():
                data = await _query(session, prom, _substitute(expr))
                if not _has_data(data):
                    empty.append(f"{where}: {_substitute(expr)}")
            assert not empty, "panels without data:\n" + "\n".join(empty)

            for var in _dashboard()["templating"]["list"]:
                if var["type"] != "query":
                    continue
                match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"])
                assert match, var["query"]
                params = {"match[]": _substitute(match.group(1))}
                async with session.get(f"{prom}/api/v1/label/{match.group(2)}/values", params=params) as resp:
                    body = await resp.json()
                assert body["status"] == "success" and body["data"], (var["name"], body)
        finally:
            procs.stop()
    log = (tmp_path / "router.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert "sk-dash" not in log  # the access log names keys, never their secrets
