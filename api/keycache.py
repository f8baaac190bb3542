"""Each worker's short-lived memory of the API keys it has just authenticated.

A scoring request would otherwise spend a database round trip (its own unit of work) on the
key before any work. Only keys that were valid are remembered, by the SHA-256 of the presented
key, for ``ttl`` seconds: a key revoked through this worker stops working at once (the cache is
cleared), one revoked through another worker or replica within ``ttl`` seconds. ``ttl=0`` turns
the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyCache(Generic[T]):
    """``digest -> value`` entries that expire ``ttl`` seconds after they were looked up."""

    def __init__(
        self,
        ttl: float,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._entries: dict[str, tuple[float, T]] = {}

    def get(self, digest: str) -> T | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: str, value: T) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # simpler than LRU; refilling costs one look-up per key
        self._entries[digest] = (self._clock() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()
