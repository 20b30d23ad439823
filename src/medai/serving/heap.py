"""Keep the garbage collector's full passes off the request path.

A served process holds millions of long-lived objects (the web framework, scikit-learn, pandas, torch, the
loaded models). CPython's full (generation 2) collection walks all of them: 100-150 ms on the development VM,
during which the event loop answers nothing, so every request in flight waits, and under load these pauses made
the 99th-percentile latency (about 200 ms at 24 connections against 12 ms at the median). Once start-up or a
model load is done, those objects live as long as the process: :func:`settle` collects what start-up left as
garbage and moves the rest to the permanent generation (``gc.freeze``), which later collections skip. Objects
made afterwards are collected as usual. Each settle first unfreezes, so what an evicted model left in reference
cycles is collected then.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then freeze the surviving objects; returns how many objects are now frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
