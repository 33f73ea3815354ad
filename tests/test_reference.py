"""Tests of fastem.reference, the numpy/scipy oracle, against independent computations.

The independent side is scikit-learn (its private per-covariance-type helpers, and
its GaussianMixture estimator: public score/predict_proba, and fit from a given
start) and, for the sufficient statistics, a naive loop over samples.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import background  # tests/background.py
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
    _estimate_log_gaussian_prob,
)

from fastem import reference
from fastem.reference import COVARIANCE_TYPES

REPO_ROOT = Path(__file__).resolve().parents[1]

# float64 agreement between two implementations of the same formula.
RTOL = 1e-10
# Log-densities cross zero, where a purely relative test means nothing; their
# rounding error scales with the terms summed (log-determinant, Mahalanobis
# distance: O(10) here), hence an absolute floor of about 10 * RTOL.
LOG_PROB_ATOL = 1e-9
# A whole EM run against scikit-learn: rounding differences compound over iterations.
EM_RTOL = 1e-9
# Data offset by 1e6: the centred values keep ~1e-10 relative precision, squared
# deviations a little less.
OFFSET_RTOL = 1e-6

# (n_samples, n_features, n_components): d in (1, 2, 17), K in (1, 5), n < d included.
SHAPES = [
    (40, 1, 1), (40, 1, 5), (40, 2, 1), (40, 2, 5),
    (60, 17, 1), (60, 17, 5), (10, 17, 1), (10, 17, 5),
]
NOTEBOOK_X = np.array([[1, 2], [4, 2], [1, 3], [4, 3]])

parametrize_types = pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
parametrize_shapes = pytest.mark.parametrize(
    "n_samples,n_features,n_components", SHAPES
)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def random_covariances(rng, covariance_type, n_components, n_features):
    def spd():
        factor = rng.normal(size=(n_features, n_features))
        return factor @ factor.T / n_features + 0.5 * np.eye(n_features)

    if covariance_type == "full":
        return np.stack([spd() for _ in range(n_components)])
    if covariance_type == "tied":
        return spd()
    if covariance_type == "diag":
        return rng.uniform(0.5, 2.0, size=(n_components, n_features))
    return rng.uniform(0.5, 2.0, size=n_components)


def identity_covariances(covariance_type, n_components, n_features):
    return {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]


def random_problem(rng, covariance_type, n_samples, n_features, n_components):
    """X, weights, means, covariances."""
    X = rng.normal(size=(n_samples, n_features))
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.normal(size=(n_components, n_features))
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    return X, weights, means, covariances


def random_resp(rng, n_samples, n_components):
    return rng.dirichlet(np.ones(n_components), size=n_samples)


def clustered_data(rng, n_samples, n_features, n_components):
    centres = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, n_features))


def sklearn_model(weights, means, covariances, covariance_type):
    """A GaussianMixture carrying the given parameters, as if fitted."""
    model = GaussianMixture(len(weights), covariance_type=covariance_type)
    model.weights_, model.means_, model.covariances_ = weights, means, covariances
    model.precisions_cholesky_ = _compute_precision_cholesky(
        covariances, covariance_type
    )
    model.n_features_in_ = means.shape[1]
    return model


# ------------------------------------------------------------------- layouts


@parametrize_types
@parametrize_shapes
def test_precisions_cholesky_matches_sklearn(
    rng, covariance_type, n_samples, n_features, n_components
):
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    expected = _compute_precision_cholesky(covariances, covariance_type)
    got = reference.precisions_cholesky(covariances, covariance_type)
    # atol: exact zeros below the diagonal
    np.testing.assert_allclose(
        got, expected, rtol=RTOL, atol=RTOL * np.abs(expected).max()
    )


@parametrize_types
def test_dense_covariances_inverts_the_precisions(rng, covariance_type):
    n_components, n_features = 3, 4
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    dense = reference.dense_covariances(
        covariances, covariance_type, n_components, n_features
    )
    assert dense.shape == (n_components, n_features, n_features)
    precisions_chol = reference.precisions_cholesky(covariances, covariance_type)
    factors = {
        "full": lambda: precisions_chol,
        "tied": lambda: np.repeat(precisions_chol[None], n_components, axis=0),
        "diag": lambda: np.stack([np.diag(row) for row in precisions_chol]),
        "spherical": lambda: precisions_chol[:, None, None] * np.eye(n_features),
    }[covariance_type]()
    for covariance, factor in zip(dense, factors):
        np.testing.assert_allclose(
            covariance @ factor @ factor.T, np.eye(n_features), atol=RTOL
        )


def test_precisions_cholesky_rejects_non_positive_definite():
    with pytest.raises(np.linalg.LinAlgError):
        reference.precisions_cholesky(np.zeros((1, 2, 2)), "full")
    with pytest.raises(np.linalg.LinAlgError):
        reference.precisions_cholesky(np.array([1.0, 0.0]), "spherical")


# -------------------------------------------------------------------- E-step


@parametrize_types
@parametrize_shapes
def test_estimate_log_prob_matches_sklearn(
    rng, covariance_type, n_samples, n_features, n_components
):
    X, _, means, covariances = random_problem(
        rng, covariance_type, n_samples, n_features, n_components
    )
    precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
    expected = _estimate_log_gaussian_prob(X, means, precisions_chol, covariance_type)
    log_prob = reference.estimate_log_prob(X, means, covariances, covariance_type)
    assert log_prob.shape == (n_samples, n_components)
    assert log_prob.dtype == np.float64
    np.testing.assert_allclose(log_prob, expected, rtol=RTOL, atol=LOG_PROB_ATOL)


@parametrize_types
@parametrize_shapes
def test_e_step_and_log_likelihood_match_sklearn(
    rng, covariance_type, n_samples, n_features, n_components
):
    X, weights, means, covariances = random_problem(
        rng, covariance_type, n_samples, n_features, n_components
    )
    params = (weights, means, covariances, covariance_type)
    model = sklearn_model(*params)
    log_prob_norm, log_resp = reference.e_step(X, *params)
    np.testing.assert_allclose(
        log_prob_norm, model.score_samples(X), rtol=RTOL, atol=LOG_PROB_ATOL
    )
    resp = np.exp(log_resp)
    np.testing.assert_allclose(resp, model.predict_proba(X), rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=RTOL)
    np.testing.assert_allclose(
        reference.estimate_weighted_log_prob(X, *params),
        reference.estimate_log_prob(X, means, covariances, covariance_type)
        + np.log(weights),
        rtol=RTOL,
    )
    np.testing.assert_allclose(
        reference.log_likelihood(X, *params), model.score(X) * n_samples, rtol=RTOL
    )


@parametrize_types
def test_e_step_is_finite_far_from_every_component(rng, covariance_type):
    # The notebook normalised densities, which underflow to 0 / 0 here.
    X, weights, means, covariances = random_problem(rng, covariance_type, 5, 2, 3)
    X[0] = [1e4, -1e4]
    log_prob_norm, log_resp = reference.e_step(
        X, weights, means, covariances, covariance_type
    )
    assert np.all(np.isfinite(log_prob_norm)) and np.all(np.isfinite(log_resp))
    np.testing.assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=RTOL)


def mirrored_pair(covariance_type):
    """Equal weights, means (-1, 0.5) and (1, 0.5), one covariance shared by both
    and symmetric under x -> -x: the mirror x -> -x swaps the two components."""
    covariances = {
        "full": np.tile(np.diag([2.0, 0.5]), (2, 1, 1)),
        "tied": np.diag([2.0, 0.5]),
        "diag": np.tile([2.0, 0.5], (2, 1)),
        "spherical": np.full(2, 1.5),
    }[covariance_type]
    return np.full(2, 0.5), np.array([[-1.0, 0.5], [1.0, 0.5]]), covariances


@parametrize_types
def test_e_step_splits_a_tie_far_from_every_component(covariance_type):
    """Points on the mirror line 1e30 away: each component has the same density
    there, so each gets half. The log-densities (~-1e60) are rounded at ~1e44,
    where log 2 is nothing: ``w - logsumexp(w)`` gave both responsibility 1. (At
    30, log p(x) is the log-density plus log 2 to the last digits.)"""
    weights, means, covariances = mirrored_pair(covariance_type)
    X = np.array([[0.0, 1e30], [0.0, -1e30], [0.0, 1e9], [0.0, 30.0]])
    weighted_log_prob = reference.estimate_weighted_log_prob(
        X, weights, means, covariances, covariance_type
    )
    # the tie holds for the rounded numbers too (x = 0 gives squares of +-1)
    np.testing.assert_array_equal(weighted_log_prob[:, 0], weighted_log_prob[:, 1])
    assert np.all(weighted_log_prob[:2] < -1e59)
    log_prob_norm, log_resp = reference.e_step(
        X, weights, means, covariances, covariance_type
    )
    np.testing.assert_allclose(np.exp(log_resp), 0.5, rtol=RTOL)
    np.testing.assert_allclose(log_prob_norm, weighted_log_prob[:, 0] + np.log(2.0),
                               rtol=RTOL)


# -------------------------------------------------------------------- M-step


@parametrize_types
@parametrize_shapes
@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_m_step_matches_sklearn(
    rng, covariance_type, n_samples, n_features, n_components, reg_covar
):
    X = rng.normal(size=(n_samples, n_features))
    resp = random_resp(rng, n_samples, n_components)
    nk, expected_means, expected_covariances = _estimate_gaussian_parameters(
        X, resp, reg_covar, covariance_type
    )
    weights, means, covariances = reference.m_step(X, resp, covariance_type, reg_covar)
    np.testing.assert_allclose(weights, nk / n_samples, rtol=RTOL)
    # atol: means and off-diagonal covariances near 0 (on the scale of the data, 1)
    np.testing.assert_allclose(means, expected_means, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(
        covariances, expected_covariances, rtol=RTOL, atol=RTOL
    )


@parametrize_types
def test_m_step_is_two_pass(rng, covariance_type):
    X = rng.normal(size=(50, 3))
    resp = random_resp(rng, 50, 2)
    _, means, covariances = reference.m_step(X, resp, covariance_type)
    _, far_means, far_covariances = reference.m_step(X + 1e6, resp, covariance_type)
    np.testing.assert_allclose(far_means - 1e6, means, atol=1e-8)
    np.testing.assert_allclose(far_covariances, covariances, rtol=OFFSET_RTOL)


def naive_sufficient_statistics(X, resp, means, sample_weight):
    n_components, n_features = means.shape
    nk = np.zeros(n_components)
    sum_x = np.zeros((n_components, n_features))
    scatter = np.zeros((n_components, n_features, n_features))
    for i in range(X.shape[0]):
        for k in range(n_components):
            diff = X[i] - means[k]
            nk[k] += sample_weight[i] * resp[i, k]
            sum_x[k] += sample_weight[i] * resp[i, k] * diff
            scatter[k] += sample_weight[i] * resp[i, k] * np.outer(diff, diff)
    return nk, sum_x, scatter


@parametrize_types
def test_sufficient_statistics_match_naive_loop(rng, covariance_type):
    X = rng.normal(size=(30, 3))
    resp = random_resp(rng, 30, 4)
    means = rng.normal(size=(4, 3))
    sample_weight = rng.integers(0, 4, size=30).astype(float)
    nk, sum_x, scatter = reference.sufficient_statistics(
        X, resp, means, covariance_type, sample_weight
    )
    naive_nk, naive_sum_x, naive_full = naive_sufficient_statistics(
        X, resp, means, sample_weight
    )
    naive_scatter = {
        "full": naive_full,
        "tied": naive_full.sum(axis=0),
        "diag": np.diagonal(naive_full, axis1=1, axis2=2),
        "spherical": np.trace(naive_full, axis1=1, axis2=2),
    }[covariance_type]
    np.testing.assert_allclose(nk, naive_nk, rtol=RTOL)
    np.testing.assert_allclose(sum_x, naive_sum_x, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(scatter, naive_scatter, rtol=RTOL, atol=RTOL)


@parametrize_types
@pytest.mark.parametrize("n_features", [1, 2, 17])
def test_sufficient_statistics_reproduce_m_step(rng, covariance_type, n_features):
    X = rng.normal(size=(40, n_features))
    resp = random_resp(rng, 40, 3)
    sample_weight = rng.uniform(0.5, 2.0, size=40)
    total_weight = sample_weight.sum()
    centres = rng.normal(scale=0.5, size=(3, n_features))
    nk, sum_x, scatter = reference.sufficient_statistics(
        X, resp, centres, covariance_type, sample_weight
    )
    shift = sum_x / nk[:, None]  # new means - centres
    if covariance_type == "full":
        outer = np.einsum("ki,kj->kij", shift, shift)
        covariances = scatter / nk[:, None, None] - outer
    elif covariance_type == "tied":
        outer = np.einsum("k,ki,kj->ij", nk, shift, shift)
        covariances = (scatter - outer) / total_weight
    elif covariance_type == "diag":
        covariances = scatter / nk[:, None] - shift**2
    else:
        covariances = (scatter / nk - np.sum(shift**2, axis=1)) / n_features
    weights, means, expected = reference.m_step(
        X, resp, covariance_type, sample_weight=sample_weight
    )
    np.testing.assert_allclose(weights, nk / total_weight, rtol=RTOL)
    np.testing.assert_allclose(centres + shift, means, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(covariances, expected, rtol=RTOL, atol=RTOL)


# ------------------------------------------------------------- sample_weight


@parametrize_types
def test_integer_sample_weight_equals_repeated_rows(rng, covariance_type):
    X, weights, means, covariances = random_problem(rng, covariance_type, 20, 3, 2)
    counts = rng.integers(1, 4, size=20)
    repeated = np.repeat(X, counts, axis=0)
    params = (weights, means, covariances, covariance_type)
    log_prob_norm, log_resp = reference.e_step(X, *params)
    repeated_norm, repeated_log_resp = reference.e_step(repeated, *params)
    np.testing.assert_allclose(
        repeated_norm, np.repeat(log_prob_norm, counts), rtol=RTOL
    )
    np.testing.assert_allclose(
        repeated_log_resp, np.repeat(log_resp, counts, axis=0), rtol=RTOL
    )
    np.testing.assert_allclose(
        reference.log_likelihood(X, *params, sample_weight=counts),
        reference.log_likelihood(repeated, *params),
        rtol=RTOL,
    )
    resp = np.exp(log_resp)
    repeated_resp = np.repeat(resp, counts, axis=0)
    weighted = reference.m_step(X, resp, covariance_type, 1e-3, sample_weight=counts)
    unweighted = reference.m_step(repeated, repeated_resp, covariance_type, 1e-3)
    for got, expected in zip(weighted, unweighted):
        np.testing.assert_allclose(got, expected, rtol=RTOL)
    np.testing.assert_allclose(
        reference.lower_bound(X, resp, *params, sample_weight=counts),
        reference.lower_bound(repeated, repeated_resp, *params),
        rtol=RTOL,
    )


@parametrize_types
def test_zero_sample_weight_equals_row_removed(rng, covariance_type):
    X, weights, means, covariances = random_problem(rng, covariance_type, 20, 3, 2)
    X[3] = 1e4  # far away: it would dominate the likelihood if it were counted
    sample_weight = np.ones(20)
    sample_weight[[3, 7]] = 0.0
    kept = sample_weight > 0
    params = (weights, means, covariances, covariance_type)
    np.testing.assert_allclose(
        reference.log_likelihood(X, *params, sample_weight=sample_weight),
        reference.log_likelihood(X[kept], *params),
        rtol=RTOL,
    )
    resp = random_resp(rng, 20, 2)
    np.testing.assert_allclose(
        reference.lower_bound(X, resp, *params, sample_weight=sample_weight),
        reference.lower_bound(X[kept], resp[kept], *params),
        rtol=RTOL,
    )
    weighted = reference.m_step(X, resp, covariance_type, sample_weight=sample_weight)
    removed = reference.m_step(X[kept], resp[kept], covariance_type)
    for got, expected in zip(weighted, removed):
        np.testing.assert_allclose(got, expected, rtol=RTOL)


# --------------------------------------------------------------- lower bound


@parametrize_types
@pytest.mark.parametrize("n_features,n_components", [(1, 1), (2, 5), (17, 5)])
def test_lower_bound_equals_log_likelihood_at_posterior(
    rng, covariance_type, n_features, n_components
):
    X, weights, means, covariances = random_problem(
        rng, covariance_type, 30, n_features, n_components
    )
    params = (weights, means, covariances, covariance_type)
    sample_weight = rng.uniform(0.0, 3.0, size=30)
    _, log_resp = reference.e_step(X, *params)
    resp = np.exp(log_resp)
    np.testing.assert_allclose(
        reference.lower_bound(X, resp, *params, sample_weight=sample_weight),
        reference.log_likelihood(X, *params, sample_weight=sample_weight),
        rtol=RTOL,
    )


@parametrize_types
@pytest.mark.parametrize("n_features", [1, 2, 17])
def test_lower_bound_is_below_log_likelihood_for_other_resp(
    rng, covariance_type, n_features
):
    # Gibbs' inequality; hard zeros in resp count as 0 log 0 = 0.
    X, weights, means, covariances = random_problem(
        rng, covariance_type, 30, n_features, 4
    )
    params = (weights, means, covariances, covariance_type)
    resp = random_resp(rng, 30, 3)
    resp = np.column_stack([np.zeros(30), resp])
    bound = reference.lower_bound(X, resp, *params)
    weighted_log_prob = reference.estimate_weighted_log_prob(X, *params)[:, 1:]
    expected = np.sum(resp[:, 1:] * (weighted_log_prob - np.log(resp[:, 1:])))
    np.testing.assert_allclose(bound, expected, rtol=RTOL)
    assert bound < reference.log_likelihood(X, *params)


@parametrize_types
def test_lower_bound_skips_components_without_responsibility(rng, covariance_type):
    # A zero weight gives log(weight) = -inf; times zero responsibility it adds 0.
    X, _, means, covariances = random_problem(rng, covariance_type, 10, 2, 3)
    params = (np.array([0.0, 0.4, 0.6]), means, covariances, covariance_type)
    _, log_resp = reference.e_step(X, *params)
    resp = np.exp(log_resp)
    assert np.all(resp[:, 0] == 0.0)
    np.testing.assert_allclose(
        reference.lower_bound(X, resp, *params),
        reference.log_likelihood(X, *params),
        rtol=RTOL,
    )


# ----------------------------------------------------------------- EM parity


@parametrize_types
@pytest.mark.parametrize(
    "n_samples,n_features,n_components,reg_covar",
    [(200, 2, 3, 0.0), (150, 17, 2, 1e-6), (10, 17, 2, 1e-1)],
)
def test_em_matches_sklearn_from_same_start(
    rng, covariance_type, n_samples, n_features, n_components, reg_covar
):
    X = clustered_data(rng, n_samples, n_features, n_components)
    weights = rng.dirichlet(5 * np.ones(n_components))
    means = X[rng.choice(n_samples, n_components, replace=False)]
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    if covariance_type in ("full", "tied"):
        precisions = np.linalg.inv(covariances)
    else:
        precisions = 1.0 / covariances
    n_iter = 12
    model = GaussianMixture(
        n_components, covariance_type=covariance_type, tol=0.0, max_iter=n_iter,
        n_init=1, reg_covar=reg_covar, weights_init=weights, means_init=means,
        precisions_init=precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    new_weights, new_means, new_covariances, log_likelihoods = reference.em(
        X, weights, means, covariances, covariance_type, n_iter, reg_covar
    )
    assert len(log_likelihoods) == n_iter
    np.testing.assert_allclose(log_likelihoods, model.lower_bounds_, rtol=EM_RTOL)
    np.testing.assert_allclose(new_weights, model.weights_, rtol=EM_RTOL)
    np.testing.assert_allclose(new_means, model.means_, rtol=EM_RTOL, atol=EM_RTOL)
    np.testing.assert_allclose(
        new_covariances, model.covariances_, rtol=EM_RTOL, atol=EM_RTOL
    )


@parametrize_types
def test_em_likelihood_never_decreases(rng, covariance_type):
    X = clustered_data(rng, 100, 3, 3)
    *_, log_likelihoods = reference.em(
        X, np.full(3, 1 / 3), X[:3], identity_covariances(covariance_type, 3, 3),
        covariance_type, 30, sample_weight=rng.uniform(0.5, 2.0, size=100),
    )
    increments = np.diff(log_likelihoods)
    assert np.all(increments >= -RTOL * np.abs(log_likelihoods[1:]))


# ----------------------------------------------------------------------- fit


@parametrize_types
def test_fit_notebook_example_survives_collapse(covariance_type):
    """Restarts that collapse are counted and the best of the others is kept.

    'full' and 'diag' collapse: a component settling on a pair of points with the
    same x has (numerically) zero variance along x. 'tied' and 'spherical'
    cannot: the pooled scatter of both components takes in all four points of
    the rectangle, and a spherical variance is zero only on a single point.
    """
    result = reference.fit(
        NOTEBOOK_X, 2, covariance_type, reg_covar=0.0, n_init=10, random_state=0
    )
    assert np.isfinite(result.lower_bound)
    assert result.lower_bound == max(result.lower_bounds)
    for array in (result.weights, result.means, result.covariances, result.resp):
        assert not np.any(np.isnan(array))
    np.testing.assert_allclose(result.resp.sum(axis=1), 1.0, rtol=RTOL)
    if covariance_type in ("full", "diag"):
        assert 0 < result.n_failed_restarts < 10
    else:
        assert result.n_failed_restarts == 0
    # the same ten restarts one at a time (one generator: the same starts)
    generator = np.random.default_rng(0)
    singles = [reference.fit(NOTEBOOK_X, 2, covariance_type, reg_covar=0.0, n_init=1,
                             random_state=generator) for _ in range(10)]
    assert all(single.n_failed_restarts in (0, 1) for single in singles)
    assert result.n_failed_restarts == sum(single.n_failed_restarts
                                           for single in singles)
    assert result.lower_bound == max(single.lower_bound for single in singles)


def test_fit_notebook_example_counts_a_breakdown():
    # Full covariances collapse onto pairs of points, as in the notebook's output.
    result = reference.fit(NOTEBOOK_X, 2, "full", n_init=10, random_state=0)
    assert result.n_failed_restarts > 0
    assert np.isfinite(result.lower_bound)


@parametrize_types
def test_fit_counts_breakdown_instead_of_raising(covariance_type):
    # All-equal rows give zero covariances after the first M-step: all restarts fail.
    result = reference.fit(np.ones((6, 2)), 2, covariance_type, n_init=4,
                           random_state=0)
    assert result.n_failed_restarts == 4
    assert result.lower_bound == -np.inf
    assert result.weights is None and result.means is None and result.resp is None


@parametrize_types
def test_fit_best_of_restarts_and_reproducible(rng, covariance_type):
    X = clustered_data(rng, 120, 2, 3)
    options = dict(covariance_type=covariance_type, reg_covar=1e-6, random_state=7)
    single = reference.fit(X, 3, n_init=1, **options)
    best = reference.fit(X, 3, n_init=5, **options)
    again = reference.fit(X, 3, n_init=5, **options)
    assert best.lower_bound >= single.lower_bound  # restart 1 draws the same start
    assert best.lower_bound == again.lower_bound
    np.testing.assert_array_equal(best.means, again.means)
    assert best.lower_bound in best.lower_bounds


@parametrize_types
def test_fit_stops_on_relative_change(rng, covariance_type):
    X = clustered_data(rng, 150, 2, 3)
    tol = 1e-2
    result = reference.fit(X, 3, covariance_type, tol=tol, n_init=1, reg_covar=1e-6,
                           random_state=3)
    assert result.n_failed_restarts == 0
    elbos = np.array(result.lower_bounds)
    relative_changes = np.abs(np.diff(elbos) / elbos[:-1])
    assert len(elbos) < 50
    assert relative_changes[-1] < tol and np.all(relative_changes[:-1] >= tol)


def test_fit_recovers_separated_clusters(rng):
    truth = np.array([[0.0, 0.0], [6.0, 6.0]])
    X = np.concatenate([truth[0] + rng.normal(size=(100, 2)),
                        truth[1] + rng.normal(size=(100, 2))])
    result = reference.fit(X, 2, "full", tol=1e-8, max_iter=200, random_state=0)
    found = result.means[np.argsort(result.means[:, 0])]
    np.testing.assert_allclose(found, truth, atol=0.4)  # ~4 standard errors
    np.testing.assert_allclose(result.weights, 0.5, atol=0.05)


# --------------------------------------------------------------- API hygiene


@parametrize_types
def test_dtype_layout_and_no_mutation(rng, covariance_type):
    X, weights, means, covariances = random_problem(rng, covariance_type, 30, 4, 3)
    resp = random_resp(rng, 30, 3)
    arrays = (X, weights, means, covariances, resp)
    snapshot = [array.copy() for array in arrays]
    params = (weights, means, covariances, covariance_type)
    expected = reference.e_step(X, *params)
    for variant in (np.asfortranarray(X), np.repeat(X, 2, axis=0)[::2]):
        for got, want in zip(reference.e_step(variant, *params), expected):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL)
    X32 = X.astype(np.float32)
    for got, want in zip(reference.e_step(X32, *params),
                         reference.e_step(X32.astype(np.float64), *params)):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    for got in reference.m_step(X32, resp, covariance_type):
        assert got.dtype == np.float64
    reference.m_step(X, resp, covariance_type, reg_covar=1.0)
    reference.sufficient_statistics(X, resp, means, covariance_type)
    reference.em(X, *params, n_iter=2)
    reference.lower_bound(X, resp, *params)
    reference.dense_covariances(covariances, covariance_type, 3, 4)
    reference.precisions_cholesky(covariances, covariance_type)
    for before, after in zip(snapshot, arrays):
        np.testing.assert_array_equal(before, after)


X2 = np.ones((3, 2))
INVALID_CALLS = {
    "2-D": lambda: reference.estimate_log_prob(
        np.ones(3), np.ones((1, 1)), np.ones(1), "spherical"),
    "means": lambda: reference.estimate_log_prob(
        X2, np.ones((1, 3)), np.ones(1), "spherical"),
    "covariance_type": lambda: reference.estimate_log_prob(
        X2, np.ones((1, 2)), np.ones(1), "ful"),
    "covariances": lambda: reference.estimate_log_prob(
        X2, np.ones((1, 2)), np.ones(2), "diag"),
    "weights": lambda: reference.e_step(
        X2, np.ones(2), np.ones((1, 2)), np.ones(1), "spherical"),
    "resp": lambda: reference.m_step(X2, np.ones((4, 1)), "full"),
    "sample_weight": lambda: reference.m_step(
        X2, np.ones((3, 1)), "full", sample_weight=[1, 1]),
    "non-negative": lambda: reference.m_step(
        X2, np.ones((3, 1)), "full", sample_weight=[1, -1, 1]),
    "n_components": lambda: reference.fit(X2, 0),
}


@pytest.mark.parametrize("match", INVALID_CALLS)
def test_invalid_inputs_raise_value_error_naming_the_problem(match):
    with pytest.raises(ValueError, match=match):
        INVALID_CALLS[match]()


@background.fixture
def reference_import(directory):
    """A fresh process imports fastem.reference and asserts numba is not imported
    (``directory`` is not needed)."""
    code = "import sys, fastem.reference; assert 'numba' not in sys.modules, 'numba'"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )


def test_import_does_not_load_numba(reference_import):
    assert reference_import.returncode == 0, reference_import.stderr
