"""Tests of fastem.BayesianGaussianMixture.

Parity with scikit-learn's BayesianGaussianMixture from the same start (the
same random_state and initialisation), agreement with fastem.reference's
variational mixture (the numpy/scipy oracle), sample weights, determinism
across thread counts, bad and degenerate input, and scikit-learn's estimator
checks.
"""

import copy
import warnings

import numpy as np
import pytest
from bayesian_helpers import (  # tests/bayesian_helpers.py
    POSTERIOR,
    PRIOR_TYPES,
    WEIGHT_SCALE,
    assert_identical_posterior,
    concentration,
)
from benchmark_modules import load_benchmark_module  # tests/benchmark_modules.py
from numpy.testing import assert_array_equal
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import BayesianGaussianMixture as SklearnBayesianGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastem import BayesianGaussianMixture, reference
from fastem.em import driver as _driver

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

RTOL_SKLEARN = 1e-9  # float64 parity with scikit-learn from the same start
RTOL_REFERENCE = 1e-10  # float64 parity with fastem.reference
RTOL_FLOAT32 = 1e-4  # float32 data against the float64 oracle
RTOL_EQUIVALENT = 1e-10  # integer sample weights against repeated rows
N_ITER = 8  # iterations of the fixed-length comparisons (tol = 0)


parametrize_types = pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
parametrize_priors = pytest.mark.parametrize("prior_type", PRIOR_TYPES)


# --------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def chunk_size(request, monkeypatch):
    """A parametrised chunk_size; with one, every shape takes the block kernels (the
    tests' data is small data, which would never reach them)."""
    if request.param is not None:
        monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", -1)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20250116)


@pytest.fixture
def seed(rng):
    return int(rng.integers(2**31))


def make_blobs(rng, n_components=3, n_features=3, n_per_component=60, spread=6.0):
    centres = rng.normal(scale=spread, size=(n_components, n_features))
    return np.vstack([c + rng.normal(size=(n_per_component, n_features)) for c in centres])


def fit_quietly(model, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **fit_params)


def assert_close(actual, expected, rtol, name, normwise=False):
    """Elementwise within rtol; ``normwise``: within rtol of the largest entry (for
    float32 data, whose rounding is relative to the data, not to each entry)."""
    expected = np.asarray(expected, dtype=float)
    atol = rtol * np.max(np.abs(expected)) if normwise else 0.0
    np.testing.assert_allclose(np.asarray(actual, dtype=float), expected,
                               rtol=rtol, atol=atol, err_msg=name)


def assert_same_posterior(actual, expected, rtol):
    """Every fitted attribute of the posterior, and the lower bounds, within rtol."""
    for name in POSTERIOR:
        assert_close(np.ravel(getattr(actual, name)), np.ravel(getattr(expected, name)),
                     rtol, name)
    assert_close(np.ravel(actual.lower_bound_), np.ravel(expected.lower_bound_), rtol,
                 "lower_bound_")
    assert_close(concentration(actual), concentration(expected), rtol,
                 "weight_concentration_")


def assert_matches_reference(model, parameters, lower_bounds, prior_type, rtol,
                             normwise=False):
    assert_close(model.lower_bounds_, lower_bounds, rtol, "lower_bounds_")
    assert_close(model.means_, parameters.means, rtol, "means_", normwise)
    assert_close(model.covariances_, parameters.covariances, rtol, "covariances_", normwise)
    assert_close(model.mean_precision_, parameters.mean_precision, rtol, "mean_precision_")
    assert_close(model.degrees_of_freedom_, parameters.degrees_of_freedom, rtol,
                 "degrees_of_freedom_")
    assert_close(np.atleast_2d(np.asarray(parameters.weight_concentration, dtype=float)),
                 concentration(model), rtol, "weight_concentration_")
    assert_close(model.weights_,
                 reference.variational_weights(parameters.weight_concentration, prior_type),
                 rtol, "weights_")


