"""fastem/kernels/mstep.py: the sums the M-step folds, bit for bit.

The M-step's parameters against the oracle's two-pass M-step are in
tests/test_kernels_estep.py (test_mstep_matches_reference), and the compiled loop
against the kernels called one at a time in tests/test_kernels_loop.py. Here: the
order of the sums that were numba's ``.sum()`` and ``.mean()`` (a left fold from
zero), which the kernels now write as loops so that numba compiles no numpy
function for them. Another order (numpy's pairwise sum, a compensated sum) rounds
differently on these values, so a change of order fails these tests.
"""

import math

import numpy as np
import pytest
from numba import njit

from fastem.kernels import mstep


@pytest.fixture
def rng():
    return np.random.default_rng(20261207)


@njit(cache=False)
def numbas_sum(values):
    return values.sum()


@njit(cache=False)
def sum_in_order_of(values):
    return mstep.sum_in_order(values)  # compiled code only: no Python wrapper


def test_sum_in_order_is_numbas_sum_bit_for_bit(rng):
    for n in (1, 2, 3, 17, 129, 1000):
        values = rng.normal(size=n) * 10.0 ** rng.integers(-8, 9, size=n)
        assert sum_in_order_of(values) == numbas_sum(values)
    values = rng.normal(size=1000) * 10.0 ** rng.integers(-8, 9, size=1000)
    left_fold = 0.0
    for value in values.tolist():
        left_fold += value
    # values on which the order shows: the exact sum and numpy's pairwise one differ
    assert left_fold != math.fsum(values.tolist())
    assert left_fold != float(np.sum(values))
    assert sum_in_order_of(values) == left_fold
    assert sum_in_order_of(np.zeros(0)) == 0.0


def test_spherical_variance_is_the_left_fold_mean_of_the_features(rng):
    """A 'spherical' component's variance: the mean over features of the diagonal
    variances, summed left to right and divided by D (numba's ``.mean()``), then
    reg_covar."""
    n_components, n_features = 3, 40
    nk = rng.uniform(5.0, 50.0, size=n_components)
    sum_x = rng.normal(size=(n_components, n_features)) * nk[:, np.newaxis]
    scatter = (sum_x ** 2 / nk[:, np.newaxis]
               + rng.uniform(0.5, 2.0, size=(n_components, n_features))
               * 10.0 ** rng.integers(-6, 7, size=(n_components, n_features))
               * nk[:, np.newaxis])
    centres = rng.normal(size=(n_components, n_features))
    reg_covar = 1e-6
    *_, variances, _, status = mstep.diagonal_mstep(nk, sum_x, scatter, centres,
                                                    reg_covar, True)
    assert np.all(status == mstep.STATUS_OK)
    for k in range(n_components):
        shift = sum_x[k] / nk[k]
        per_feature = (scatter[k] - sum_x[k] * shift) / nk[k]  # as the kernel
        total = 0.0
        for value in per_feature.tolist():
            total += value
        expected = total / n_features + reg_covar
        assert np.all(variances[k] == expected), (k, variances[k, 0], expected)
