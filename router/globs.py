"""Shell-style globs (`openai/*`, `docs-*`) compiled once into one matcher: a key's models and tools,
an MCP server's allowed and blocked tools."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable


def matcher(globs: Iterable[str] | None) -> Callable[[str], bool] | None:
    """A test for "matches one of the globs"; None when there are no globs (nothing is restricted)."""
    if globs is None:
        return None
    pattern = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs) or r"(?!)")
    return lambda name: pattern.match(name) is not None
