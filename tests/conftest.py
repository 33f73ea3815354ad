"""The ``--full-size`` option; the ``background`` fixture: fresh processes with
empty numba caches that tests wait for start when the session starts (see
tests/background.py), and those tests run last; one BLAS thread for the ordinary
test run; a recorder of the threads the block kernels run on."""

import pytest
from background import background  # noqa: F401  (tests/background.py)


def pytest_addoption(parser):
    parser.addoption(
        "--full-size",
        action="store_true",
        default=False,
        help="tests/test_benchmarks.py: the full problems P1-P5 of issue 3 "
        "(default: n_samples / 1000, or / $FASTEM_BENCH_SCALE)",
    )


def pytest_collection_modifyitems(session, config, items):
    """The tests that wait for a background process (tests/background.py) run last,
    in their collection order, so that their processes, started with the session
    in that order on the core this process leaves idle, have finished by then: in
    file order this process waited for them (a clean-clone CI run at a526ad7 on a
    2-core Xeon spent 32 s in the setup of the AVX2 build's oracle tests and 16 s in
    that of the CLI's first-compile messages), while the background queue is shorter
    than the rest of the run."""
    from background import FUNCTIONS

    def waits(item):
        return any(name in FUNCTIONS for name in getattr(item, "fixturenames", ()))

    items[:] = ([item for item in items if not waits(item)]
                + [item for item in items if waits(item)])


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread(request):
    """OpenBLAS gets one thread in the test run (not in a timed benchmark run,
    ``--benchmark-enable``, which keeps the default). The oracle (scipy's
    ``multivariate_normal`` takes an eigendecomposition per component) and
    scikit-learn make many BLAS calls on small matrices, where OpenBLAS's second
    thread only adds waiting: on a 2-core machine whose other core runs the
    background processes, ``reference.e_step`` of 300 rows, 32 components of 64
    features took 0.25 s with two threads and 0.01 s with one. fastem's kernels
    have threads of their own and do not use BLAS."""
    session = getattr(request.config, "_benchmarksession", None)  # pytest-benchmark's
    if session is None or not session.disabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


class BlockThreadsSpy:
    """Records how many threads ``fastem.kernels.threads.run_blocks`` really used.

    Installed in place of ``run_blocks`` in every fastem module that imported it
    (the fixture ``block_threads``), it calls the real ``run_blocks`` with the
    kernel wrapped so that each call of a block range records the thread that
    ran it. Every ``run_blocks`` call appends ``(n_blocks, threads used)`` to a
    list of the thread that made the call (concurrent fits each see their own):
    :meth:`take` returns and clears it. A recorder, not a mock: the kernels run
    as they would without it.
    """

    def __init__(self, run_blocks):
        import threading

        self._run_blocks = run_blocks
        self._threading = threading
        self._local = threading.local()

    def __call__(self, kernel, n_blocks, *args):
        used = set()

        def recording_kernel(*kernel_args):
            used.add(self._threading.get_ident())
            return kernel(*kernel_args)

        self._run_blocks(recording_kernel, n_blocks, *args)
        self._calls().append((n_blocks, len(used)))

    def _calls(self):
        if not hasattr(self._local, "calls"):
            self._local.calls = []
        return self._local.calls

    def take(self):
        """``(n_blocks, threads used)`` of this thread's calls since the last take."""
        calls, self._local.calls = self._calls(), []
        return calls

    def assert_used(self, n_threads):
        """Take this thread's calls: each ran on min(n_threads, n_blocks) threads,
        and at least one had blocks enough for all n_threads."""
        calls = self.take()
        assert calls, "the block kernels should have run"
        assert max(n_blocks for n_blocks, _ in calls) >= n_threads, calls
        wrong = [(n_blocks, used) for n_blocks, used in calls
                 if used != min(n_threads, n_blocks)]
        assert not wrong, f"{len(wrong)} of {len(calls)} calls, e.g. {wrong[:3]}"


@pytest.fixture
def block_threads(monkeypatch):
    """A :class:`BlockThreadsSpy` in place of ``run_blocks`` wherever fastem uses it."""
    import sys

    from fastem.kernels import threads

    run_blocks = threads.run_blocks
    spy = BlockThreadsSpy(run_blocks)
    patched = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "fastem" and getattr(module, "run_blocks", None) is (
            run_blocks
        ):
            monkeypatch.setattr(module, "run_blocks", spy)
            patched.append(name)
    assert {"fastem.kernels.estep", "fastem.em.sources"} <= set(patched), patched
    return spy