def kmeans_resp(X, n_components, seed):
    labels = KMeans(n_clusters=n_components, n_init=1, random_state=seed).fit(X).labels_
    return np.eye(n_components)[labels]


def all_finite(model):
    return all(np.all(np.isfinite(np.asarray(getattr(model, name), dtype=float)))
               for name in (*POSTERIOR, "lower_bound_")) and np.all(
        np.isfinite(concentration(model)))


# --------------------------------------------------------------------------
# parity with scikit-learn and with the oracle


@pytest.mark.parametrize("chunk_size", [None, 64], ids=["default", "blocks64"],
                         indirect=True)
@parametrize_priors
@parametrize_types
def test_parity_with_sklearn_and_reference_from_the_same_start(
    rng, seed, covariance_type, prior_type, chunk_size
):
    X = make_blobs(rng)
    params = dict(n_components=5, covariance_type=covariance_type,
                  weight_concentration_prior_type=prior_type, max_iter=N_ITER, tol=0.0,
                  random_state=seed)
    model = fit_quietly(BayesianGaussianMixture(chunk_size=chunk_size, **params), X)
    expected = fit_quietly(SklearnBayesianGaussianMixture(**params), X)
    assert model.n_iter_ == expected.n_iter_ == N_ITER
    assert_same_posterior(model, expected, RTOL_SKLEARN)
    assert_close(model.predict_proba(X), expected.predict_proba(X), RTOL_SKLEARN,
                 "predict_proba")
    assert_close(model.score_samples(X), expected.score_samples(X), RTOL_SKLEARN,
                 "score_samples")
    assert_array_equal(model.predict(X), expected.predict(X))
    # the kernel path against the oracle, from the same k-means responsibilities
    priors = reference.variational_priors(X, 5, covariance_type)
    parameters, lower_bounds = reference.variational_em(
        X, kmeans_resp(X, 5, seed), N_ITER, priors, covariance_type, prior_type,
        reg_covar=1e-6)
    assert_matches_reference(model, parameters, lower_bounds, prior_type, RTOL_REFERENCE)


@pytest.mark.parametrize("chunk_size", [None, 64], ids=["default", "blocks64"],
                         indirect=True)
@parametrize_priors
@parametrize_types
def test_weighted_parity_with_reference(rng, seed, covariance_type, prior_type,
                                        chunk_size):
    """A weighted fit is the oracle's weighted variational loop (scikit-learn's has no
    sample_weight): the start is KMeans's labels with the weights (the default
    'kmeans' start), the default priors the weighted mean and covariance. The
    weights (mean about 7.8, not in [1, 2), so that rescaled weights, as
    GaussianMixture rescales them, would give another posterior) include zeros:
    rows left out."""
    X = make_blobs(rng)
    weights = WEIGHT_SCALE * rng.uniform(0.1, 3.0, size=len(X))
    weights[::17] = 0.0
    model = fit_quietly(BayesianGaussianMixture(
        n_components=5, covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type, max_iter=N_ITER, tol=0.0,
        random_state=seed, chunk_size=chunk_size), X, sample_weight=weights)
    assert model.n_iter_ == N_ITER
    labels = KMeans(n_clusters=5, n_init=1, random_state=seed).fit(
        X, sample_weight=weights).labels_
    priors = reference.variational_priors(X, 5, covariance_type, sample_weight=weights)
    parameters, lower_bounds = reference.variational_em(
        X, np.eye(5)[labels], N_ITER, priors, covariance_type, prior_type,
        reg_covar=1e-6, sample_weight=weights)
    assert_matches_reference(model, parameters, lower_bounds, prior_type, RTOL_REFERENCE)
    assert_close(model.mean_prior_, priors.mean, RTOL_REFERENCE, "mean_prior_")
    assert_close(model.covariance_prior_, priors.covariance, RTOL_REFERENCE,
                 "covariance_prior_")


