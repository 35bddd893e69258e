"""LiteLLM's proxy in its own virtualenv (`benchmarks/.venv-litellm`, git-ignored), pinned.

Installed with pip from PyPI only when the venv is missing, or when the pinned version (or the Python
that made the venv) changed: then the venv is rebuilt from scratch, so what is measured is always
exactly `litellm[proxy]==LITELLM_VERSION` and its resolved dependencies. A stamp file in the venv
records what was installed, when, how long it took and how big the venv is.

After installing, the venv is audited: a `.pth` file that runs code at every Python start-up (how the
compromised LiteLLM releases of 2026 stole credentials) stops the benchmark unless it is one the
packaging tools themselves ship.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The newest release whose `proxy` extra resolves on PyPI as of 2026-12-04: 1.108.8-1.110.2 pin companion
# packages that are not on PyPI (`litellm-proxy==1.110.x`, `litellm-proxy-extras==0.4.110.post1`/`0.4.113`,
# `litellm-enterprise==0.1.79.post2`), so `pip install 'litellm[proxy]==<those>'` fails. 1.107.x was pulled.
LITELLM_VERSION = "1.108.7"
PACKAGE = f"litellm[proxy]=={LITELLM_VERSION}"
HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv-litellm"
STAMP = VENV / ".bench-installed.json"
INSTALL_TIMEOUT_S = 1200
# .pth files that packaging tools install; anything else that executes code at start-up is refused.
KNOWN_PTH = {"distutils-precedence.pth", "_virtualenv.pth"}


def venv_python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def _python_id() -> str:
    return f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"


def site_packages(venv: Path = VENV) -> Path | None:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    return found[0] if found else None


def installed_version(venv: Path = VENV) -> str | None:
    """The litellm version in the venv, from its dist-info (no interpreter start-up)."""
    sp = site_packages(venv)
    if sp is None:
        return None
    for meta in sp.glob("litellm-*.dist-info/METADATA"):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    return None


def venv_size_mb(venv: Path = VENV) -> float:
    total = 0
    for root, _dirs, files in os.walk(venv):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return round(total / 1024 / 1024, 1)


def audit(venv: Path = VENV) -> list[str]:
    """Unexpected start-up hooks: `.pth` files (other than the packaging tools' own) with an import line."""
    sp = site_packages(venv)
    if sp is None:
        return ["no site-packages in the venv"]
    bad = []
    for pth in sorted(sp.glob("*.pth")):
        if pth.name in KNOWN_PTH or pth.name.startswith("__editable__"):
            continue
        lines = pth.read_text(errors="replace").splitlines()
        if any(line.lstrip().startswith("import") for line in lines):
            bad.append(f"{pth.name} ({pth.stat().st_size} bytes) runs code at every Python start-up")
    return bad


def _read_stamp() -> dict[str, Any] | None:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return None


def ensure(say: Callable[[str], None] = print, force: bool = False) -> dict[str, Any]:
    """Make sure the pinned LiteLLM proxy is installed; returns what is installed (and the install cost)."""
    stamp = _read_stamp()
    have = installed_version()
    litellm_bin = VENV / "bin" / "litellm"
    up_to_date = (not force and stamp is not None and stamp.get("package") == PACKAGE
                  and stamp.get("python") == _python_id() and have == LITELLM_VERSION and litellm_bin.exists())
    if up_to_date:
        problems = audit()
        if problems:
            raise RuntimeError(f"{VENV}: refusing to run LiteLLM: {'; '.join(problems)}")
        return {**stamp, "installed_now": False}
    if VENV.exists():
        reason = ("forced" if force else f"pinned {LITELLM_VERSION}, found {have or 'nothing usable'}"
                  + ("" if not stamp or stamp.get("python") == _python_id() else
                     f", venv made by {stamp.get('python')}"))
        say(f"rebuilding {VENV.name} ({reason})")
        shutil.rmtree(VENV)
    say(f"installing {PACKAGE} into {VENV} from PyPI (takes a few minutes once; later runs reuse it)")
    log = VENV.parent / ".venv-litellm-install.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        steps = ([sys.executable, "-m", "venv", str(VENV)],
                 [str(venv_python()), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                  "--progress-bar", "off", PACKAGE])
        for cmd in steps:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
            if proc.returncode != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"installing LiteLLM failed (exit {proc.returncode}, `{' '.join(cmd)}`); "
                                   f"{log} ends with:\n{tail}")
    seconds = round(time.monotonic() - t0, 1)
    have = installed_version()
    if have != LITELLM_VERSION:
        raise RuntimeError(f"pip installed litellm {have}, expected {LITELLM_VERSION} (see {log})")
    problems = audit()
    if problems:
        raise RuntimeError(f"{VENV}: refusing to run LiteLLM: {'; '.join(problems)}")
    info = {"package": PACKAGE, "version": have, "python": _python_id(),
            "venv": str(VENV.relative_to(HERE.parent.parent)),
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "install_s": seconds,
            "venv_size_mb": venv_size_mb(), "packages": _count_packages()}
    STAMP.write_text(json.dumps(info, indent=2) + "\n")
    shutil.copy(log, VENV / "install.log")
    say(f"installed litellm {have} in {seconds:.0f}s ({info['venv_size_mb']:.0f} MB, {info['packages']} packages)")
    return {**info, "installed_now": True}


def component_versions(venv: Path = VENV) -> dict[str, str | None]:
    """Versions of the pieces that serve LiteLLM's requests (None: not installed; uvicorn then parses
    HTTP with h11, in Python, instead of httptools)."""
    sp = site_packages(venv)
    found: dict[str, str] = {}
    if sp is not None:
        for dist in sp.glob("*.dist-info"):
            name, _, version = dist.name[:-len(".dist-info")].partition("-")
            found[name.lower().replace("_", "-")] = version
    wanted = ("litellm", "uvicorn", "fastapi", "starlette", "pydantic", "httpx", "aiohttp", "openai", "uvloop",
              "orjson", "httptools", "h11")
    return {name: found.get(name) for name in wanted}


def _count_packages() -> int:
    sp = site_packages()
    return len(list(sp.glob("*.dist-info"))) if sp else 0


if __name__ == "__main__":
    print(json.dumps(ensure(lambda m: print(m, file=sys.stderr)), indent=2))
