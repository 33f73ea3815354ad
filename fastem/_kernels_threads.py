"""Thread count for the compiled kernels, set per call and always restored.

The kernels are compiled with ``nogil=True``, so fits running in several
Python threads run their kernels at the same time. numba's 'tbb' and 'omp'
threading layers accept parallel launches from several threads at once; its
fallback 'workqueue' layer does not (it aborts the process), so when that is
the layer in use -- or before the first launch, when numba has not chosen
one yet -- kernel sections are serialised by a lock.
"""

import threading
from contextlib import contextmanager

import numba

_SERIAL = threading.Lock()


def _layer_is_threadsafe():
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel launch yet: the layer is not known
        return False


@contextmanager
def thread_limit(n_threads):
    """Run the block with numba's thread count set to ``n_threads`` (None: unchanged).

    numba's setting is per calling thread, so concurrent fits in a thread
    pool do not disturb each other; it is restored even if the block raises.
    """
    with _serialised_unless_threadsafe():
        if n_threads is None:
            yield
            return
        previous = numba.get_num_threads()
        numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


@contextmanager
def _serialised_unless_threadsafe():
    if _layer_is_threadsafe():
        yield
        return
    with _SERIAL:
        yield