@pytest.mark.parametrize("init_params", INIT_PARAMS)
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_parity_with_sklearn_for_every_initialisation_and_restarts(
    rng, seed, init_params, covariance_type
):
    X = make_blobs(rng, n_per_component=40)
    params = dict(n_components=4, covariance_type=covariance_type, init_params=init_params,
                  max_iter=5, tol=0.0, n_init=2, random_state=seed)
    model = fit_quietly(BayesianGaussianMixture(**params), X)
    expected = fit_quietly(SklearnBayesianGaussianMixture(**params), X)
    assert_same_posterior(model, expected, RTOL_SKLEARN)


@parametrize_priors
@parametrize_types
def test_given_priors_are_used_as_sklearn_uses_them(rng, seed, covariance_type, prior_type):
    X = make_blobs(rng, n_per_component=40)
    covariance_prior = {"full": np.diag([2.0, 1.0, 0.5]) + 0.1, "tied": 1.5 * np.eye(3),
                        "diag": np.array([2.0, 1.0, 0.5]), "spherical": 0.7}[covariance_type]
    params = dict(n_components=4, covariance_type=covariance_type,
                  weight_concentration_prior_type=prior_type, max_iter=4, tol=0.0,
                  random_state=seed, weight_concentration_prior=0.3,
                  mean_precision_prior=0.2, mean_prior=np.array([1.0, -1.0, 0.5]),
                  degrees_of_freedom_prior=3.5, covariance_prior=covariance_prior)
    model = fit_quietly(BayesianGaussianMixture(**params), X)
    expected = fit_quietly(SklearnBayesianGaussianMixture(**params), X)
    assert_same_posterior(model, expected, RTOL_SKLEARN)
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
                 "degrees_of_freedom_prior_", "covariance_prior_"):
        assert_close(getattr(model, name), getattr(expected, name), 1e-15, name)


@parametrize_types
def test_default_priors_are_sklearns(rng, covariance_type):
    X = make_blobs(rng, n_per_component=40)
    model = fit_quietly(BayesianGaussianMixture(n_components=2, max_iter=1,
                                                covariance_type=covariance_type), X)
    expected = fit_quietly(SklearnBayesianGaussianMixture(
        n_components=2, max_iter=1, covariance_type=covariance_type), X)
    for name in ("weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
                 "degrees_of_freedom_prior_", "covariance_prior_"):
        assert_close(getattr(model, name), getattr(expected, name), 1e-13, name)


@parametrize_types
def test_lower_bounds_are_floats(rng, covariance_type):
    """A float for every covariance type, its value scikit-learn's from the same
    start (scikit-learn 1.9.1 gives a one-element array for 'tied')."""
    X = make_blobs(rng, n_per_component=40)
    params = dict(n_components=2, max_iter=3, covariance_type=covariance_type,
                  random_state=0)
    model = fit_quietly(BayesianGaussianMixture(**params), X)
    expected = fit_quietly(SklearnBayesianGaussianMixture(**params), X)
    assert isinstance(model.lower_bound_, float)
    assert all(isinstance(bound, float) for bound in model.lower_bounds_)
    assert_close(np.array(model.lower_bounds_),
                 np.ravel(np.array(expected.lower_bounds_, dtype=float)), 1e-10,
                 "lower_bounds_")


