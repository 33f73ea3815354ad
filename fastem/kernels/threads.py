"""Threads for the block kernels, and the thread count, set per call and restored.

The block kernels (``*_blocks`` in fastem.kernels.estep) are serial and compiled
with ``nogil=True``: :func:`run_blocks` splits the blocks into one contiguous
range per thread and runs the ranges at the same time, the first on the
calling thread and the others on a shared pool. Every block writes its own
partial results, so who computed which block does not change them.

The thread count is per calling thread (:func:`thread_limit`), so concurrent
fits in a thread pool do not disturb each other; by default it is numba's
configured count (``NUMBA_NUM_THREADS``, the number of CPUs unless set).
numba's own threading layer is not used.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba

_local = threading.local()
_pool_lock = threading.Lock()
_pool = None


def max_threads():
    """The most threads a kernel call may use (numba's NUMBA_NUM_THREADS)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def current_threads():
    """Threads the kernels called from this thread use now."""
    return getattr(_local, "n_threads", None) or max_threads()


@contextmanager
def thread_limit(n_threads):
    """Run the block with the kernels' thread count set to ``n_threads`` (None: unchanged).

    The setting is per calling thread and restored even if the block raises.
    """
    if n_threads is None:
        yield
        return
    previous = getattr(_local, "n_threads", None)
    _local.n_threads = max(1, min(int(n_threads), max_threads()))
    try:
        yield
    finally:
        _local.n_threads = previous


def _shared_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max_threads(),
                                       thread_name_prefix="fastem-blocks")
        return _pool


def run_blocks(kernel, n_blocks, *args):
    """Call ``kernel(*args, first_block, end_block)`` over [0, n_blocks) in
    contiguous ranges, one per thread (current_threads(), at most n_blocks)."""
    n_threads = min(current_threads(), n_blocks)
    if n_threads <= 1:
        kernel(*args, 0, n_blocks)
        return
    bounds = [n_blocks * i // n_threads for i in range(n_threads + 1)]
    pool = _shared_pool()
    futures = [pool.submit(kernel, *args, bounds[i], bounds[i + 1])
               for i in range(1, n_threads)]
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for future in futures:
            future.result()
