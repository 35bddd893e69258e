"""Switchboard load benchmark: a fast mock OpenAI upstream, a load generator and a report.

Run `python -m benchmarks.run --quick` (see benchmarks/README.md).
"""
