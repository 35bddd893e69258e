"""`python -m benchmarks.compare`: see the package docstring."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from . import __doc__ as DOC
from . import harness, install
from . import report as compare_report

HERE = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=DOC.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short points (5 s), rates 25 and 50: ~2 minutes")
    ap.add_argument("--smoke", action="store_true", help="a tiny run that checks the set-up (numbers mean little)")
    ap.add_argument("--out", default=str(HERE / "results"), help="directory for compare.json and compare.md")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the gateways and the client to separate CPUs")
    ap.add_argument("--patience", type=float, metavar="SECONDS",
                    help="time budget for waiting out other processes and repeating runs they disturbed "
                         "(default: 150 full, 30 quick)")
    ap.add_argument("--install-only", action="store_true", help="install (or check) LiteLLM's venv and stop")
    ap.add_argument("--reinstall", action="store_true", help="rebuild LiteLLM's venv even if it is up to date")
    args = ap.parse_args(argv)
    profile = harness.PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    out = Path(args.out).resolve()  # the servers run in other directories
    logs = out / "compare-logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("mock_upstream.log", "router_w1.log", "litellm.log"):  # this run's logs only (scanned below)
        (logs / name).unlink(missing_ok=True)
    t0 = time.monotonic()

    def say(message: str) -> None:
        elapsed = int(time.monotonic() - t0)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", file=sys.stderr, flush=True)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        info = install.ensure(say, force=args.reinstall)
    except (RuntimeError, OSError, TimeoutError) as exc:
        say(f"LiteLLM could not be installed: {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted while installing LiteLLM (the venv is rebuilt on the next run)")
        return 130
    if not info["installed_now"]:
        say(f"LiteLLM {info['version']} already installed in {info['venv']} ({info.get('venv_size_mb', 0):.0f} MB)")
    if args.install_only:
        print(json.dumps(info, indent=2))
        return 0
    bench = harness.CompareBench(
        profile.bench_profile(), logs, upstream_latency_ms=0.0, chunks=20, chunk_interval_ms=1.0,
        pin=not args.no_pin, patience_s=profile.patience_s if args.patience is None else max(0.0, args.patience),
        die_with_harness=True, cprofile=profile)
    bench.t0 = t0
    try:
        results = bench.compare(info)
    except KeyboardInterrupt:
        bench.say("interrupted: stopping the mock upstream and both gateways")
        return 130
    except RuntimeError as exc:
        bench.say(f"FAILED: {exc}")
        return 1
    finally:
        bench.stop_all()
    (out / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = compare_report.markdown(results)
    (out / "compare.md").write_text(markdown)
    bench.say(f"wrote compare.json and compare.md to {out} (server logs in {logs})")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
