"""Request coalescing: concurrent identical misses make one upstream call.

When N identical requests miss at once, the first (the leader) goes upstream and the others (the
followers) wait for it and are served its result. This is per process: workers and instances do
not coordinate (that would need a distributed lock and a waiting protocol, and a lost lock would
stall requests); at worst each process makes one call, and later ones hit the shared cache.

Failure rules, so that coalescing can only ever save calls:
- if the leader fails, is cancelled or produces nothing shareable (an error response, a partial
  stream), followers are released with nothing and make their own calls - they never hang and never
  receive someone else's error;
- a follower cancelled while waiting leaves the leader and the other followers untouched;
- `wait_s` bounds how long a follower waits before going on its own.

The shared value is handed to every follower as is: share immutable values (a `CachedResponse`,
whose serving helpers never mutate it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "key", "published", "value")

    def __init__(self, key: str) -> None:
        self.key = key
        self.done = asyncio.Event()
        self.published = False
        self.value: T | None = None


class Slot(Generic[T]):
    """One request's place in a flight.

    Leader (`leader` True): do the work, then `publish(value)` if it may be shared.
    Follower: `shared` says whether the leader published; if so `value` is the result, otherwise
    do the work yourself.
    """

    __slots__ = ("_flight", "_owner", "leader", "shared", "value")

    def __init__(self, owner: SingleFlight[T], flight: _Flight[T], leader: bool) -> None:
        self._owner = owner
        self._flight = flight
        self.leader = leader
        self.shared = not leader and flight.published
        self.value: T | None = flight.value if self.shared else None

    def publish(self, value: T) -> None:
        """Leader only: release the followers with `value` (at most once; later calls are ignored)."""
        if not self.leader or self._flight.done.is_set():
            return
        self._flight.value = value
        self._flight.published = True
        self._owner._finish(self._flight)


class SingleFlight(Generic[T]):
    """Per-process coalescing of concurrent work by key."""

    def __init__(self, wait_s: float | None = None) -> None:
        self.wait_s = wait_s
        self._flights: dict[str, _Flight[T]] = {}
        self.led = 0  # flights started
        self.shared = 0  # followers served a leader's result
        self.released = 0  # followers that had to do their own work (leader failed, nothing shared, timeout)

    def __len__(self) -> int:
        return len(self._flights)

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[Slot[T]]:
        """Join the flight for `key`: lead it if there is none, else wait for its leader."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(key)
            self._flights[key] = flight
            self.led += 1
            try:
                yield Slot(self, flight, leader=True)
            finally:
                self._finish(flight)  # releases followers with nothing if the leader did not publish
            return
        await self._wait(flight)
        slot = Slot(self, flight, leader=False)
        if slot.shared:
            self.shared += 1
        else:
            self.released += 1
        yield slot

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """`await work()` once for all concurrent callers with this key; each failure stays with its caller."""
        async with self.slot(key) as slot:
            if slot.shared:
                return slot.value  # type: ignore[return-value]
            value = await work()
            slot.publish(value)
            return value

    async def _wait(self, flight: _Flight[T]) -> None:
        if self.wait_s is None:
            await flight.done.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.wait_s):
                await flight.done.wait()

    def _finish(self, flight: _Flight[T]) -> None:
        """End a flight: later arrivals start a new one (and normally hit the cache first)."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        flight.done.set()