@parametrize_priors
@parametrize_types
def test_float32_data_agrees_with_the_float64_oracle(rng, seed, covariance_type, prior_type):
    X = make_blobs(rng).astype(np.float32)
    params = dict(n_components=4, covariance_type=covariance_type,
                  weight_concentration_prior_type=prior_type, max_iter=N_ITER, tol=0.0,
                  random_state=seed)
    model = fit_quietly(BayesianGaussianMixture(**params), X)
    assert model.means_.dtype == np.float64
    X64 = X.astype(np.float64)
    priors = reference.variational_priors(X64, 4, covariance_type)
    parameters, lower_bounds = reference.variational_em(
        X64, kmeans_resp(X, 4, seed), N_ITER, priors, covariance_type, prior_type,
        reg_covar=1e-6)
    assert_matches_reference(model, parameters, lower_bounds, prior_type, RTOL_FLOAT32,
                             normwise=True)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_dirichlet_process_switches_off_unneeded_components_as_sklearn_does(
    rng, seed, covariance_type
):
    centres = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    X = np.vstack([c + rng.normal(size=(100, 2)) for c in centres])
    params = dict(n_components=10, covariance_type=covariance_type, max_iter=500,
                  random_state=seed)
    model = BayesianGaussianMixture(**params).fit(X)
    expected = SklearnBayesianGaussianMixture(**params).fit(X)
    assert model.converged_
    assert np.sum(model.weights_ < 1e-2) >= 7
    assert np.sum(model.weights_ > 0.25) == 3
    assert model.n_iter_ == expected.n_iter_
    assert_same_posterior(model, expected, RTOL_SKLEARN)


def test_lower_bound_never_decreases(rng, seed):
    X = make_blobs(rng, n_per_component=40)
    for covariance_type in COVARIANCE_TYPES:
        for prior_type in PRIOR_TYPES:
            model = fit_quietly(BayesianGaussianMixture(
                n_components=6, covariance_type=covariance_type, reg_covar=0.0,
                weight_concentration_prior_type=prior_type, max_iter=40, tol=0.0,
                random_state=seed), X)
            bounds = np.array(model.lower_bounds_)
            assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


# --------------------------------------------------------------------------
# sample weights


@parametrize_types
def test_integer_sample_weights_equal_repeated_rows(rng, covariance_type):
    X = make_blobs(rng, n_per_component=30)
    counts = rng.integers(0, 4, size=len(X))
    repeated = np.repeat(X, counts, axis=0)
    # the same start for both: the posterior of a zero-iteration fit on the repeated rows
    start = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                    max_iter=0, warm_start=True, random_state=0)
    start.fit(repeated)
    weighted, plain = copy.deepcopy(start), copy.deepcopy(start)
    for model in (weighted, plain):
        model.set_params(max_iter=5, tol=0.0)
    fit_quietly(weighted, X, sample_weight=counts)
    fit_quietly(plain, repeated)
    assert_same_posterior(weighted, plain, RTOL_EQUIVALENT)
    for name in ("mean_prior_", "covariance_prior_"):
        assert_close(getattr(weighted, name), getattr(plain, name), RTOL_EQUIVALENT, name)


def test_unit_sample_weights_equal_none(rng, seed):
    X = make_blobs(rng, n_per_component=30)
    params = dict(n_components=4, max_iter=5, tol=0.0, random_state=seed)
    ones = fit_quietly(BayesianGaussianMixture(**params), X, sample_weight=np.ones(len(X)))
    none = fit_quietly(BayesianGaussianMixture(**params), X)
    assert_identical_posterior(ones, none)


def test_sample_weights_scale_the_evidence(rng):
    """Unlike maximum likelihood, the posterior counts samples: weights of 2
    are the data twice (from the same k-means start, twice the counts)."""
    X = make_blobs(rng, n_per_component=30)
    params = dict(n_components=3, max_iter=0, random_state=0)
    doubled = BayesianGaussianMixture(**params).fit(X, sample_weight=np.full(len(X), 2.0))
    plain = BayesianGaussianMixture(**params).fit(X)
    assert_close(doubled.mean_precision_ - 1.0, 2.0 * (plain.mean_precision_ - 1.0), 1e-12,
                 "counts")


# --------------------------------------------------------------------------
# determinism, warm start, predictions


