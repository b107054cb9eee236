"""Per-caller rate limiting: ``[api] rate_limit`` requests per caller and period, counted
in a moving window (the `limits` package, in this process's memory). Over the limit, a
request is answered 429 with ``Retry-After``: the seconds until the oldest request of the
window leaves it."""

from __future__ import annotations

import math
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from nasindex.errors import NasIndexError


class RateLimited(NasIndexError):
    """Too many requests from one caller (429); ``retry_after`` seconds until the next."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, rate: str) -> None:
        self.rate = rate
        self.item = parse(rate)
        self.window = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, caller: str) -> None:
        """Count one request of ``caller``; RateLimited if it is one too many."""
        if self.window.hit(self.item, caller):
            return
        reset = self.window.get_window_stats(self.item, caller).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise RateLimited(f"Too many requests: at most {self.rate.replace('/', ' per ')} "
                          f"per caller. Try again in {wait} s.", wait)
