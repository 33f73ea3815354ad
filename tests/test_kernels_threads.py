"""The block runner and the per-thread thread count (fastem.kernels.threads)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastem.kernels import threads as _kernels_threads
from fastem.kernels.threads import (
    current_threads,
    max_threads,
    run_blocks,
    thread_limit,
)


def recording_kernel(calls, lock):
    def kernel(marks, first_block, end_block):
        with lock:
            calls.append((first_block, end_block, threading.get_ident()))
        for block in range(first_block, end_block):
            marks[block] += 1
    return kernel


@pytest.mark.parametrize("n_blocks", [0, 1, 2, 3, 7, 64])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 5])
def test_every_block_runs_exactly_once_in_contiguous_ranges(monkeypatch, n_blocks,
                                                            n_threads):
    monkeypatch.setattr(_kernels_threads, "max_threads", lambda: 8)
    calls, lock = [], threading.Lock()
    marks = np.zeros(n_blocks, dtype=np.int64)
    with thread_limit(n_threads):
        run_blocks(recording_kernel(calls, lock), n_blocks, marks)
    np.testing.assert_array_equal(marks, np.ones(n_blocks, dtype=np.int64))
    ranges = sorted((first, end) for first, end, _ in calls)
    assert len(ranges) == max(1, min(n_threads, n_blocks))
    assert ranges[0][0] == 0 and ranges[-1][1] == n_blocks
    assert all(end == next_first for (_, end), (next_first, _) in zip(ranges, ranges[1:]))
    # the calling thread computes the first range itself, and only that one: the
    # others run on the pool's threads
    first_caller = [ident for first, _, ident in calls if first == 0]
    assert first_caller == [threading.get_ident()]
    others = [ident for first, _, ident in calls if first != 0]
    assert threading.get_ident() not in others


def test_ranges_run_at_the_same_time(monkeypatch):
    """Two ranges, two threads: each range's kernel waits for the other to start (a
    barrier), which returns only if they run concurrently (ranges run one after the
    other, on any threads, break the barrier at its timeout)."""
    monkeypatch.setattr(_kernels_threads, "max_threads", lambda: 2)
    barrier = threading.Barrier(2, timeout=10.0)
    started = []

    def kernel(first_block, end_block):
        started.append(first_block)
        barrier.wait()

    with thread_limit(2):
        run_blocks(kernel, 2)
    assert sorted(started) == [0, 1]


def test_thread_count_is_per_thread_and_restored():
    default = current_threads()
    assert default == max_threads()
    seen = {}

    def other():
        seen["other"] = current_threads()

    with thread_limit(1):
        assert current_threads() == 1
        with ThreadPoolExecutor(1) as pool:
            pool.submit(other).result()
        with thread_limit(None):
            assert current_threads() == 1
    assert seen["other"] == default
    assert current_threads() == default
    with pytest.raises(RuntimeError), thread_limit(1):
        raise RuntimeError("inside")
    assert current_threads() == default


def test_thread_count_is_capped_at_numba_setting():
    with thread_limit(10 * max_threads()):
        assert current_threads() == max_threads()


def test_error_in_a_pool_thread_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(_kernels_threads, "max_threads", lambda: 4)

    raised_on = []

    def kernel(first_block, end_block):
        if first_block > 0:
            raised_on.append(threading.get_ident())
            raise ValueError(f"block {first_block} failed")

    with thread_limit(2), pytest.raises(ValueError, match="block 2 failed"):
        run_blocks(kernel, 4)
    assert len(raised_on) == 1 and raised_on[0] != threading.get_ident()
