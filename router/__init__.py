"""Switchboard, the gateway (see README.md)."""

__version__ = "0.1.0"  # the version the OpenAPI document and /mcp announce (as in pyproject.toml)