def test_one_and_two_threads_give_identical_bits(rng, seed, monkeypatch):
    X = make_blobs(rng, n_per_component=200)
    # the block kernels, over blocks of 64 rows on two threads (small data takes
    # the serial rows' kernels whatever chunk_size says)
    monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", -1)
    for covariance_type in COVARIANCE_TYPES:
        params = dict(n_components=5, covariance_type=covariance_type, max_iter=5, tol=0.0,
                      random_state=seed, chunk_size=64)
        one = fit_quietly(BayesianGaussianMixture(n_threads=1, **params), X)
        two = fit_quietly(BayesianGaussianMixture(n_threads=2, **params), X)
        assert_identical_posterior(one, two)
        assert_array_equal(one.predict_proba(X), two.predict_proba(X))


def test_warm_start_continues_where_the_last_fit_stopped(rng, seed):
    X = make_blobs(rng, n_per_component=40)
    params = dict(n_components=4, tol=0.0, random_state=seed)
    straight = fit_quietly(BayesianGaussianMixture(max_iter=5, **params), X)
    warm = BayesianGaussianMixture(max_iter=3, warm_start=True, **params)
    fit_quietly(warm, X)
    warm.set_params(max_iter=2)
    fit_quietly(warm, X)
    for name in POSTERIOR[:-1]:
        assert_array_equal(getattr(warm, name), getattr(straight, name), err_msg=name)
    assert warm.lower_bounds_ == straight.lower_bounds_[3:]


def test_fit_predict_equals_fit_then_predict(rng, seed):
    X = make_blobs(rng, n_per_component=40)
    for covariance_type in COVARIANCE_TYPES:
        params = dict(n_components=5, covariance_type=covariance_type, max_iter=3,
                      random_state=seed)
        labels = fit_quietly(BayesianGaussianMixture(**params), X).predict(X)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            assert_array_equal(BayesianGaussianMixture(**params).fit_predict(X), labels)
        model = fit_quietly(BayesianGaussianMixture(**params), X)
        resp = model.predict_proba(X)
        np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert_array_equal(resp.argmax(axis=1), labels)
        assert model.score(X) == pytest.approx(model.score_samples(X).mean(), rel=1e-15)


def test_max_iter_zero_keeps_the_start_as_sklearn_does(rng, seed):
    X = make_blobs(rng, n_per_component=40)
    params = dict(n_components=4, max_iter=0, random_state=seed)
    model = BayesianGaussianMixture(**params).fit(X)
    expected = SklearnBayesianGaussianMixture(**params).fit(X)
    assert model.n_iter_ == 0 and model.lower_bound_ == -np.inf and not model.converged_
    for name in POSTERIOR[:-1]:
        assert_close(getattr(model, name), getattr(expected, name), RTOL_SKLEARN, name)


def test_sample_draws_from_the_fitted_mixture(rng, seed):
    X = make_blobs(rng, n_per_component=40)
    model = fit_quietly(BayesianGaussianMixture(n_components=3, random_state=seed), X)
    samples, labels = model.sample(500)
    assert samples.shape == (500, 3) and labels.shape == (500,)
    expected = SklearnBayesianGaussianMixture(n_components=3, random_state=seed)
    for name in ("weights_", "means_", "covariances_"):
        setattr(expected, name, getattr(model, name))
    expected.covariance_type = model.covariance_type
    expected_samples, expected_labels = SklearnBayesianGaussianMixture.sample(expected, 500)
    assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(samples, expected_samples, rtol=1e-12)


