"""Wrong-type fuzzing of JSON request bodies: every member's path, and a body with one member replaced.

The faces' parsers must answer any member swapped for a value of another type with a 400 naming a
member (or accept it), never an exception: their tests walk every path of a rich request with these.
"""

from __future__ import annotations

import copy
from typing import Any


def paths(value: Any, path: tuple = ()) -> list[tuple]:
    """The path (keys and indices) of every member below `value`, parents before children."""
    out = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += paths(item, (*path, i))
    return out


def replaced(body: Any, path: tuple, new: Any) -> Any:
    """A deep copy of `body` with the member at `path` set to `new`."""
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return body
