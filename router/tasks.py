"""Stopping a background task for sure.

`task.cancel(); await task` hangs forever when something inside the task swallows the
cancellation (on Python 3.11, `asyncio.wait_for` does when its inner call finishes at the same
moment, and client libraries built on it inherit that): the task then goes on looping. `stop`
cancels again until the task is done, within a bound, so a shutdown never waits on a loop that
missed its cancellation.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("switchboard")


async def stop(task: asyncio.Future | None, timeout_s: float = 5.0) -> None:
    """Cancel `task` and wait for it to end, cancelling again while it runs on (at most `timeout_s`)."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done():
        task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            log.warning("a background task did not stop within %gs: %r", timeout_s, task)
            return
        await asyncio.wait({task}, timeout=min(0.1, left))
    if not task.cancelled():
        task.exception()  # retrieved: an error on the way out is not reported again
