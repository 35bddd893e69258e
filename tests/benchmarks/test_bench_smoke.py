"""The benchmark harness end to end in a tiny bounded run, so it cannot rot unnoticed.

Starts the mock upstream and the router as real subprocesses (`python -m benchmarks.run --smoke`),
sends ~50 requests per scenario straight to the mock and through the router, and checks the
report's shape. Numbers are not judged here: this only proves the pieces still fit together.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the harness reads /proc")
def test_bench_smoke(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"machine", "versions", "settings", "generators", "scenarios", "memory", "targets"} <= results.keys()
    assert results["machine"]["cores"] >= 1

    sc = results["scenarios"]
    for row in sc["closed_loop"]:
        for path in ("direct", "router"):
            assert row[path]["rps"] > 0, row[path]
            assert row[path]["ok"] > 0 and not row[path]["errors"], row[path]
        assert row["rps_ratio"] > 0
        assert row["router"]["router_cpu_s"] >= 0
    for row in sc["fixed_rate"]:
        assert row["router"]["latency_ms"]["p99"] > 0 and row["added_ms"] is not None
    assert sc["streaming"]["router"]["ttft_ms"]["p50"] > 0
    assert sc["streaming"]["direct"]["ok"] > 0 and sc["streaming"]["router"]["ok"] > 0
    assert sc["fallback"]["verified"]["ok"], sc["fallback"]["verified"]
    assert sc["fallback"]["router_fallback"]["ok"] > 0
    redis = sc["redis_cache_accounting"]
    for path in ("direct", "accounting", "cache_hits"):
        assert redis[path]["ok"] > 0 and not redis[path]["errors"], redis[path]
    assert sc["soak"]["rss_samples"] and sc["soak"]["load"]["ok"] > 0
    production = sc["production"]  # scenario 8: auth and Redis accounting on, every request answered
    for row in [*production["fixed_rate"], *production["closed_loop"], production["streaming"]]:
        assert row["router"]["ok"] > 0 and not row["router"]["errors"], row["router"]
    [streams] = sc["many_streams"]  # scenario 7: every stream completed both ways, and was measured
    assert streams["direct"]["completed"] == streams["router"]["completed"] == streams["streams"], streams["errors"]
    assert streams["router"]["ttft_ms"]["p50"] > 0 and streams["router"]["events"] > streams["streams"]
    assert streams["pipe_completed"] == streams["streams"], streams["pipe_errors"]  # the floor relayed them all
    assert results["memory"]["idle"]["rss_mb_per_worker"][0] > 0
    assert {t["target"] for t in results["targets"]} >= {"added latency p50 at 500 RPS offered",
                                                         "idle RSS per worker (max)"}

    markdown = (tmp_path / "results.md").read_text()
    assert "## Targets" in markdown and "| target |" in markdown
    # The harness stopped what it started: the mock upstream and every router process are gone.
    pids = [int(p) for p in re.findall(r"mock upstream ready on :\d+ \(pid (\d+)", proc.stderr)]
    for group in re.findall(r"router ready on :\d+ with \d+ worker\(s\) \(pids \[([\d, ]+)\]\)", proc.stderr):
        pids += [int(p) for p in group.split(",")]
    assert len(pids) >= 2, proc.stderr
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], pids
    assert time.monotonic() - started < 60