def test_verbose_prints_initialisations_and_iterations(rng, capsys):
    X = make_blobs(rng, n_per_component=20)
    fit_quietly(BayesianGaussianMixture(n_components=2, max_iter=4, tol=0.0, verbose=2,
                                        verbose_interval=2), X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 4" in out and "ll change" in out
    assert "did not converge" in out
    # a bool, as scikit-learn's "verbose" constraint takes it: True prints as 1 does
    fit_quietly(BayesianGaussianMixture(n_components=2, max_iter=4, tol=0.0,
                                        verbose=True, verbose_interval=2), X)
    out = capsys.readouterr().out
    assert "Initialization 0" in out and "Iteration 4" in out
    assert "ll change" not in out


# --------------------------------------------------------------------------
# bad and degenerate input


BAD = [
    (dict(weight_concentration_prior_type="dirichlet"), ValueError,
     "weight_concentration_prior_type must be one of"),
    (dict(weight_concentration_prior=0.0), ValueError,
     "weight_concentration_prior must be None or a finite number > 0, got 0.0"),
    (dict(mean_precision_prior=-1.0), ValueError, "mean_precision_prior must be"),
    (dict(mean_precision_prior="1"), TypeError, "mean_precision_prior must be a real number"),
    (dict(degrees_of_freedom_prior=1.5), ValueError,
     "The parameter 'degrees_of_freedom_prior' should be greater than 2, but got 1.500"),
    (dict(mean_prior=np.zeros(2)), ValueError, "mean_prior must have shape (3,), got (2,)"),
    (dict(mean_prior=[0.0, np.nan, 0.0]), ValueError, "mean_prior contains NaN"),
    (dict(covariance_prior=np.eye(2)), ValueError,
     "covariance_prior must have shape (3, 3), got (2, 2)"),
    (dict(covariance_prior=-np.eye(3)), ValueError, "full covariance_prior is not positive"),
    (dict(covariance_prior=np.triu(np.ones((3, 3)))), ValueError,
     "full covariance_prior is not symmetric"),
    (dict(covariance_type="diag", covariance_prior=np.array([1.0, 0.0, 1.0])), ValueError,
     "diag covariance_prior must be positive"),
    (dict(covariance_type="spherical", covariance_prior=np.ones(3)), ValueError,
     "spherical covariance_prior must be a single positive number"),
    (dict(covariance_type="spherical", covariance_prior=-1.0), ValueError,
     "spherical covariance_prior must be a finite number > 0"),
    (dict(n_components=0), ValueError, "n_components must be >= 1, got 0"),
    (dict(covariance_type="ful"), ValueError, "covariance_type must be one of"),
    (dict(tol=-1.0), ValueError, "tol must be a finite number >= 0.0"),
    (dict(n_components=50), ValueError, "n_components = 50, n_samples = 40"),
    (dict(warm_start="yes"), TypeError, "warm_start must be True or False"),
]


@pytest.mark.parametrize("params,error,fragment", BAD)
def test_bad_parameters_raise_a_clear_error(rng, params, error, fragment):
    X = rng.normal(size=(40, 3))
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        BayesianGaussianMixture(**params).fit(X)


@pytest.mark.parametrize(("fitted_type", "new_type"),
                         [("diag", "tied"), ("tied", "diag"), ("full", "spherical")])
def test_a_changed_covariance_type_is_a_clear_error(rng, fitted_type, new_type):
    """As GaussianMixture's (test_mixture.py): set_params(covariance_type=...) after a
    fit, then inference or a warm start, must not hand the kernels the fitted type's
    precision factors as the new type's (3 components of 4 features)."""
    X = make_blobs(rng, n_features=4)
    model = fit_quietly(BayesianGaussianMixture(
        n_components=3, covariance_type=fitted_type, max_iter=5, random_state=0), X)
    labels = model.predict(X)
    model.set_params(covariance_type=new_type)
    match = f"covariance_type='{new_type}' with 3 components of 4 features needs"
    for method in (model.predict, model.predict_proba, model.score_samples):
        with pytest.raises(ValueError, match=match):
            method(X)
    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match=match):
        model.fit(X)
    model.set_params(covariance_type=fitted_type)
    assert_array_equal(model.predict(X), labels)


