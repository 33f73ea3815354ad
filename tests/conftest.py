"""Shared test configuration: the ``--full-size`` option and the background processes.

Background processes
--------------------
Some tests check what a fresh Python process does with an empty numba cache: compile
the block kernels for another CPU (tests/test_kernels_asm.py), compile into an absent
cache directory or with no cache at all (tests/test_reproducibility.py), say that it is
compiling (tests/test_cli.py). Each such process keeps one core busy for 5-15 s, and
this pytest process, compiling and fitting, mostly uses one core too. So a test module
lists those processes in ``BACKGROUND``: functions of a fresh, empty directory that run
the subprocesses and return what the tests check (their assertions stay in the tests).
When the session starts, the ``background`` fixture starts the functions of every
collected module on threads (one per spare core, at least one), in collection order;
a test takes a result with ``background.result(function)``, and a function that has
not started by then runs in the test itself, as it would without this fixture. Only
processes that compile into caches of their own (or compile nothing) belong there: one
sharing this process's cache would compile the same kernels a second time.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--full-size",
        action="store_true",
        default=False,
        help="tests/test_benchmarks.py: the full problems P1-P5 of issue 3 "
        "(default: n_samples / 1000, or / $FASTEM_BENCH_SCALE)",
    )


class Background:
    """The results of functions started on background threads (see the module
    docstring)."""

    def __init__(self, functions, tmp_path_factory):
        self._tmp_path_factory = tmp_path_factory
        self._pool = ThreadPoolExecutor(
            max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="fastem-tests-background"
        )
        self._futures = {
            function: self._pool.submit(function, self._directory(function))
            for function in functions
        }

    def _directory(self, function):
        name = getattr(function, "__name__", None) or function.func.__name__  # a partial
        return self._tmp_path_factory.mktemp(name.strip("_"))

    def result(self, function):
        """``function(directory)``, from the background thread, or run here if it has
        not started (or was never listed in a ``BACKGROUND``)."""
        future = self._futures.get(function)
        if future is None or future.cancel():
            return function(self._directory(function))
        return future.result()

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory):
    """The ``BACKGROUND`` functions of the collected test modules, started at once."""
    modules = dict.fromkeys(
        module for item in request.session.items
        if (module := getattr(item, "module", None)) is not None
    )
    functions = [function for module in modules
                 for function in getattr(module, "BACKGROUND", ())]
    started = Background(functions, tmp_path_factory)
    yield started
    started.close()
