"""Fresh processes that tests wait for, started in the background with the session.

Some tests check what a fresh Python process does with an empty numba cache: compile
the block kernels for another CPU (tests/test_kernels_asm.py), compile into an absent
cache directory or with no cache location at all (tests/test_reproducibility.py), say
that it is compiling (tests/test_cli.py). Each such process keeps one core busy for
5-15 s, and this pytest process, compiling and fitting, mostly uses one core too. So
such a process is written as a function of a fresh, empty directory that runs it and
returns what the tests check, decorated with :func:`fixture`; a test asks for its
result as a fixture of the same name, and keeps its assertions.

When the session starts, the ``background`` fixture (autouse, see tests/conftest.py)
starts every such function that a selected test asks for (directly or through other
fixtures), in collection order, on threads: one per core beyond the first, at least
one. A function that has not started by the time its test asks runs in the test,
as it would without any of this. Only processes that compile into caches of their own
(or compile nothing) belong here: one sharing this process's cache would compile the
same kernels a second time.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

FUNCTIONS = {}  # fixture name -> function(directory)


def fixture(function):
    """A session fixture named after ``function``, whose value is
    ``function(directory)`` for a fresh empty directory, computed in the background."""
    name = function.__name__
    if FUNCTIONS.setdefault(name, function) is not function:
        raise ValueError(f"two background fixtures named {name!r}")

    @pytest.fixture(scope="session", name=name)
    def result(background):
        return background.result(function)

    return result


class Background:
    """Functions of :data:`FUNCTIONS`, started on background threads."""

    def __init__(self, names, tmp_path_factory):
        self._tmp_path_factory = tmp_path_factory
        self._pool = ThreadPoolExecutor(max(1, (os.cpu_count() or 2) - 1),
                                        thread_name_prefix="fastem-tests-background")
        self._futures = {
            name: self._pool.submit(FUNCTIONS[name], tmp_path_factory.mktemp(name))
            for name in names
        }

    def result(self, function):
        """``function(directory)``: from the background thread, or computed here if it
        has not started."""
        future = self._futures.get(function.__name__)
        if future is None or future.cancel():
            return function(self._tmp_path_factory.mktemp(function.__name__))
        return future.result()

    def quiet(self):
        """Wait until no background function runs (each started one has finished,
        each other is cancelled and runs in its test): for a test that measures this
        process's memory, which the background threads allocate in too."""
        for future in self._futures.values():
            if not future.cancel():
                future.exception()  # waits; the test that asks for it sees any error

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def background(request, tmp_path_factory):
    """Starts the background fixtures that the selected tests ask for."""
    names = dict.fromkeys(
        name for item in request.session.items
        for name in getattr(item, "fixturenames", ()) if name in FUNCTIONS
    )
    started = Background(names, tmp_path_factory)
    yield started
    started.close()
