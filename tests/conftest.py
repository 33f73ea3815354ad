"""The ``--full-size`` option; the ``background`` fixture: fresh processes with
empty numba caches that tests wait for start when the session starts (see
tests/background.py); and one BLAS thread for the ordinary test run."""

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
