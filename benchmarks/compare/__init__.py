"""Switchboard beside LiteLLM's proxy, in one reproducible run: `python -m benchmarks.compare`.

    python -m benchmarks.compare [--quick] [--out benchmarks/results] [--no-pin] [--install-only]

Installs `litellm[proxy]` (pinned, `install.LITELLM_VERSION`) into its own venv `benchmarks/.venv-litellm`
when missing or when the pin changed, starts the mock upstream, Switchboard and LiteLLM (one worker each,
client auth on in both, LiteLLM offline), checks that both really proxy to the mock, then measures:

  1 fixed rate    open loop at rates one LiteLLM worker can serve (25/50/75 RPS; quick 25/50)
  2 closed loop   concurrency 16: throughput, p50/p99
  3 streams       20-chunk streams at 20/s: time to first token and total
  + idle RSS/PSS and start-up time of each gateway's process tree, gateway CPU time per request everywhere

and writes `compare.json` and `compare.md` to --out (logs in `compare-logs/` there). Every subprocess is
stopped at the end, on Ctrl-C and on SIGTERM. See benchmarks/README.md ("Switchboard vs LiteLLM").
"""
