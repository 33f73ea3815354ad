"""The ``--full-size`` option, and the ``background`` fixture: fresh processes with
empty numba caches that tests wait for start when the session starts (see
tests/background.py)."""

from background import background  # noqa: F401  (tests/background.py)


def pytest_addoption(parser):
    parser.addoption(
        "--full-size",
        action="store_true",
        default=False,
        help="tests/test_benchmarks.py: the full problems P1-P5 of issue 3 "
        "(default: n_samples / 1000, or / $FASTEM_BENCH_SCALE)",
    )
