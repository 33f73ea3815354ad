"""Tests of fastem.reference's variational mixture against scikit-learn.

The independent side is scikit-learn's BayesianGaussianMixture through its public
interface only: a fit of a fixed number of iterations (``tol=0``) from its k-means
start, whose fitted attributes, ``lower_bounds_``, ``predict_proba`` and
``score_samples`` the reference must reproduce from the same initial
responsibilities.
"""

import warnings

import numpy as np
import pytest
from scipy.stats import wishart
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from fastem import reference
from fastem.reference import COVARIANCE_TYPES, WEIGHT_CONCENTRATION_PRIOR_TYPES

# A whole variational run against scikit-learn (rounding compounds over iterations).
RTOL_SKLEARN = 1e-9
# Log-probabilities cross zero: an absolute floor of the size of their rounding.
LOG_PROB_ATOL = 1e-9
N_ITER = 5

parametrize_types = pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
parametrize_priors = pytest.mark.parametrize(
    "prior_type", WEIGHT_CONCENTRATION_PRIOR_TYPES
)


@pytest.fixture
def rng():
    return np.random.default_rng(20250115)


def make_blobs(rng, n_components=3, n_features=3, n_per_component=60, spread=6.0):
    centres = rng.normal(scale=spread, size=(n_components, n_features))
    return np.vstack([c + rng.normal(size=(n_per_component, n_features)) for c in centres])


def kmeans_resp(X, n_components, seed):
    """The one-hot start scikit-learn's init_params='kmeans' uses for this seed."""
    labels = KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(X).labels_
    return np.eye(n_components)[labels]