def test_bad_data_and_weights_raise_a_clear_error(rng):
    X = rng.normal(size=(40, 3))
    model = BayesianGaussianMixture(n_components=2)
    with pytest.raises(ValueError, match="contains NaN at row 3, column 1"):
        model.fit(np.where(np.arange(120).reshape(40, 3) == 10, np.nan, X))
    with pytest.raises(ValueError, match="non-negative"):
        model.fit(X, sample_weight=-np.ones(40))
    with pytest.raises(ValueError, match="needs a total weight above 1"):
        model.fit(X, sample_weight=np.full(40, 0.02))
    fit_quietly(BayesianGaussianMixture(n_components=2, covariance_prior=np.eye(3)), X,
                sample_weight=np.full(40, 0.02))  # fine with a given covariance_prior
    with pytest.raises(NotFittedError):
        model.predict(X)
    fit_quietly(model, X)
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(X[:, :2])
    warm = BayesianGaussianMixture(n_components=2, warm_start=True)
    fit_quietly(warm, X)
    means, labels = warm.means_.copy(), warm.predict(X)
    with pytest.raises(ValueError, match="warm_start=True continues the previous fit"):
        warm.fit(X[:, :2])
    with pytest.raises(ValueError, match="non-negative"):
        warm.fit(X[:, :2], sample_weight=-np.ones(40))
    # a failed fit leaves the model as it was: not the new width with the old means
    assert warm.n_features_in_ == 3
    assert_array_equal(warm.means_, means)
    assert_array_equal(warm.predict(X), labels)
    with pytest.raises(ValueError, match="X has 2 features"):
        warm.predict(X[:, :2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_caller_arrays_are_not_modified(rng, dtype):
    X = np.asfortranarray(make_blobs(rng, n_per_component=20).astype(dtype))
    sample_weight = rng.uniform(0.5, 2.0, size=len(X))
    mean_prior = np.zeros(3)
    covariance_prior = np.eye(3)
    originals = [a.copy() for a in (X, sample_weight, mean_prior, covariance_prior)]
    model = fit_quietly(BayesianGaussianMixture(
        n_components=3, mean_prior=mean_prior, covariance_prior=covariance_prior,
        max_iter=3), X, sample_weight=sample_weight)
    model.predict(X), model.predict_proba(X), model.score_samples(X)
    arrays = (X, sample_weight, mean_prior, covariance_prior)
    for array, original in zip(arrays, originals, strict=True):
        assert_array_equal(array, original)
        assert array.dtype == original.dtype


DEGENERATE = {
    "identical rows": lambda rng: np.ones((30, 3)),
    "constant column": lambda rng: np.c_[rng.normal(size=(30, 2)), np.full(30, 5.0)],
    "duplicated rows": lambda rng: np.repeat(rng.normal(size=(5, 3)), 6, axis=0),
    "fewer rows than features": lambda rng: rng.normal(size=(6, 10)),
    "offset by 1e6": lambda rng: make_blobs(rng, n_per_component=10) + 1e6,
    "an outlier": lambda rng: np.r_[rng.normal(size=(29, 3)), [[1e4, -1e4, 1e4]]],
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@parametrize_types
def test_degenerate_data_gives_a_finite_model(rng, case, covariance_type):
    X = DEGENERATE[case](rng)
    model = fit_quietly(BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                                max_iter=20, random_state=0), X)
    assert all_finite(model)
    np.testing.assert_allclose(model.weights_.sum(), 1.0, rtol=1e-12)
    assert np.all(np.isfinite(model.predict_proba(X)))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("dtype,exponent", [(np.float32, 60), (np.float32, -60),
                                            (np.float64, 450), (np.float64, -450)])
def test_extreme_scales_are_fitted_at_unit_scale(rng, dtype, exponent, covariance_type):
    """Data beyond 2**+-40 (float32) or 2**+-400 (float64) is fitted as X * 2**-e:
    the fit of X * 2**exponent is the fit of X, scaled. The lower bound moves by the
    Wishart terms' log determinants, D e log 2 nu_k for each component ('tied': K
    times the one nu)."""
    X = make_blobs(rng, n_per_component=30).astype(dtype)
    params = dict(n_components=3, max_iter=5, tol=0.0, random_state=0, reg_covar=0.0,
                  covariance_type=covariance_type)
    unit = fit_quietly(BayesianGaussianMixture(**params), X)
    scaled = fit_quietly(BayesianGaussianMixture(**params), np.ldexp(X, exponent))
    assert all_finite(scaled)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    assert_close(scaled.weights_, unit.weights_, rtol, "weights_")
    assert_close(np.ldexp(scaled.means_, -exponent), unit.means_, rtol, "means_", True)
    assert_close(np.ldexp(scaled.covariances_, -2 * exponent), unit.covariances_, rtol,
                 "covariances_", True)
    nu = np.broadcast_to(unit.degrees_of_freedom_, (3,))  # 'tied': one for all three
    offset = 3 * exponent * np.log(2) * np.sum(nu)  # D = 3 features
    assert_close(np.array(scaled.lower_bounds_) + offset, unit.lower_bounds_, rtol,
                 "lower_bounds_")


@pytest.mark.parametrize("exponent", [600, -600])
def test_unrepresentable_models_raise_a_clear_error(rng, exponent):
    X = np.ldexp(make_blobs(rng, n_per_component=30), exponent)
    with pytest.raises(ValueError, match="X's spread is too extreme for float64"):
        fit_quietly(BayesianGaussianMixture(n_components=3, reg_covar=0.0), X)


@pytest.mark.parametrize("degrees_of_freedom_prior", [1e307, 1e308])
def test_a_prior_near_the_largest_float64_raises_naming_the_priors(
        rng, degrees_of_freedom_prior):
    """The lower bound is inf (1e307) or NaN (1e308) from the first iteration, in
    scikit-learn too (which returns that model); fastem raises and says that a prior
    of extreme size can cause it. 1e300 fits, as in scikit-learn."""
    X = make_blobs(rng, n_per_component=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # and none on the way
        with pytest.raises(ValueError, match=r"lower bound is (inf|nan) at iteration 1"
                                             r".*degrees_of_freedom_prior"):
            fit_quietly(BayesianGaussianMixture(
                n_components=3, degrees_of_freedom_prior=degrees_of_freedom_prior), X)
    model = fit_quietly(BayesianGaussianMixture(
        n_components=3, degrees_of_freedom_prior=1e300), X)
    assert all_finite(model) and np.isfinite(model.lower_bound_)


@pytest.mark.parametrize("case", ["identical rows, reg_covar=0", "an outlier of 1e8"])
def test_an_impossible_fit_raises_instead_of_returning_nan(rng, case):
    """Identical rows with no regularisation: every covariance is zero. An outlier
    1e8 away: the default covariance prior (the data's covariance) is numerically
    singular (condition ~1e16; scikit-learn stops too)."""
    if case.startswith("identical"):
        X, params = np.ones((20, 2)), dict(reg_covar=0.0)
    else:
        X, params = np.r_[rng.normal(size=(29, 3)), [[1e8, -1e8, 1e8]]], {}
    with pytest.raises(ValueError, match="Every initialization of the variational fit"):
        BayesianGaussianMixture(n_components=4, random_state=0, **params).fit(X)


# --------------------------------------------------------------------------
# the benchmark's fits (benchmarks/compare_bayesian.py) give scikit-learn's answer


def load_compare_bayesian():
    return load_benchmark_module("compare_bayesian")


@pytest.mark.parametrize("name", ["P1", "P5"])
@parametrize_priors
def test_benchmarked_fits_agree_with_sklearn(name, prior_type):
    compare_bayesian = load_compare_bayesian()
    problem = compare_bayesian.problems.make_problem(name, 1000)
    fits = compare_bayesian.implementations(prior_type)
    ours, theirs = fits["fastem"](problem, 3), fits["sklearn"](problem, 3)
    assert ours == pytest.approx(theirs, rel=RTOL_SKLEARN, abs=0)


# --------------------------------------------------------------------------
# scikit-learn's estimator checks


@parametrize_with_checks([BayesianGaussianMixture()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
