"""Work budgets: how long a piece of work may run and how many pixels it may decode, checked cooperatively.

The service wraps each model call (and each batch job) in a :class:`Budget` made current with :func:`use`;
long loops deep inside (decoding files one by one, predicting chunk by chunk) call :func:`check` between
steps and :func:`charge_pixels` before decoding. When a request times out, the service cancels its budget,
so the worker thread stops at its next step instead of running on for minutes after the client got a 504.

Outside a budget (the command line, training) every call here is free and allows everything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from medai.errors import MedAIError

__all__ = ["Budget", "BudgetExceeded", "charge_pixels", "check", "current", "use"]


class BudgetExceeded(MedAIError):
    """Work went over its time or pixel budget, or was cancelled because its request timed out."""


class Budget:
    """A deadline (seconds from now), pixel limits per file and in total, and a cancel switch.

    ``max_file_pixels``: pixels one 2D image may hold (width x height); ``max_file_voxels``: values one volume
    may hold (3D images, multi-frame files); ``max_total_pixels``: values all images of the work may hold
    together. ``None`` = no limit. Thread-safe.
    """

    def __init__(
        self,
        seconds: float | None = None,
        *,
        max_file_pixels: int | None = None,
        max_file_voxels: int | None = None,
        max_total_pixels: int | None = None,
        what: str = "the request",
    ) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + float(seconds)
        self.max_file_pixels = max_file_pixels
        self.max_file_voxels = max_file_voxels
        self.max_total_pixels = max_total_pixels
        self.what = what
        self.pixels = 0
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check(self) -> None:
        if self._cancelled.is_set():
            raise BudgetExceeded(f"{self.what} was stopped: it ran past its time limit of {self.seconds:g} s")
        if self.deadline is not None and time.monotonic() > self.deadline:
            self._cancelled.set()
            raise BudgetExceeded(f"{self.what} ran past its time limit of {self.seconds:g} s")

    def charge(self, pixels: int, label: str, volume: bool = False) -> None:
        """Count an image of ``pixels`` values (a volume's voxels when ``volume``) before it is decoded;
        :class:`BudgetExceeded` if it is over the per-file limit or would take the total over its limit."""
        self.check()
        limit, unit = (self.max_file_voxels, "voxels") if volume else (self.max_file_pixels, "pixels")
        if limit is not None and pixels > limit:
            raise BudgetExceeded(f"{label}: image holds {pixels:,} {unit}; at most {limit:,} are accepted per file")
        with self._lock:
            total = self.pixels + pixels
            if self.max_total_pixels is not None and total > self.max_total_pixels:
                raise BudgetExceeded(
                    f"{label}: the images of {self.what} hold more than {self.max_total_pixels:,} pixels/voxels "
                    "together; send fewer or smaller images"
                )
            self.pixels = total


_current: ContextVar[Budget | None] = ContextVar("medai_budget", default=None)


def current() -> Budget | None:
    return _current.get()


@contextmanager
def use(budget: Budget | None) -> Iterator[Budget | None]:
    """Make ``budget`` current in this context (threads started through ``run_in_threadpool`` inherit it)."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def check() -> None:
    """Raise :class:`BudgetExceeded` when the current budget has run out or was cancelled (free otherwise)."""
    budget = _current.get()
    if budget is not None:
        budget.check()


def charge_pixels(pixels: int, label: str, volume: bool = False) -> None:
    budget = _current.get()
    if budget is not None:
        budget.charge(int(pixels), label, volume)
