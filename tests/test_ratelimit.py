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


def _counting_claims(limiter):
    calls = []
    script = limiter._script

    def counted(**kwargs):
        calls.append(kwargs)
        return script(**kwargs)

    limiter._script = counted
    return calls


def test_redis_limiter_leases_requests_so_most_hits_skip_redis(redis_url, redis_prefix):
    workers = [RedisRateLimiter(redis_url, 640, 30, prefix=redis_prefix) for _ in range(2)]
    try:
        assert workers[0].lease_size == 10  # limit // 64
        claims = [_counting_claims(w) for w in workers]
        allowed = [w.hit("busy").allowed for _ in range(400) for w in workers]
        assert sum(allowed) <= 640  # never more than the limit in a window
        assert sum(allowed) >= 640 - 2 * 10  # at most one unused lease per worker is lost
        assert not any(allowed[-40:])  # over the limit now
        assert sum(len(c) for c in claims) < 80  # ~64 claims of 10 plus one denial per worker, not 800
        before = sum(len(c) for c in claims)
        denied = workers[0].hit("busy")
        assert not denied.allowed and 0 < denied.retry_after_s <= 30
        assert sum(len(c) for c in claims) == before  # denied locally until the window ends
    finally:
        for w in workers:
            w.close()


def test_redis_limiter_claims_again_when_its_window_ends(redis_url, redis_prefix):
    now = [1000.0]
    limiter = RedisRateLimiter(redis_url, 3, 0.3, prefix=redis_prefix, clock=lambda: now[0])
    try:
        assert limiter.lease_size == 1  # small limits are counted exactly, one claim per request
        assert [limiter.hit("k").allowed for _ in range(4)] == [True, True, True, False]
        claims = _counting_claims(limiter)
        assert not limiter.hit("k").allowed and not claims  # still in the window: no round trip
        time.sleep(0.35)  # Redis's window expires ...
        now[0] += 0.35  # ... and this worker's clock says so too
        assert limiter.hit("k").allowed and len(claims) == 1
    finally:
        limiter.close()


def test_redis_limiter_peeks_from_what_it_knows(redis_url, redis_prefix):
    now = [50.0]
    a, b = (RedisRateLimiter(redis_url, 3, 10, prefix=redis_prefix, clock=lambda: now[0]) for _ in range(2))
    try:
        assert b.peek("addr").allowed  # asked Redis: nothing counted yet
        trips = []
        pipeline = b._client.pipeline
        b._client.pipeline = lambda **kw: trips.append(1) or pipeline(**kw)
        assert [a.hit("addr").allowed for _ in range(4)] == [True, True, True, False]
        assert not a.peek("addr").allowed  # a found it over the limit itself
        assert b.peek("addr").allowed and not trips  # within peek_cache_s: b has not looked again (stated)
        assert not b.hit("addr").allowed  # but its next hit counts in Redis and is denied ...
        assert not b.peek("addr").allowed and not trips  # ... and from then on b knows, without a round trip
        now[0] += b.peek_cache_s + 0.01
        c = RedisRateLimiter(redis_url, 3, 10, prefix=redis_prefix, clock=lambda: now[0])
        denied = c.peek("addr")  # a worker that saw nothing asks Redis
        assert not denied.allowed and 0 < denied.retry_after_s <= 10
        c.close()
    finally:
        a.close()
        b.close()
