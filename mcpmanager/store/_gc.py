"""Hold off Python's cyclic garbage collector while a listing builds its records.

Listing 10,000 versions allocates 10,000 records that survive the call, so
the collector runs over a dozen times inside it, the older generations too,
and finds nothing: records hold only strings, ints and datetimes, so they
cannot form cycles. Pausing it for the few milliseconds of the build, then
letting it run as usual, saved a sixth of the call on SQLite and a quarter on
PostgreSQL (benchmarks/bench_store.py). Reference counting still frees
everything as usual meanwhile.

The switch is process-wide: overlapping pauses from several threads share one
(the last to leave switches the collector back on), and a collector that was
off before the first pause stays off. An application that switches the
collector off *during* a pause finds it on again afterwards.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused"]

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def paused() -> Iterator[None]:
    """Keep the cyclic collector off for the block (if it was on), then restore it."""
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
