"""Running the real OpenAI Codex CLI (`codex exec`, pinned in tests/faces/codex/package-lock.json).

The CLI is a native binary that npm installs through an optional dependency; `npm ci` runs once when
`node_modules` is missing, and the tests skip only when `node` is not installed. Each run gets a
throwaway HOME and CODEX_HOME whose `config.toml` names the gateway as the only model provider, and an
environment holding nothing but PATH and the key, so nothing from the developer's own Codex setup
(login, config, sessions) leaks in and the CLI calls nothing but the base URL it is given. The server
under test serves from the same event loop, so the CLI runs as an asyncio subprocess.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.npm_cli import installed, run

PACKAGE = Path(__file__).resolve().parents[1] / "faces" / "codex"
BINARY = PACKAGE / "node_modules" / ".bin" / "codex"
API_KEY_ENV = "SWITCHBOARD_API_KEY"


@dataclass
class CodexRun:
    """What one `codex exec` run left behind; `last_message` is the agent's final answer (None if it wrote none)."""

    returncode: int
    stdout: str
    stderr: str
    last_message: str | None


def codex_binary() -> Path:
    """The `codex` executable, installed with `npm ci` from the lockfile on first use."""
    return installed(PACKAGE, BINARY, "Codex")


def _toml(value: str) -> str:
    """A TOML basic string (JSON string escaping is valid TOML for the values used here)."""
    return json.dumps(value)


def codex_config(base_url: str, model: str) -> str:
    """`config.toml` for a run: the gateway as the only provider, no retries (a failure shows at once), no
    approval prompts (exec has nobody to ask), a read-only sandbox, and no update checks or analytics."""
    return "\n".join([
        f"model = {_toml(model)}",
        'model_provider = "switchboard"',
        'approval_policy = "never"',
        'sandbox_mode = "read-only"',
        "check_for_update_on_startup = false",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[model_providers.switchboard]",
        'name = "Switchboard"',
        f"base_url = {_toml(base_url.rstrip('/') + '/v1')}",
        f"env_key = {_toml(API_KEY_ENV)}",
        'wire_api = "responses"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
        "",
    ])


def codex_env(home: Path, codex_home: Path, api_key: str,
              extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: PATH, a private HOME and CODEX_HOME, and the gateway's key."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        API_KEY_ENV: api_key,
    }
    env.update(extra_env or {})
    return env


async def run_codex(base_url: str, api_key: str, prompt: str, *, cwd: Path, model: str, timeout: float = 120,
                    extra_env: dict[str, str] | None = None) -> CodexRun:
    """Run `codex exec <prompt>` in `cwd` against `base_url` (the gateway's root, no /v1).

    The CLI gets its own process group so that, on timeout or cancellation, it and anything it started
    (shell commands) are killed; a timeout raises TimeoutError carrying what it printed so far. Keep
    `timeout` short when the server may be down: Codex keeps retrying a refused connection indefinitely.
    """
    binary = codex_binary()
    with tempfile.TemporaryDirectory(prefix="codex-home-") as tmp:
        home, codex_home = Path(tmp) / "home", Path(tmp) / "codex"
        home.mkdir()
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(codex_config(base_url, model))
        last = Path(tmp) / "last.txt"
        # --strict-config: a key this version does not know fails the run instead of being silently ignored.
        args = [str(binary), "exec", "--strict-config", "--skip-git-repo-check", "--sandbox", "read-only",
                "--color", "never", "--ephemeral", "-o", str(last), prompt]
        returncode, stdout, stderr = await run(args, cwd=cwd, env=codex_env(home, codex_home, api_key, extra_env),
                                               timeout=timeout, what="codex")
        last_message = last.read_text() if last.exists() else None
    return CodexRun(returncode, stdout, stderr, last_message)
