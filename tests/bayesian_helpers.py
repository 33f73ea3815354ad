"""What the tests of BayesianGaussianMixture in several modules share: the fitted
attributes compared, bitwise comparison of two fits, and the fit that
tests/test_sources.py and tests/test_dask.py make from every kind of X."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from fastem import BayesianGaussianMixture

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")

POSTERIOR = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
             "mean_precision_", "degrees_of_freedom_", "lower_bounds_")


def concentration(model):
    """weight_concentration_ as one array (the two Beta arrays stacked)."""
    return np.atleast_2d(np.asarray(model.weight_concentration_, dtype=float))


def assert_identical_posterior(actual, expected):
    for name in (*POSTERIOR, "lower_bound_", "n_iter_", "converged_"):
        assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
    assert_array_equal(concentration(actual), concentration(expected))


# The source tests' fit: from the sampled k-means start (the same start from
# every source), one more component than their data has clusters, 512-row
# blocks, 10 iterations.
SOURCE_FIT_PARAMS = dict(n_components=4, random_state=0, chunk_size=512, max_iter=10,
                         tol=1e-8, init_sample_size=2000)


def fit_bayesian(X, sample_weight=None, **params):
    """BayesianGaussianMixture(**SOURCE_FIT_PARAMS, **params).fit(X, sample_weight),
    warnings silenced."""
    settings = dict(SOURCE_FIT_PARAMS)
    settings.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGaussianMixture(**settings).fit(X, sample_weight=sample_weight)


# The weighted fits of the source tests weigh the rows by their module's
# make_weights() (mean about 1.4) times this: a mean weight of about 7, not in
# [1, 2), so that a fit that rescaled the weights (as GaussianMixture does; a
# variational fit must not) would give other bits.
WEIGHT_SCALE = 5.0


def in_memory_fits_fixture(make_data, make_weights):
    """A module-scoped fixture: ``get(covariance_type, dtype='float64',
    weighted=False, **params)``, the in-memory fit_bayesian of ``make_data()``
    (with ``WEIGHT_SCALE * make_weights()``), computed once per setting."""

    @pytest.fixture(scope="module")
    def expected_bayesian():
        cache = {}

        def get(covariance_type, dtype="float64", weighted=False, **params):
            key = (covariance_type, dtype, weighted, tuple(sorted(params.items())))
            if key not in cache:
                cache[key] = fit_bayesian(make_data().astype(dtype),
                                          WEIGHT_SCALE * make_weights() if weighted else None,
                                          covariance_type=covariance_type, **params)
            return cache[key]

        return get

    return expected_bayesian
