"""fastem.em.draws: scikit-learn's RandomState.choice without replacement, bit for bit,
in memory that does not grow with the number of items."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastem.em.draws import choice_without_replacement


def assert_same_state(actual, expected):
    assert actual[0] == expected[0]
    assert_array_equal(actual[1], expected[1])
    assert actual[2:] == expected[2:]


@pytest.mark.parametrize("n_items, size, block", [
    (1, 1, 4), (2, 1, 4), (2, 2, 1), (10, 10, 3), (100, 7, 5), (1000, 16, 64),
    (4097, 50, 4096), (4096, 3, 1024), (70_000, 16, 1 << 16), (70_000, 0, 1 << 16),
])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_same_indices_and_end_state_as_randomstate_choice(seed, n_items, size, block):
    expected_state = np.random.RandomState(seed)
    expected = expected_state.choice(n_items, size, replace=False)
    random_state = np.random.RandomState(seed)
    got = choice_without_replacement(random_state, n_items, size, block)
    assert got.dtype == np.int64
    assert_array_equal(got, expected)
    assert_same_state(random_state.get_state(), expected_state.get_state())


def test_continues_a_used_randomstate():
    """The draws follow whatever the RandomState drew before (a restart's draws)."""
    expected_state, random_state = np.random.RandomState(3), np.random.RandomState(3)
    for state in (expected_state, random_state):
        state.uniform(size=7)
        state.randint(1000)
    expected = expected_state.choice(5000, 9, replace=False)
    assert_array_equal(choice_without_replacement(random_state, 5000, 9, 512), expected)
    assert random_state.uniform() == expected_state.uniform()


PEAK_SCRIPT = """
import tracemalloc
import numpy as np
from fastem.em.draws import choice_without_replacement
tracemalloc.start()
choice_without_replacement(np.random.RandomState(0), 1 << 21, 16)
print(tracemalloc.get_traced_memory()[1])
"""


def test_memory_is_a_block_not_the_items():
    """RandomState.choice permutes all the items (8 bytes each); this holds blocks.
    Measured in a fresh process: tracemalloc counts every thread's allocations, and
    this one's background threads read the output of the session's compiling
    processes (tests/background.py; it failed once so, in stop 46)."""
    n_items = 1 << 21  # a permutation: 16 MiB
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    peak = int(result.stdout)
    assert peak < n_items * 8 / 4, f"peak {peak} bytes"


@pytest.mark.parametrize("n_items, size", [(5, 6), (5, -1)])
def test_impossible_sizes_are_refused(n_items, size):
    with pytest.raises(ValueError, match="Cannot take a sample"):
        choice_without_replacement(np.random.RandomState(0), n_items, size)
