"""Per-key rate limiting: at most ``limit`` requests per ``window_s`` seconds for each API key.

Fixed windows that start at a key's first request: the first request opens a window of ``window_s``
seconds, requests up to ``limit`` inside it are allowed, later ones are denied with ``retry_after_s``
= the time left in the window; when it runs out the count starts again. (At a window boundary a key
can get up to ``2 * limit`` requests within ``window_s``; that is the accepted price of O(1) state.)

Two back-ends with the same behaviour:

- :class:`MemoryRateLimiter`: in-process, for a single worker (and tests).
- :class:`RedisRateLimiter`: shared by every worker through Redis; one atomic Lua script per claim
  (``INCRBY``; ``PEXPIRE`` on the first claim; ``PTTL``), so concurrent workers never lose counts and a
  window can never be left without an expiry. A Redis round trip costs a served request about 0.2 ms of
  CPU and 0.3 ms of blocked event loop, as much as the rest of a small prediction, so a worker claims a
  *lease* of ``limit // 64`` requests at a time (1, i.e. exact counting, for limits under 128) and counts
  it down locally until the window ends; a key found over its limit is denied locally until its window
  ends. No more than ``limit`` requests are ever allowed in a window; what leases leave unused when a window
  ends (at most one lease per worker, under 2% of the limit each) is not allowed to anyone.

``RateLimiter.from_url(redis_url or None, limit, window_s)`` picks one. If Redis cannot be reached,
``hit`` raises :class:`RateLimiterUnavailable` (the service answers 503) unless ``fail_open=True``,
which logs a warning and lets the request through.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

from medai.errors import MedAIError

__all__ = [
    "MemoryRateLimiter",
    "RateLimitResult",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
]

log = logging.getLogger(__name__)


class RateLimitResult(NamedTuple):
    """``allowed`` and, when denied, ``retry_after_s`` (seconds until the window resets; 0.0 when allowed)."""

    allowed: bool
    retry_after_s: float


class RateLimiterUnavailable(RuntimeError):
    """The shared rate-limit store (Redis) could not be reached."""


class RateLimiter(ABC):
    """``limit`` requests per ``window_s`` seconds per key."""

    def __init__(self, limit: int, window_s: float) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise MedAIError(f"rate limit: expected a positive whole number of requests, got {limit!r}")
        if not isinstance(window_s, int | float) or isinstance(window_s, bool) or not window_s > 0:
            raise MedAIError(f"rate limit window: expected a positive number of seconds, got {window_s!r}")
        self.limit = limit
        self.window_s = float(window_s)

    @staticmethod
    def from_url(
        redis_url: str | None,
        limit: int,
        window_s: float,
        *,
        prefix: str = "medai:ratelimit:",
        fail_open: bool = False,
    ) -> RateLimiter:
        """A Redis-backed limiter when ``redis_url`` is given, else an in-process one."""
        if redis_url:
            return RedisRateLimiter(redis_url, limit, window_s, prefix=prefix, fail_open=fail_open)
        return MemoryRateLimiter(limit, window_s)

    @abstractmethod
    def hit(self, key_id: str) -> RateLimitResult:
        """Count one request for ``key_id``; whether it is allowed and, if not, when to retry."""

    @abstractmethod
    def reset(self, key_id: str) -> None:
        """Forget ``key_id``'s current window."""

    @abstractmethod
    def peek(self, key_id: str) -> RateLimitResult:
        """Whether one more request of ``key_id`` would still be within the limit, without counting one
        (``allowed`` False once ``limit`` hits are in the current window)."""

    def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`RateLimiterUnavailable` when the shared store cannot be reached (no-op in-process)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (no-op for the in-process limiter)."""


class MemoryRateLimiter(RateLimiter):
    """In-process fixed-window limiter (one worker). ``clock`` is injectable for tests."""

    def __init__(self, limit: int, window_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limit, window_s)
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window end, count)
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def hit(self, key_id: str) -> RateLimitResult:
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:  # drop finished windows now and then, so memory stays bounded
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
                self._next_sweep = now + self.window_s
            end, count = self._windows.get(key_id, (0.0, 0))
            if now >= end:
                end, count = now + self.window_s, 0
            count += 1
            self._windows[key_id] = (end, count)
        if count <= self.limit:
            return RateLimitResult(True, 0.0)
        return RateLimitResult(False, max(end - now, 0.0))

    def reset(self, key_id: str) -> None:
        with self._lock:
            self._windows.pop(key_id, None)

    def peek(self, key_id: str) -> RateLimitResult:
        now = self._clock()
        with self._lock:
            end, count = self._windows.get(key_id, (0.0, 0))
        if now >= end or count < self.limit:
            return RateLimitResult(True, 0.0)
        return RateLimitResult(False, max(end - now, 0.0))


_LUA_CLAIM = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


_OVER_LIMIT = -1


class RedisRateLimiter(RateLimiter):
    """Fixed-window limiter shared by all workers through Redis (keys ``<prefix><key_id>``)."""

    def __init__(
        self,
        url: str,
        limit: int,
        window_s: float,
        *,
        prefix: str = "medai:ratelimit:",
        fail_open: bool = False,
        socket_timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(limit, window_s)
        import redis  # the [serve] extra; only needed when a Redis URL is configured

        self._redis_errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._script = self._client.register_script(_LUA_CLAIM)
        self.prefix = prefix
        self.fail_open = fail_open
        self._window_ms = max(1, math.ceil(self.window_s * 1000))
        self.lease_size = max(1, limit // 64)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (end of its window by this worker's clock, requests left in this worker's lease or _OVER_LIMIT)
        self._leases: dict[str, tuple[float, int]] = {}
        # key -> until when a peek that found it within its limit is trusted without asking Redis again
        self.peek_cache_s = min(1.0, self.window_s / 10)
        self._peeked: dict[str, float] = {}

    def hit(self, key_id: str) -> RateLimitResult:
        now = self._clock()
        with self._lock:
            end, left = self._leases.get(key_id, (0.0, 0))
            if now < end and left > 0:
                self._leases[key_id] = (end, left - 1)
                return RateLimitResult(True, 0.0)
            denied = self._denied_locally(key_id, now)
            if denied is not None:
                return denied
        try:
            count, ttl_ms = self._script(keys=[self.prefix + key_id], args=[self._window_ms, self.lease_size])
        except self._redis_errors as exc:
            if self.fail_open:
                log.warning("rate limiter: Redis unreachable, allowing request (%s)", exc)
                return RateLimitResult(True, 0.0)
            raise RateLimiterUnavailable(f"rate limiter: Redis unreachable ({exc})") from None
        ttl_s = max(int(ttl_ms), 0) / 1000.0
        granted = min(self.lease_size, self.limit - (int(count) - self.lease_size))
        with self._lock:
            self._prune(now)
            self._leases[key_id] = (now + ttl_s, granted - 1 if granted > 0 else _OVER_LIMIT)
        return RateLimitResult(True, 0.0) if granted > 0 else RateLimitResult(False, ttl_s)

    def _denied_locally(self, key_id: str, now: float) -> RateLimitResult | None:
        """The denial this worker can give without Redis: the key was found over its limit in this window."""
        end, left = self._leases.get(key_id, (0.0, 0))
        return RateLimitResult(False, end - now) if now < end and left == _OVER_LIMIT else None

    def _prune(self, now: float) -> None:
        """Forget expired entries once there are many (keys and client addresses seen once); under the lock."""
        if len(self._leases) + len(self._peeked) > 100_000:
            self._leases = {k: v for k, v in self._leases.items() if v[0] > now}
            self._peeked = {k: v for k, v in self._peeked.items() if v > now}

    def reset(self, key_id: str) -> None:
        with self._lock:
            self._leases.pop(key_id, None)
            self._peeked.pop(key_id, None)
        try:
            self._client.delete(self.prefix + key_id)
        except self._redis_errors as exc:
            raise RateLimiterUnavailable(f"rate limiter: Redis unreachable ({exc})") from None

    def peek(self, key_id: str) -> RateLimitResult:
        """As the base class says, from this worker's own knowledge where it has it: a key it found over its
        limit is denied until its window ends, and a key Redis showed within its limit less than
        ``peek_cache_s`` ago is allowed without another round trip (the failed-authentication limiter peeks
        on every request; what other workers counted in that time shows at the next :meth:`hit`)."""
        now = self._clock()
        with self._lock:
            denied = self._denied_locally(key_id, now)
            if denied is not None:
                return denied
            if now < self._peeked.get(key_id, 0.0):
                return RateLimitResult(True, 0.0)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(self.prefix + key_id)
            pipe.pttl(self.prefix + key_id)
            count, ttl_ms = pipe.execute()
        except self._redis_errors as exc:
            if self.fail_open:
                return RateLimitResult(True, 0.0)
            raise RateLimiterUnavailable(f"rate limiter: Redis unreachable ({exc})") from None
        if count is None or int(count) < self.limit or int(ttl_ms) <= 0:
            with self._lock:
                self._prune(now)
                self._peeked[key_id] = now + self.peek_cache_s
            return RateLimitResult(True, 0.0)
        with self._lock:
            self._prune(now)
            self._leases[key_id] = (now + int(ttl_ms) / 1000.0, _OVER_LIMIT)
        return RateLimitResult(False, int(ttl_ms) / 1000.0)

    def ping(self) -> None:
        try:
            self._client.ping()
        except self._redis_errors as exc:
            raise RateLimiterUnavailable(f"rate limiter: Redis unreachable ({exc})") from None

    def close(self) -> None:
        self._client.close()
