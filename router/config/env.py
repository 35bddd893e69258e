"""`${VAR}` and `${VAR:-default}` expansion in loaded YAML values (strings only, never keys)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """Return `value` with every `${VAR}` / `${VAR:-default}` in its strings replaced.

    An unset variable without a default becomes the empty string, so a provider whose key is
    unset is disabled with a warning instead of failing the whole config.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, str):
        if "${" not in value:
            return value
        return _REF.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: expand(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env) for v in value]
    return value
