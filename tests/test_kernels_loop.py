"""fastem/kernels/loop.py: whole EM runs in one compiled call, for small data.

The loop keeps its arrays from one iteration to the next (no allocation per
iteration); each iteration must still be exactly the row kernels' E-step
(fastem.kernels.small) followed by the M-step kernels (fastem.kernels.mstep),
as the driver would call them one at a time, and the caller's arrays must not
change. Parity of whole fits with scikit-learn and with fastem.reference is in
tests/test_mixture.py and tests/test_driver.py.
"""

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastem.kernels import loop, mstep, small

REG_COVAR = 1e-6
# log(2 pi) / 2, the Gaussian's constant, written here rather than read from the loop
# module (whose own constant an oracle must not borrow); the same expression rounds
# to the same bits.
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _problem(
    covariance_type, dtype, seed=0, n_samples=40, n_features=3, n_components=3
):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_components, n_features))
    X = (
        centres[rng.integers(n_components, size=n_samples)]
        + rng.normal(size=(n_samples, n_features))
    ).astype(dtype)
    weights = np.full(n_components, 1.0 / n_components)
    means = centres + rng.normal(scale=0.3, size=centres.shape)
    if covariance_type in ("full", "tied"):
        n_factors = n_components if covariance_type == "full" else 1
        factors = np.zeros((n_factors, n_features, n_features))
        for slot in range(n_factors):
            upper = np.triu(rng.normal(scale=0.1, size=(n_features, n_features)), 1)
            factors[slot] = upper + np.diag(rng.uniform(0.7, 1.3, size=n_features))
    else:
        factors = rng.uniform(0.7, 1.3, size=(n_components, n_features))
        if covariance_type == "spherical":
            factors[:] = factors[:, :1]
    sample_weight = rng.uniform(0.5, 2.0, size=n_samples)
    return X, sample_weight, weights, means, factors


def _one_at_a_time(
    X, sample_weight, weights, means, factors, covariance_type, max_iter
):
    """The same iterations through the public row and M-step kernels, from Python."""
    dense = covariance_type in ("full", "tied")
    total_weight = sum(sample_weight.tolist())  # a left fold, as numba's sum
    lower_bounds = []
    covariances = status = None
    for _ in range(max_iter):
        if dense:
            shared = factors.shape[0] == 1
            diagonals = [
                np.diag(factors[0 if shared else k]) for k in range(len(weights))
            ]
            log_det = np.array(
                [sum(math.log(v) for v in diagonal) for diagonal in diagonals]
            )
        else:  # (math.log: libm's, as numba's; numpy's own log may round differently)
            log_det = np.array([sum(math.log(v) for v in row) for row in factors])
        log_norm = np.array(
            [
                math.log(weights[k]) + log_det[k] - X.shape[1] * HALF_LOG_2PI
                for k in range(len(weights))
            ]
        )
        centres = means.astype(X.dtype).astype(np.float64)
        kernel = (
            small.dense_statistics_rows if dense else small.diagonal_statistics_rows
        )
        nk, sum_x, scatter, sums = kernel(X, sample_weight, centres, factors, log_norm)
        lower_bounds.append(sums[0] / total_weight)
        if dense:
            weights, means, covariances, factors, status = mstep.dense_mstep(
                nk, sum_x, scatter, centres, REG_COVAR
            )
        else:
            weights, means, covariances, factors, status = mstep.diagonal_mstep(
                nk, sum_x, scatter, centres, REG_COVAR, covariance_type == "spherical"
            )
    return weights, means, covariances, factors, status, np.array(lower_bounds)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_compiled_iterations_are_the_kernels_one_at_a_time(covariance_type, dtype):
    X, sample_weight, weights, means, factors = _problem(covariance_type, dtype)
    if covariance_type == "tied":
        factors = factors[:1]
    inputs = [array.copy() for array in (X, sample_weight, weights, means, factors)]
    max_iter = 7
    if covariance_type in ("full", "tied"):
        result = loop.dense_em(
            X, sample_weight, weights, means, factors, REG_COVAR, max_iter, 0.0, -np.inf
        )
    else:
        result = loop.diagonal_em(
            X,
            sample_weight,
            weights,
            means,
            factors,
            REG_COVAR,
            max_iter,
            0.0,
            -np.inf,
            covariance_type == "spherical",
        )
    expected = _one_at_a_time(
        X, sample_weight, weights, means, factors, covariance_type, max_iter
    )
    *parameters, status, lower_bounds, converged = result
    # the same bits: the same operations in the same order
    for got, want in zip(parameters, expected[:4]):
        assert_array_equal(got, want)
    assert_array_equal(status, expected[4])
    assert_array_equal(lower_bounds, expected[5])
    assert not converged
    assert np.all(status == mstep.STATUS_OK)
    # the loop's arrays are its own: the caller's are unchanged, and not returned
    for before, after in zip(inputs, (X, sample_weight, weights, means, factors)):
        assert_array_equal(after, before)
    for got in parameters:
        assert not any(
            np.shares_memory(got, array) for array in (weights, means, factors)
        )


def test_compiled_iterations_stop_at_a_flagged_component():
    # One component far from every row: it loses its mass in the first M-step,
    # which flags it empty; the loop stops there and hands the flag back.
    X, sample_weight, weights, means, factors = _problem("full", np.float64)
    means = means.copy()
    means[2] = 1e3
    result = loop.dense_em(
        X, sample_weight, weights, means, factors, REG_COVAR, 10, 0.0, -np.inf
    )
    *parameters, status, lower_bounds, converged = result
    assert len(lower_bounds) == 1 and not converged
    assert status[2] == mstep.STATUS_EMPTY
    expected = _one_at_a_time(X, sample_weight, weights, means, factors, "full", 1)
    for got, want in zip(parameters, expected[:4]):
        assert_array_equal(got, want)
    assert_array_equal(status, expected[4])
