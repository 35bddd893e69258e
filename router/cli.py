"""`switchboard serve` and `switchboard check` (also `python -m router`)."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, LoadedConfig, load_config


def _load(path: str) -> LoadedConfig:
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(1) from None
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return loaded


def _check(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    from .routing import RoutingTable

    table = RoutingTable(loaded)
    print(f"{args.config}: ok")
    for name, rt in table.runtimes.items():
        print(f"provider {name}: type {rt.provider.settings.type}, {rt.provider.base_url or 'in-process'}, "
              f"{len(rt.keys)} key(s)")
    for name in sorted(table.disabled):
        print(f"provider {name}: disabled")
    for alias, spec in table.aliases.items():
        targets = ", ".join(f"{t.label} (weight {w:g})" for t, w in zip(spec.targets, spec.weights, strict=True))
        fallbacks = " -> ".join(spec.fallbacks) or "none"
        print(f"model {alias}: targets {targets or 'none enabled'}; fallbacks {fallbacks}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    server = loaded.config.server
    from .serve import serve

    serve(loaded, args.host or server.host, args.port if args.port is not None else server.port,
          args.workers or server.workers)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description="A lean LLM router.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    check = sub.add_parser("check", help="validate a config and print the resolved routes")
    check.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return _check(args) if args.command == "check" else _serve(args)


if __name__ == "__main__":
    sys.exit(main())
