"""Thread count for the compiled kernels, set per call and always restored."""

from contextlib import contextmanager

import numba


@contextmanager
def thread_limit(n_threads):
    """Run the block with numba's thread count set to ``n_threads`` (None: unchanged).

    numba's setting is per calling thread, so concurrent fits in a thread
    pool do not disturb each other; it is restored even if the block raises.
    """
    if n_threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
