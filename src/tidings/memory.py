"""Holding off Python's cyclic garbage collector during bursts of allocation."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside the block.

    An engine batch makes hundreds of thousands of small objects that all live until the
    batch ends; the collector's passes over them cost about a tenth of the batch and free
    nothing. Reference counting still frees everything as usual; cycles made meanwhile are
    collected once the collector runs again. Nested and thread-safe: the collector comes back
    when the last holder leaves, and only if it was on before the first came.
    """
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
