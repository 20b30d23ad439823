"""Per-key rate limiting: in-process and Redis back-ends behave the same."""

from __future__ import annotations

import threading
import time

import pytest

from medai.errors import MedAIError
from medai.serving.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
)


def test_memory_limiter_allows_n_then_denies_then_resets():
    now = [100.0]
    limiter = MemoryRateLimiter(3, 10.0, clock=lambda: now[0])
    assert [limiter.hit("k1").allowed for _ in range(3)] == [True, True, True]
    now[0] += 4
    allowed, retry_after = limiter.hit("k1")
    assert not allowed and retry_after == pytest.approx(6.0)
    assert limiter.hit("k2") == (True, 0.0)  # keys are independent
    now[0] += 6
    assert limiter.hit("k1") == (True, 0.0)  # new window
    limiter.reset("k1")
    assert all(limiter.hit("k1").allowed for _ in range(3))
    assert not limiter.hit("k1").allowed


def test_memory_limiter_forgets_old_windows():
    now = [0.0]
    limiter = MemoryRateLimiter(1, 1.0, clock=lambda: now[0])
    for i in range(1000):
        limiter.hit(f"key{i}")
    now[0] += 2
    limiter.hit("other")
    assert len(limiter._windows) == 1


def test_memory_limiter_is_thread_safe():
    limiter = MemoryRateLimiter(500, 60.0)
    allowed = []

    def worker():
        allowed.extend(limiter.hit("k").allowed for _ in range(200))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 500


@pytest.mark.parametrize(("limit", "window"), [(0, 1), (-1, 1), (1.5, 1), (1, 0), (1, -2), (True, 1)])
def test_bad_settings(limit, window):
    with pytest.raises(MedAIError):
        RateLimiter.from_url(None, limit, window)


def test_from_url_picks_backend(redis_url, redis_prefix):
    assert isinstance(RateLimiter.from_url(None, 5, 1), MemoryRateLimiter)
    limiter = RateLimiter.from_url(redis_url, 5, 1, prefix=redis_prefix)
    assert isinstance(limiter, RedisRateLimiter)
    limiter.close()


def test_redis_limiter_allows_n_then_denies_then_resets(redis_url, redis_prefix):
    limiter = RateLimiter.from_url(redis_url, 3, 2.0, prefix=redis_prefix)  # wide enough for a loaded CI machine
    try:
        assert [limiter.hit("k1").allowed for _ in range(3)] == [True, True, True]
        allowed, retry_after = limiter.hit("k1")
        assert not allowed and 0 < retry_after <= 2.0
        assert limiter.hit("k2").allowed
        time.sleep(retry_after + 0.05)
        assert limiter.hit("k1") == (True, 0.0)
        limiter.reset("k1")
        assert all(limiter.hit("k1").allowed for _ in range(3))
        assert not limiter.hit("k1").allowed
    finally:
        limiter.close()


def test_redis_limiter_is_shared_between_workers(redis_url, redis_prefix):
    workers = [RateLimiter.from_url(redis_url, 50, 30, prefix=redis_prefix) for _ in range(4)]
    allowed = []
    lock = threading.Lock()

    def run(limiter):
        results = [limiter.hit("shared").allowed for _ in range(30)]
        with lock:
            allowed.extend(results)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 50 and len(allowed) == 120
    denied = workers[0].hit("shared")
    assert not denied.allowed and 0 < denied.retry_after_s <= 30
    for limiter in workers:
        limiter.close()


def test_redis_unreachable():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 1, 1, socket_timeout_s=0.5)
    with pytest.raises(RateLimiterUnavailable, match="unreachable"):
        limiter.hit("k")
    open_limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 1, 1, fail_open=True, socket_timeout_s=0.5)
    assert open_limiter.hit("k") == (True, 0.0)