def sklearn_fit(X, n_components, covariance_type, prior_type, seed, n_iter, **priors):
    model = BayesianGaussianMixture(
        n_components=n_components, covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type, max_iter=n_iter, tol=0.0,
        random_state=seed, **priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def assert_parameters_match(parameters, model, prior_type, rtol):
    if prior_type == "dirichlet_process":
        for ours, theirs in zip(parameters.weight_concentration, model.weight_concentration_,
                                strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=rtol)
    else:
        np.testing.assert_allclose(parameters.weight_concentration,
                                   model.weight_concentration_, rtol=rtol)
    np.testing.assert_allclose(parameters.mean_precision, model.mean_precision_, rtol=rtol)
    np.testing.assert_allclose(parameters.means, model.means_, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(parameters.degrees_of_freedom, model.degrees_of_freedom_,
                               rtol=rtol)
    np.testing.assert_allclose(parameters.covariances, model.covariances_, rtol=rtol)
    np.testing.assert_allclose(
        reference.variational_weights(parameters.weight_concentration, prior_type),
        model.weights_, rtol=rtol)


@parametrize_priors
@parametrize_types
def test_variational_em_matches_sklearn_from_the_same_start(rng, covariance_type, prior_type):
    X = make_blobs(rng)
    n_components, seed = 5, 3
    model = sklearn_fit(X, n_components, covariance_type, prior_type, seed, N_ITER)
    priors = reference.variational_priors(X, n_components, covariance_type)
    parameters, lower_bounds = reference.variational_em(
        X, kmeans_resp(X, n_components, seed), N_ITER, priors, covariance_type,
        prior_type, reg_covar=1e-6)
    # ravel: scikit-learn's 'tied' lower bounds are arrays of shape (1,)
    np.testing.assert_allclose(lower_bounds, np.ravel(model.lower_bounds_),
                               rtol=RTOL_SKLEARN)
    assert_parameters_match(parameters, model, prior_type, RTOL_SKLEARN)
    # the E-step, through predict_proba and score_samples
    log_prob_norm, log_resp = reference.variational_e_step(X, parameters, covariance_type,
                                                           prior_type)
    np.testing.assert_allclose(log_prob_norm, model.score_samples(X), rtol=RTOL_SKLEARN,
                               atol=LOG_PROB_ATOL)
    np.testing.assert_allclose(np.exp(log_resp), model.predict_proba(X), rtol=RTOL_SKLEARN,
                               atol=1e-12)


@parametrize_types
def test_priors_default_to_sklearns_and_given_ones_are_used(rng, covariance_type):
    X = make_blobs(rng)
    model = sklearn_fit(X, 4, covariance_type, "dirichlet_process", 0, 1)
    priors = reference.variational_priors(X, 4, covariance_type)
    assert priors.weight_concentration == model.weight_concentration_prior_
    assert priors.mean_precision == model.mean_precision_prior_
    assert priors.degrees_of_freedom == model.degrees_of_freedom_prior_
    np.testing.assert_allclose(priors.mean, model.mean_prior_, rtol=1e-14)
    np.testing.assert_allclose(priors.covariance, model.covariance_prior_, rtol=1e-13)
    # given priors reach the fit
    covariance_prior = {"full": 2.0 * np.eye(3), "tied": 2.0 * np.eye(3),
                        "diag": np.full(3, 2.0), "spherical": 2.0}[covariance_type]
    given = dict(weight_concentration_prior=0.3, mean_precision_prior=0.5,
                 mean_prior=np.array([1.0, -1.0, 0.5]), degrees_of_freedom_prior=4.5,
                 covariance_prior=covariance_prior)
    model = sklearn_fit(X, 4, covariance_type, "dirichlet_distribution", 0, 3, **given)
    priors = reference.variational_priors(X, 4, covariance_type, **given)
    parameters, lower_bounds = reference.variational_em(
        X, kmeans_resp(X, 4, 0), 3, priors, covariance_type, "dirichlet_distribution",
        reg_covar=1e-6)
    np.testing.assert_allclose(lower_bounds, np.ravel(model.lower_bounds_),
                               rtol=RTOL_SKLEARN)
    assert_parameters_match(parameters, model, "dirichlet_distribution", RTOL_SKLEARN)


def test_integer_sample_weights_equal_repeated_rows(rng):
    X = make_blobs(rng, n_per_component=30)
    counts = rng.integers(0, 4, size=len(X))
    counts[:3] = 1  # keep the k-means start's rows
    repeated = np.repeat(X, counts, axis=0)
    resp = np.eye(3)[rng.integers(0, 3, size=len(X))]
    for covariance_type in COVARIANCE_TYPES:
        weighted = reference.variational_em(
            X, resp, 3, reference.variational_priors(X, 3, covariance_type,
                                                     sample_weight=counts),
            covariance_type, reg_covar=1e-6, sample_weight=counts)
        plain = reference.variational_em(
            repeated, np.repeat(resp, counts, axis=0), 3,
            reference.variational_priors(repeated, 3, covariance_type), covariance_type,
            reg_covar=1e-6)
        np.testing.assert_allclose(weighted[1], plain[1], rtol=1e-10)
        for ours, theirs in zip(weighted[0], plain[0], strict=True):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-10)


def test_expected_log_weights_by_monte_carlo():
    """E[log pi] of the stick-breaking and Dirichlet posteriors, by sampling."""
    rng = np.random.default_rng(7)
    a, b = np.array([3.0, 2.0, 1.5]), np.array([4.0, 2.5, 0.7])
    sticks = rng.beta(a, b, size=(400_000, 3))
    pieces = sticks * np.hstack([np.ones((len(sticks), 1)),
                                 np.cumprod(1 - sticks, axis=1)[:, :-1]])
    np.testing.assert_allclose(
        reference.expected_log_weights((a, b), "dirichlet_process"),
        np.log(pieces).mean(axis=0), atol=5e-3)
    alpha = np.array([0.5, 2.0, 7.0])
    draws = rng.dirichlet(alpha, size=400_000)
    np.testing.assert_allclose(
        reference.expected_log_weights(alpha, "dirichlet_distribution"),
        np.log(draws).mean(axis=0), atol=1e-2)
    np.testing.assert_allclose(reference.variational_weights(alpha, "dirichlet_distribution"),
                               alpha / alpha.sum(), rtol=1e-15)


@parametrize_types
def test_variational_e_step_splits_a_tie_far_from_every_component(covariance_type):
    """Two components that are mirror images under x -> -x (means (-1, 0.5) and
    (1, 0.5), the same posterior otherwise, equal Dirichlet concentrations):
    points on the mirror line get half each, also 1e30 away, where the
    log-probabilities (~-1e60) are rounded at ~1e44 and ``w - logsumexp(w)``
    gave both responsibility 1."""
    covariances = {"full": np.tile(np.diag([2.0, 0.5]), (2, 1, 1)),
                   "tied": np.diag([2.0, 0.5]), "diag": np.tile([2.0, 0.5], (2, 1)),
                   "spherical": np.full(2, 1.5)}[covariance_type]
    parameters = reference.VariationalParameters(
        weight_concentration=np.full(2, 3.0), mean_precision=np.full(2, 4.0),
        means=np.array([[-1.0, 0.5], [1.0, 0.5]]),
        degrees_of_freedom=5.0 if covariance_type == "tied" else np.full(2, 5.0),
        covariances=covariances)
    X = np.array([[0.0, 1e30], [0.0, -1e30], [0.0, 1e9], [0.0, 30.0]])
    weighted = (reference.variational_log_prob(X, parameters, covariance_type)
                + reference.expected_log_weights(parameters.weight_concentration,
                                                 "dirichlet_distribution"))
    # the tie holds for the rounded numbers too (x = 0 gives squares of +-1)
    np.testing.assert_array_equal(weighted[:, 0], weighted[:, 1])
    assert np.all(weighted[:2] < -1e59)
    log_prob_norm, log_resp = reference.variational_e_step(
        X, parameters, covariance_type, "dirichlet_distribution")
    np.testing.assert_allclose(np.exp(log_resp), 0.5, rtol=1e-12)
    np.testing.assert_allclose(log_prob_norm, weighted[:, 0] + np.log(2.0), rtol=1e-12)


def test_variational_log_prob_is_the_expected_log_density(rng):
    """E[log N(x | mu, Lambda^-1)] under the Normal-Wishart posterior of a 'full'
    model, by sampling mu and Lambda (within 4 standard errors)."""
    X = make_blobs(rng, n_components=2, n_features=2, n_per_component=20)
    priors = reference.variational_priors(X, 2, "full")
    parameters = reference.variational_m_step(X, np.eye(2)[np.arange(len(X)) % 2], priors,
                                              "full", reg_covar=1e-6)
    point = X[0]
    expected = reference.variational_log_prob(point[np.newaxis], parameters, "full")[0]
    sample_rng = np.random.default_rng(3)
    n_draws = 20_000
    for k in range(2):
        nu = parameters.degrees_of_freedom[k]
        scale = np.linalg.inv(parameters.covariances[k] * nu)  # W_k
        precisions = wishart(df=nu, scale=scale).rvs(size=n_draws, random_state=sample_rng)
        covariances = np.linalg.inv(precisions)
        noise = sample_rng.standard_normal(size=(n_draws, 2))
        offsets = np.einsum("nij,nj->ni", np.linalg.cholesky(covariances), noise)
        means = parameters.means[k] + offsets / np.sqrt(parameters.mean_precision[k])
        diff = point - means
        values = (-np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(precisions)[1]
                  - 0.5 * np.einsum("ni,nij,nj->n", diff, precisions, diff))
        standard_error = values.std() / np.sqrt(n_draws)
        assert abs(values.mean() - expected[k]) < 4 * standard_error


