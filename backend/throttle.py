"""Throttling of failed attempts (login, codes) per account and per address.

Uses the ``limits`` library: memory storage in one process, Redis when several workers share the load.
Only failures are counted; a success clears the account's counter.
"""
from __future__ import annotations

import time

from limits import parse, storage, strategies

from backend.errors import TooManyAttempts


class Throttle:
    def __init__(self, storage_uri: str, per_account: str, per_address: str) -> None:
        self._storage = storage.storage_from_string(storage_uri)
        self._limiter = strategies.MovingWindowRateLimiter(self._storage)
        self._limits = {"account": parse(per_account), "address": parse(per_address)}

    def check(self, **keys: str | None) -> None:
        """Raise 429 with Retry-After when any of the keys (account=…, address=…) is exhausted."""
        for scope, key in keys.items():
            if key is None:
                continue
            item = self._limits[scope]
            if not self._limiter.test(item, scope, key):
                stats = self._limiter.get_window_stats(item, scope, key)
                raise TooManyAttempts(retry_after=int(stats.reset_time - time.time()) + 1)

    def fail(self, **keys: str | None) -> None:
        for scope, key in keys.items():
            if key is not None:
                self._limiter.hit(self._limits[scope], scope, key)

    def clear(self, **keys: str | None) -> None:
        for scope, key in keys.items():
            if key is not None:
                self._limiter.clear(self._limits[scope], scope, key)

    def reset_all(self) -> None:
        self._storage.reset()
