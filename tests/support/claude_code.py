"""Running the real Claude Code CLI (`claude -p`, pinned in tests/faces/claude_code/package-lock.json).

The CLI is a native binary that npm installs through an optional dependency; `npm ci` runs once when
`node_modules` is missing, and the tests skip only when `node` is not installed. Each run gets a
throwaway HOME and an environment holding nothing but PATH and the Anthropic settings, so nothing
from the developer's own Claude Code setup (login, settings, keys) leaks in, and the CLI makes no
calls beyond the base URL it is given. The server under test serves from the same event loop, so the
CLI runs as an asyncio subprocess.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from support.npm_cli import installed, run

PACKAGE = Path(__file__).resolve().parents[1] / "faces" / "claude_code"
BINARY = PACKAGE / "node_modules" / ".bin" / "claude"


@dataclass
class ClaudeRun:
    """What one `claude -p` run left behind; `result` is the last JSON object printed on stdout."""

    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None


def claude_binary() -> Path:
    """The `claude` executable, installed with `npm ci` from the lockfile on first use."""
    return installed(PACKAGE, BINARY, "Claude Code")


def claude_env(home: Path, base_url: str, api_key: str, model: str, auth: str = "x-api-key",
               extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: PATH, a private HOME, the gateway's address and key, every model alias set to
    `model` (the CLI picks a "haiku" model for side requests), and no telemetry, updates or error reports."""
    if auth not in ("x-api-key", "bearer"):
        raise ValueError(f"auth must be 'x-api-key' or 'bearer', not {auth!r}")
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url.rstrip("/"),
        "ANTHROPIC_AUTH_TOKEN" if auth == "bearer" else "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    env.update(extra_env or {})
    return env


def last_json(stdout: str) -> dict[str, Any] | None:
    """The last line of `stdout` that parses as a JSON object (`--output-format json` prints one)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(line)
                if isinstance(value, dict):
                    return value
    return None


async def run_claude(base_url: str, api_key: str, prompt: str, *, cwd: Path, model: str,
                     allowed_tools: list[str] | None = None, auth: str = "x-api-key", timeout: float = 120,
                     extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> ClaudeRun:
    """Run `claude -p <prompt> --output-format json` in `cwd` against `base_url` (the gateway's root, no /v1).

    The CLI gets its own process group so that, on timeout or cancellation, it and anything it started
    (shell commands, ripgrep) are killed; a timeout raises TimeoutError carrying what it printed so far.
    """
    binary = claude_binary()
    args = [str(binary), "-p", prompt, "--output-format", "json"]
    if allowed_tools:
        args += ["--allowedTools", *allowed_tools]
    args += extra_args or []
    with tempfile.TemporaryDirectory(prefix="claude-home-") as home:
        env = claude_env(Path(home), base_url, api_key, model, auth, extra_env)
        returncode, stdout, stderr = await run(args, cwd=cwd, env=env, timeout=timeout, what="claude")
    return ClaudeRun(returncode, stdout, stderr, last_json(stdout))
