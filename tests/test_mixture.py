"""Tests of the estimator :class:`fastem.GaussianMixture`.

Parity with scikit-learn 1.9 and with the oracle :mod:`fastem.reference` from
the same start, float32 against float64, the EM invariants, memory layouts,
the singular-covariance fallback seen from the estimator, sample weights,
scikit-learn's estimator checks, scores, sampling, warm start and messages.
Driver internals are tested in ``test_driver.py``.
"""

import pickle
import re
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastem import load_model, reference, save_model
from fastem.em import driver as _driver
from fastem.kernels import estep as _kernels_estep
from fastem.kernels.threads import current_threads, max_threads
from fastem.mixture import (
    GaussianMixture,
    SingularCovarianceError,
    SingularCovarianceWarning,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")

# Tolerances. Each is relative; absolute tolerances are this times the largest
# magnitude of the expected array (off-diagonal covariances can be ~0).
RTOL_SKLEARN = 1e-9  # float64 parity with scikit-learn from the same start
RTOL_REFERENCE = 1e-10  # float64 parity with fastem.reference
RTOL_FLOAT32 = 1e-4  # float32 data against float64 from the same start
RTOL_EQUIVALENT = 1e-9  # sample_weight equivalences (same start, other summation)
# The same computation on the same values along two routes (a warm start in two
# fits vs one longer fit, restarts in one fit vs one fit each).
RTOL_SAME_ARITHMETIC = 1e-12
ATOL_RESP_SUM = 1e-12  # responsibilities of one sample sum to one
# Data offset by OFFSET: each coordinate carries ~OFFSET * eps = 1e-10 of rounding,
# so means agree to OFFSET_ATOL_MEANS (1e-13 relative to the offset) and the
# covariances and lower bound, computed around the current means, to OFFSET_RTOL.
OFFSET = 1e6
OFFSET_ATOL_MEANS = 1e-7
OFFSET_RTOL = 1e-8
# EM with reg_covar = 0 may only lose rounding error between iterations.
RTOL_MONOTONE = 1e-12

N_ITER = 20  # EM iterations of the fixed-length comparisons (tol = 0)
SMALL_WORK_LIMIT = _driver.SMALL_WORK_LIMIT  # as imported (fixtures change it)
# chunk_size=None runs the tests' small problems as small data (EM inside one
# compiled call, over the rows' kernels); "blocks64" runs them on the tiled block
# kernels in blocks of 64 rows (threads over blocks, Python between iterations),
# which data this small would never reach: the chunk_size fixture lowers
# SMALL_WORK_LIMIT for it. Both paths are compared.
CHUNK_SIZES = pytest.mark.parametrize(
    "chunk_size", [None, 64], ids=["default", "blocks64"], indirect=True
)
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
NOTEBOOK_X = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])

# Known bugs and deviations, marked xfail(strict=True) where they are tested.
SKLEARN_TIED_QUIRK_REASON = (
    "DEVIATION: scikit-learn's tied covariance uses X.T @ X over all rows, ignoring "
    "resp, so from the one-hot-at-K-points start of k-means++/random_from_data it is "
    "not the responsibility-weighted estimate fastem computes (see "
    "test_tied_start_from_seed_points_is_the_weighted_estimate)"
)


# --------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def chunk_size(request, monkeypatch):
    """CHUNK_SIZES's chunk_size; with one, every shape takes the block kernels."""
    if request.param is not None:
        monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", -1)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def seed(rng):
    """An integer random_state for scikit-learn and fastem, drawn from the fixture."""
    return int(rng.integers(2**31 - 1))


def make_blobs(rng, n_components=3, n_features=3, n_per_component=200, spread=5.0):
    """Well-separated anisotropic Gaussian clusters, centred near the origin."""
    centres = rng.normal(scale=spread, size=(n_components, n_features))
    centres -= centres.mean(axis=0)
    blocks = []
    for centre in centres:
        mixing = np.eye(n_features) + 0.3 * rng.normal(size=(n_features, n_features))
        blocks.append(rng.normal(size=(n_per_component, n_features)) @ mixing + centre)
    X = np.concatenate(blocks)
    return X[rng.permutation(len(X))]


def explicit_start(rng, X, n_components, covariance_type):
    """weights_init, means_init, precisions_init drawn around the data."""
    n_samples = X.shape[0]
    weights = rng.dirichlet(np.full(n_components, 5.0))
    weights /= weights.sum()
    means = X[rng.choice(n_samples, n_components, replace=False)]
    means = means + 0.1 * rng.normal(size=means.shape)
    covariance = np.cov(X.T)
    scales = rng.uniform(0.5, 1.5, size=n_components)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(covariance * s) for s in scales])
    elif covariance_type == "tied":
        precisions = np.linalg.inv(covariance * scales[0])
    elif covariance_type == "diag":
        precisions = 1.0 / (np.outer(scales, np.diag(covariance)))
    else:
        precisions = 1.0 / (scales * np.diag(covariance).mean())
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def covariances_of(precisions, covariance_type):
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions)
    return 1.0 / precisions


def fit_quietly(estimator, X, singular=False, **fit_params):
    """Fit, ignoring the ConvergenceWarning of a deliberately fixed iteration count.

    With ``singular=True`` also the SingularCovarianceWarning of a repair that the
    test provokes on purpose (and checks through ``singular_events_``).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if singular:
            warnings.simplefilter("ignore", SingularCovarianceWarning)
        return estimator.fit(X, **fit_params)


def assert_close(actual, expected, rtol, name=""):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, name
    atol = rtol * np.max(np.abs(expected)) if expected.size else 0.0
    assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


def assert_identical_fit(actual, expected):
    for name in (*FITTED, "lower_bounds_"):
        assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
    assert actual.lower_bound_ == expected.lower_bound_


def assert_same_fit(actual, expected, rtol, with_lower_bounds=True):
    for name in FITTED:
        assert_close(getattr(actual, name), getattr(expected, name), rtol, name)
    if with_lower_bounds:
        assert_close(actual.lower_bound_, expected.lower_bound_, rtol, "lower_bound_")
        assert_close(
            actual.lower_bounds_, expected.lower_bounds_, rtol, "lower_bounds_"
        )


def traced_peak(function, *args):
    """The peak of tracemalloc (bytes) during ``function(*args)``."""
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def all_finite(model):
    return all(
        np.all(np.isfinite(np.asarray(getattr(model, name), dtype=np.float64)))
        for name in (*FITTED, "lower_bound_", "lower_bounds_")
    )


def as_sklearn(model, **params):
    """A fitted scikit-learn GaussianMixture holding fastem's fitted parameters."""
    other = SklearnGaussianMixture(
        n_components=model.n_components, covariance_type=model.covariance_type, **params
    )
    for name in (*FITTED, "converged_", "n_iter_", "lower_bound_", "n_features_in_"):
        setattr(other, name, getattr(model, name))
    return other


# --------------------------------------------------------------------------
# parity with scikit-learn and with the oracle


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [2, 3, 17])
def test_parity_with_sklearn_from_explicit_start(rng, covariance_type, chunk_size, n_features):
    # Two features have their own one-pass statistics; 17 runs the eight-feature
    # passes of the diagonal kernel and the 4x4 blocks of the dense one.
    X = make_blobs(rng, n_features=n_features)
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=N_ITER,
        **explicit_start(rng, X, 3, covariance_type),
    )
    ours = fit_quietly(GaussianMixture(chunk_size=chunk_size, **params), X)
    theirs = fit_quietly(SklearnGaussianMixture(**params), X)
    assert_same_fit(ours, theirs, RTOL_SKLEARN)
    assert len(ours.lower_bounds_) == ours.n_iter_ == theirs.n_iter_ == N_ITER
    assert not ours.converged_ and not theirs.converged_
    assert_array_equal(ours.predict(X), theirs.predict(X))


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [8, 17])
def test_parity_with_sklearn_on_separated_clusters(rng, covariance_type, chunk_size,
                                                   n_features):
    """17 (or 8) features, 16 clusters ~100 sigma or more apart, shuffled: after the
    first iterations most responsibilities are exactly zero, and in most tiles a
    component has at most SPARSE_TILE points with non-zero responsibility: the
    dense kernel ('full', 'tied') takes its gathered (sparse) path for most tiles
    and components (see _kernels_estep.SPARSE_TILE; with 8 features its compact
    tile, COMPACT_TILE), and so does the diagonal one ('diag', 'spherical'; at
    most SPARSE_DIAGONAL_TILE points). (scikit-learn's responsibilities > 0
    count at least the points that fastem's kernels, which flush values below
    _negligible_weight to zero, gather.)"""
    n_components = 16
    centres = rng.normal(scale=30.0, size=(n_components, n_features))
    labels = rng.permutation(np.repeat(np.arange(n_components), 64))
    scales = rng.uniform(0.5, 2.0, size=n_features)
    X = centres[labels] + scales * rng.normal(size=(labels.size, n_features))
    start = explicit_start(rng, X, n_components, covariance_type)
    # each component starts near its own cluster (none is left empty or split)
    start["means_init"] = centres + 0.5 * rng.normal(size=centres.shape)
    params = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=N_ITER,
        **start,
    )
    ours = fit_quietly(GaussianMixture(chunk_size=chunk_size, **params), X)
    theirs = fit_quietly(SklearnGaussianMixture(**params), X)
    # the path is taken: points with non-zero responsibility per tile and component
    tile = _kernels_estep.statistics_tile(X)
    nonzero = (theirs.predict_proba(X) > 0)[: len(X) // tile * tile]
    per_tile = nonzero.reshape(-1, tile, n_components).sum(axis=1)
    assert np.mean((per_tile > 0) & (per_tile <= _kernels_estep.SPARSE_TILE)) > 0.5
    assert_same_fit(ours, theirs, RTOL_SKLEARN)
    assert_array_equal(ours.predict(X), theirs.predict(X))


SKLEARN_TIED_QUIRK = pytest.mark.xfail(
    strict=True,
    reason=SKLEARN_TIED_QUIRK_REASON,
)


def init_cases():
    for init_params in INIT_PARAMS:
        for covariance_type in COVARIANCE_TYPES:
            quirk = covariance_type == "tied" and init_params in (
                "k-means++",
                "random_from_data",
            )
            yield pytest.param(
                init_params,
                covariance_type,
                marks=[SKLEARN_TIED_QUIRK] if quirk else [],
                id=f"{init_params}-{covariance_type}",
            )


@pytest.mark.parametrize(("init_params", "covariance_type"), list(init_cases()))
@pytest.mark.parametrize("max_iter", [0, 15])
def test_parity_with_sklearn_from_its_initialisations(
    rng, seed, covariance_type, init_params, max_iter
):
    """The same initialisations (max_iter=0) and fits from the same random stream.

    Two successive single-restart fits share one RandomState, so the second one
    also checks that fastem draws exactly as much randomness per restart as
    scikit-learn. (One fit with n_init=2 is not compared: restarts that reach the
    same optimum tie to rounding, and either may be kept.) reg_covar=1e-2: the
    one-point starts of k-means++/random_from_data have variance reg_covar
    exactly, and scikit-learn's E[x^2] - mean^2 form adds ~1e-14 of rounding.
    """
    X = make_blobs(rng, n_per_component=100)
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        tol=0.0,
        max_iter=max_iter,
        reg_covar=1e-2,
    )
    our_stream, their_stream = np.random.RandomState(seed), np.random.RandomState(seed)
    for _ in range(2):
        ours = fit_quietly(GaussianMixture(random_state=our_stream, **params), X)
        theirs = fit_quietly(
            SklearnGaussianMixture(random_state=their_stream, **params), X
        )
        if max_iter == 0:
            assert ours.lower_bound_ == theirs.lower_bound_ == -np.inf
            assert ours.n_iter_ == theirs.n_iter_ == 0
        assert_same_fit(ours, theirs, RTOL_SKLEARN, with_lower_bounds=max_iter > 0)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_tied_start_from_seed_points_is_the_weighted_estimate(rng, seed, init_params):
    """The initial tied covariance is the m-step of the one-hot start."""
    X = make_blobs(rng, n_per_component=100)
    model = GaussianMixture(
        3,
        covariance_type="tied",
        init_params=init_params,
        max_iter=0,
        random_state=seed,
    ).fit(X)
    # seed points: the rows nearest to the initial means (equal up to 10 eps)
    rows = [int(np.argmin(np.sum((X - mean) ** 2, axis=1))) for mean in model.means_]
    assert_close(X[rows], model.means_, RTOL_REFERENCE)
    resp = np.zeros((len(X), 3))
    resp[rows, np.arange(3)] = 1.0
    _, means, covariance = reference.m_step(X, resp, "tied", reg_covar=model.reg_covar)
    assert_close(model.means_, means, RTOL_REFERENCE)
    assert_close(model.covariances_, covariance, RTOL_REFERENCE)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parity_with_sklearn_when_only_means_are_given(rng, seed, covariance_type):
    """Weights and covariances come from k-means, the means from means_init."""
    X = make_blobs(rng, n_per_component=100)
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=10,
        random_state=seed,
        means_init=explicit_start(rng, X, 3, covariance_type)["means_init"],
    )
    ours = fit_quietly(GaussianMixture(**params), X)
    theirs = fit_quietly(SklearnGaussianMixture(**params), X)
    assert_same_fit(ours, theirs, RTOL_SKLEARN)


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weight"])
def test_parity_with_reference_em(rng, covariance_type, weighted, chunk_size):
    X = make_blobs(rng, n_per_component=150)
    start = explicit_start(rng, X, 3, covariance_type)
    sample_weight = rng.uniform(0.0, 2.0, size=len(X)) if weighted else None
    reg_covar = 1e-6
    model = fit_quietly(
        GaussianMixture(
            3,
            covariance_type=covariance_type,
            tol=0.0,
            max_iter=N_ITER,
            reg_covar=reg_covar,
            chunk_size=chunk_size,
            **start,
        ),
        X,
        sample_weight=sample_weight,
    )
    weights, means, covariances, log_likelihoods = reference.em(
        X,
        start["weights_init"],
        start["means_init"],
        covariances_of(start["precisions_init"], covariance_type),
        covariance_type,
        n_iter=N_ITER,
        reg_covar=reg_covar,
        sample_weight=sample_weight,
    )
    assert_close(model.weights_, weights, RTOL_REFERENCE, "weights_")
    assert_close(model.means_, means, RTOL_REFERENCE, "means_")
    assert_close(model.covariances_, covariances, RTOL_REFERENCE, "covariances_")
    assert_close(
        model.precisions_cholesky_,
        reference.precisions_cholesky(covariances, covariance_type),
        RTOL_REFERENCE,
        "precisions_cholesky_",
    )
    assert_close(model.lower_bounds_, log_likelihoods, RTOL_REFERENCE, "lower_bounds_")
    assert_close(
        model.lower_bound_, log_likelihoods[-1], RTOL_REFERENCE, "lower_bound_"
    )


# --------------------------------------------------------------------------
# float32


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_matches_float64_fit(rng, covariance_type, chunk_size):
    X32 = make_blobs(rng).astype(np.float32)
    untouched = X32.copy()
    X64 = X32.astype(np.float64)  # the same values, so only the arithmetic differs
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=N_ITER,
        chunk_size=chunk_size,
        **explicit_start(rng, X64, 3, covariance_type),
    )
    single = fit_quietly(GaussianMixture(**params), X32)
    double = fit_quietly(GaussianMixture(**params), X64)
    assert_same_fit(single, double, RTOL_FLOAT32)
    # and scikit-learn on the same float32 data from the same start
    del params["chunk_size"]
    theirs = fit_quietly(SklearnGaussianMixture(**params), X32)
    assert_same_fit(single, theirs, RTOL_FLOAT32)
    assert X32.dtype == np.float32 and X32.tobytes() == untouched.tobytes()
    assert_array_equal(single.predict(X32), double.predict(X64))
    assert_close(single.score_samples(X32), double.score_samples(X64), RTOL_FLOAT32)


def test_float32_data_is_not_copied_to_float64(rng):
    """No float64 copy of the whole data is allocated (by numpy) during fit."""
    n_samples, n_features = 100_000, 16
    X32 = rng.normal(size=(n_samples, n_features)).astype(np.float32)
    X32[: n_samples // 2] += 6.0
    start = explicit_start(rng, X32[:1000].astype(np.float64), 2, "full")
    model = GaussianMixture(2, max_iter=3, tol=0.0, **start)
    fit_quietly(model, X32)  # compile (numba's compiler allocates) before measuring
    peak = traced_peak(fit_quietly, model, X32)
    assert peak < n_samples * n_features * 8, f"peak {peak} bytes"
    assert all_finite(model)


# --------------------------------------------------------------------------
# EM invariants


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases_without_regularisation(
    rng, seed, covariance_type, chunk_size
):
    X = make_blobs(rng, n_components=4, spread=3.0)
    model = fit_quietly(
        GaussianMixture(
            4,
            covariance_type=covariance_type,
            reg_covar=0.0,
            tol=0.0,
            max_iter=40,
            init_params="random",
            random_state=seed,
            chunk_size=chunk_size,
        ),
        X,
    )
    assert model.singular_events_ == []  # plain EM, no repair in the way
    lower_bounds = np.asarray(model.lower_bounds_)
    assert len(lower_bounds) == 40
    steps = np.diff(lower_bounds)
    assert np.all(steps >= -RTOL_MONOTONE * np.abs(lower_bounds[1:])), steps.min()
    assert lower_bounds[-1] > lower_bounds[0]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_sum_to_one(rng, seed, covariance_type):
    X = make_blobs(rng)
    model = fit_quietly(
        GaussianMixture(3, covariance_type=covariance_type, random_state=seed), X
    )
    far = 50.0 * X + 1e3  # far from every component: log-sum-exp must not underflow
    for data in (X, far):
        resp = model.predict_proba(data)
        assert np.all(np.isfinite(resp)) and np.all(resp >= 0.0)
        assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    _, log_resp = reference.e_step(
        X, model.weights_, model.means_, model.covariances_, covariance_type
    )
    assert_allclose(
        model.predict_proba(X), np.exp(log_resp), rtol=0, atol=RTOL_REFERENCE
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_equals_fit_then_predict(rng, seed, covariance_type):
    X = make_blobs(rng, n_components=4, spread=2.0)
    params = dict(
        n_components=4, covariance_type=covariance_type, max_iter=3, random_state=seed
    )  # stopped early: the final E-step matters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n_init in (1, 2):
            labels = GaussianMixture(n_init=n_init, **params).fit(X).predict(X)
            fit_predict_labels = GaussianMixture(n_init=n_init, **params).fit_predict(X)
            assert_array_equal(fit_predict_labels, labels)
        sklearn_labels = SklearnGaussianMixture(**params).fit_predict(X)
        single_labels = GaussianMixture(**params).fit_predict(X)
    assert_array_equal(single_labels, sklearn_labels)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_best_of_n_init_is_at_least_every_single_restart(rng, seed, covariance_type):
    """Restart i of an n_init fit starts from the i-th draw of the same RandomState."""
    X = make_blobs(rng, n_components=5, spread=3.0, n_per_component=60)
    params = dict(
        n_components=5,
        covariance_type=covariance_type,
        init_params="random",
        max_iter=30,
    )
    stream = np.random.RandomState(seed)
    singles = [
        fit_quietly(GaussianMixture(random_state=stream, **params), X) for _ in range(5)
    ]
    best = fit_quietly(
        GaussianMixture(n_init=5, random_state=np.random.RandomState(seed), **params), X
    )
    bounds = np.array([single.lower_bound_ for single in singles])
    assert np.ptp(bounds) > 1e-3, "the restarts should reach different optima"
    assert np.all(best.lower_bound_ >= bounds)
    # the kept restart is (one of) the best single restarts, parameters and all
    tied_best = [
        single
        for single, bound in zip(singles, bounds, strict=True)
        if bound >= bounds.max() - RTOL_SAME_ARITHMETIC * abs(bounds.max())
    ]
    assert_close(best.lower_bound_, bounds.max(), RTOL_SAME_ARITHMETIC)
    assert any(
        np.allclose(best.means_, single.means_, rtol=RTOL_SAME_ARITHMETIC, atol=0)
        for single in tied_best
    )


@pytest.mark.skipif(
    max_threads() < 2,
    reason="fastem's kernels may use one thread only here (NUMBA_NUM_THREADS < 2), "
    "so a fit asked for two threads runs on one and there is nothing to compare",
)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("chunk_size", [None, 100])
def test_one_and_two_threads_give_bitwise_identical_fits(
    rng, covariance_type, chunk_size, block_threads
):
    """The same bits from fits that do run their block kernels on one and on two
    threads (the ``block_threads`` recorder of tests/conftest.py), with fastem's
    per-thread count (``current_threads``) back at the default after each."""

    def assert_threads_used(n_threads):
        block_threads.assert_used(n_threads)
        assert current_threads() == max_threads(), "the thread count leaked"

    X = make_blobs(rng, n_components=3, n_features=6, n_per_component=8000)
    block = chunk_size or _driver.default_block_size(
        *X.shape, 3, covariance_type, X.itemsize
    )
    assert -(-len(X) // block) >= 8, "the data should span many parallel blocks"
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=8,
        chunk_size=chunk_size,
        **explicit_start(rng, X, 3, covariance_type),
    )
    assert current_threads() == max_threads()  # nothing set on this thread
    one = fit_quietly(GaussianMixture(n_threads=1, **params), X)
    assert_threads_used(1)
    two = fit_quietly(GaussianMixture(n_threads=2, **params), X)
    assert_threads_used(2)
    assert_identical_fit(one, two)
    for method in ("score_samples", "predict_proba"):
        expected = getattr(one, method)(X)
        assert_threads_used(1)
        assert_array_equal(getattr(two, method)(X), expected, err_msg=method)
        assert_threads_used(2)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_offset_by_a_million_fits_as_well_as_centred_data(rng, covariance_type):
    X = make_blobs(rng)
    start = explicit_start(rng, X, 3, covariance_type)
    params = dict(
        n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=N_ITER
    )
    centred = fit_quietly(GaussianMixture(**params, **start), X)
    start["means_init"] = start["means_init"] + OFFSET
    offset = fit_quietly(GaussianMixture(**params, **start), X + OFFSET)
    assert_allclose(
        offset.means_ - OFFSET, centred.means_, rtol=0, atol=OFFSET_ATOL_MEANS
    )
    for name in ("weights_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        assert_close(getattr(offset, name), getattr(centred, name), OFFSET_RTOL, name)
    assert offset.singular_events_ == []


# --------------------------------------------------------------------------
# memory layouts; the caller's arrays are never modified


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_memory_layouts_give_the_same_fit(rng, covariance_type):
    X = make_blobs(rng, n_per_component=100)
    n_samples, n_features = X.shape
    rows = np.zeros((2 * n_samples, n_features))
    rows[::2] = X
    columns = np.zeros((n_samples, 2 * n_features))
    columns[:, ::2] = X
    both = np.zeros((2 * n_samples, 2 * n_features))
    both[::2, ::2] = X
    layouts = {
        "F": np.asfortranarray(X),
        "rows[::2]": rows[::2],
        "[:, ::2]": columns[:, ::2],
        "[::2, ::2]": both[::2, ::2],
    }
    sample_weight = rng.uniform(0.5, 1.5, size=n_samples)
    start = explicit_start(rng, X, 3, covariance_type)
    originals = {
        "X": X,
        "rows": rows,
        "columns": columns,
        "both": both,
        "sample_weight": sample_weight,
        **start,
    }
    copies = {name: array.copy() for name, array in originals.items()}
    params = dict(
        n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=10, **start
    )
    expected = fit_quietly(GaussianMixture(**params), X, sample_weight=sample_weight)
    for name, data in layouts.items():
        assert not data.flags.c_contiguous, name
        model = fit_quietly(
            GaussianMixture(**params), data, sample_weight=sample_weight
        )
        assert_identical_fit(model, expected)
        assert_array_equal(model.score_samples(data), expected.score_samples(X))
        assert_array_equal(model.predict_proba(data), expected.predict_proba(X))
    for name, array in originals.items():
        assert (
            array.dtype == copies[name].dtype
            and array.tobytes() == copies[name].tobytes()
        ), name


# --------------------------------------------------------------------------
# singular covariances and empty components


@pytest.mark.parametrize("chunk_size", [None, 2], ids=["default", "blocks2"])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_notebook_example_is_recovered(seed, init_params, chunk_size):
    X = NOTEBOOK_X.copy()
    params = dict(
        n_components=2,
        reg_covar=0.0,
        n_init=10,
        init_params=init_params,
        random_state=seed,
        chunk_size=chunk_size,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GaussianMixture(**params).fit(X)
    singular_warnings = [
        w for w in caught if issubclass(w.category, SingularCovarianceWarning)
    ]
    assert len(singular_warnings) == 1
    assert re.search(
        r"component \d+ at iteration \d+", str(singular_warnings[0].message)
    )
    assert all_finite(model)
    assert np.isfinite(model.lower_bound_)
    assert model.singular_events_, "the fallback must be recorded"
    assert {"restart", "iteration", "component", "action"} <= set(
        model.singular_events_[0]
    )
    assert_allclose(model.weights_.sum(), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    assert np.all(np.isfinite(model.score_samples(X)))
    assert_array_equal(X, NOTEBOOK_X)


def test_notebook_example_is_degenerate_for_sklearn(seed):
    """The contrast the fallback exists for: scikit-learn gives up on this example."""
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SklearnGaussianMixture(
            2, reg_covar=0.0, n_init=10, init_params="random", random_state=seed
        ).fit(NOTEBOOK_X)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_notebook_example_with_on_singular_raise(seed, init_params):
    model = GaussianMixture(
        2,
        reg_covar=0.0,
        n_init=10,
        init_params=init_params,
        random_state=seed,
        on_singular="raise",
    )
    with pytest.raises(ValueError, match="ill-defined empirical covariance") as error:
        model.fit(NOTEBOOK_X)
    assert isinstance(error.value, SingularCovarianceError)
    message = str(error.value)
    assert "reg_covar" in message and "on_singular='recover'" in message


def far_component_start(covariance_type):
    """Three components for two blobs at 0 and 6; the third starts far from any data."""
    means = np.array([[0.0, 0.0], [6.0, 6.0], [1e3, 1e3]])
    precisions = {
        "full": np.stack([np.eye(2)] * 3),
        "tied": np.eye(2),
        "diag": np.ones((3, 2)),
        "spherical": np.ones(3),
    }[covariance_type]
    return {
        "weights_init": np.full(3, 1 / 3),
        "means_init": means,
        "precisions_init": precisions,
    }


def two_blobs(rng):
    return np.concatenate([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 6.0])


@CHUNK_SIZES
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_component_that_loses_all_its_mass(rng, seed, covariance_type, chunk_size,
                                           monkeypatch):
    X = two_blobs(rng)
    model = GaussianMixture(
        3,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=10,
        random_state=seed,
        chunk_size=chunk_size,
        **far_component_start(covariance_type),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    assert any(issubclass(w.category, SingularCovarianceWarning) for w in caught)
    assert all_finite(model)
    assert_allclose(model.weights_.sum(), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    first = model.singular_events_[0]
    assert first["component"] == 2 and first["iteration"] == 1
    assert first["action"] == "re-seeded" and "mass" in first["reason"]
    assert np.all(np.isfinite(model.predict_proba(X)))
    if chunk_size is not None:  # the block kernels repair as the small-data path does
        monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", SMALL_WORK_LIMIT)
        assert _driver.is_small(*X.shape, 3)
        serial = fit_quietly(
            GaussianMixture(
                3,
                covariance_type=covariance_type,
                tol=0.0,
                max_iter=10,
                random_state=seed,
                **far_component_start(covariance_type),
            ),
            X,
            singular=True,
        )
        assert model.singular_events_ == serial.singular_events_
        assert_same_fit(model, serial, RTOL_SKLEARN)


@pytest.mark.parametrize(
    "covariance_type",
    ["full", "tied", "diag", "spherical"],
)
def test_reseeded_component_picks_up_mass(rng, seed, covariance_type):
    X = two_blobs(rng)
    model = fit_quietly(
        GaussianMixture(
            3,
            covariance_type=covariance_type,
            tol=0.0,
            max_iter=10,
            random_state=seed,
            **far_component_start(covariance_type),
        ),
        X,
        singular=True,
    )
    assert len(model.singular_events_) == 1, model.singular_events_
    assert model.weights_[2] > 1e-3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_at_1e160_raise_that_a_covariance_overflows(rng, seed, covariance_type):
    """Data whose variance (~1e320) overflows float64: the documented ValueError
    saying what to do, no crash and no non-finite model.

    (At b199fd9 the 1e160 'tied' case crashed with a TypeError in kernel_inputs.)
    """
    X = rng.normal(size=(50, 2)) * 1e160
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match=r"covariance overflows\. Divide X by"):
            model.fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_at_1e_minus_160_fit_to_the_reg_covar_model(rng, seed, covariance_type):
    """Data whose variance (~1e-320, subnormal) is far below reg_covar's rounding
    (1e-6 * eps = 2e-22): a valid fit whose covariances are reg_covar * I, and whose
    score_samples is fastem.reference's log-likelihood of the fitted parameters."""
    X = rng.normal(size=(50, 2)) * 1e-160
    model = fit_quietly(
        GaussianMixture(2, covariance_type=covariance_type, random_state=seed), X
    )
    assert all_finite(model)
    assert_allclose(model.weights_.sum(), 1.0, rtol=0, atol=1e-14)
    assert np.all(model.weights_ >= 0)
    # means are weighted means of rows of X (within their rounding)
    assert np.all(np.abs(model.means_) <= np.abs(X).max() * (1 + 1e-12))
    # the data's share of each variance is < 1e-300: reg_covar = 1e-6 to the last bit
    dense = reference.dense_covariances(model.covariances_, covariance_type, 2, 2)
    assert_allclose(np.diagonal(dense, axis1=1, axis2=2), 1e-6, rtol=1e-15, atol=0)
    assert np.all(np.abs(dense[:, 0, 1]) < 1e-300)
    log_prob_norm, _ = reference.e_step(
        X, model.weights_, model.means_, model.covariances_, covariance_type
    )
    assert_close(model.score_samples(X), log_prob_norm, RTOL_REFERENCE)


# --------------------------------------------------------------------------
# sample_weight


def fit_pair(rng, covariance_type, X, sample_weight, X_expected, weight_expected=None):
    start = explicit_start(rng, X_expected, 3, covariance_type)
    params = dict(
        n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=15, **start
    )
    weighted = fit_quietly(GaussianMixture(**params), X, sample_weight=sample_weight)
    expected = fit_quietly(
        GaussianMixture(**params), X_expected, sample_weight=weight_expected
    )
    return weighted, expected


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weight_equals_repeated_rows(rng, covariance_type):
    X = make_blobs(rng, n_per_component=40)
    counts = rng.integers(1, 4, size=len(X))
    weighted, repeated = fit_pair(
        rng, covariance_type, X, counts, np.repeat(X, counts, axis=0)
    )
    assert_same_fit(weighted, repeated, RTOL_EQUIVALENT)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_sample_weight_equals_removed_row(rng, covariance_type):
    X = make_blobs(rng, n_per_component=40)
    present = rng.uniform(size=len(X)) > 0.3
    X[~present] *= 100.0  # absent rows would pull the fit if they counted at all
    weighted, removed = fit_pair(
        rng, covariance_type, X, present.astype(float), X[present]
    )
    assert_same_fit(weighted, removed, RTOL_EQUIVALENT)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_unit_sample_weight_equals_none(rng, seed, covariance_type):
    X = make_blobs(rng, n_per_component=40)
    ones, none = fit_pair(rng, covariance_type, X, np.ones(len(X)), X)
    assert_same_fit(ones, none, RTOL_EQUIVALENT)
    # also through the k-means initialisation
    params = dict(n_components=3, covariance_type=covariance_type, random_state=seed)
    ones = fit_quietly(GaussianMixture(**params), X, sample_weight=np.ones(len(X)))
    none = fit_quietly(GaussianMixture(**params), X)
    assert_same_fit(ones, none, RTOL_EQUIVALENT)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_no_sample_weight_is_unit_weights_bit_for_bit(rng, covariance_type, dtype):
    """Without sample_weight the block kernels read one weight for every row (no (N,)
    array of ones): the same bits as weights of one, every start, and no other
    compiled version of the kernels (the weights keep the type of a weight array)."""
    X = make_blobs(rng, n_components=4, n_features=3, n_per_component=5000).astype(dtype)
    assert not _driver.is_small(len(X), 3, 4)  # the block kernels, not the rows' ones
    for init_params in ("kmeans", "random", "random_from_data"):
        params = dict(n_components=4, covariance_type=covariance_type, max_iter=8, tol=0.0,
                      init_params=init_params, random_state=1, chunk_size=1024)
        none = fit_quietly(GaussianMixture(**params), X)
        ones = fit_quietly(GaussianMixture(**params), X, sample_weight=np.ones(len(X)))
        assert_identical_fit(none, ones)
    kernel = (_kernels_estep.dense_statistics_blocks if covariance_type in ("full", "tied")
              else _kernels_estep.diagonal_statistics_blocks)
    weight_types = {str(signature[1]) for signature in kernel.signatures}
    assert weight_types == {"readonly array(float64, 1d, C)"}


@pytest.mark.parametrize("init_params", ["random_from_data", "random", "k-means++"])
def test_in_memory_start_memory_does_not_grow_with_the_data(rng, init_params):
    """Issue 13: an in-memory fit from these starts holds no (N,) array (the unit
    weights, the permutation behind RandomState.choice, the finiteness mask,
    all N rows' responsibilities, scikit-learn's kmeans_plusplus's distances were
    such arrays): what it allocates is the same for
    N and 4N rows, and at most 0.15x the data at 10^6 x 8 (float64; P2's shape)."""
    peaks = []
    for n_samples in (250_000, 1_000_000):
        X = rng.normal(size=(n_samples, 8))
        X[: n_samples // 2] += 4.0
        model = GaussianMixture(8, init_params=init_params, max_iter=1, tol=0.0,
                                random_state=0)
        fit_quietly(model, X)  # compile and load first (numba's compiler allocates)
        peaks.append(traced_peak(fit_quietly, model, X))
    assert peaks[1] - peaks[0] < 0.01 * 750_000 * 8 * 8, f"peaks {peaks} bytes"
    assert peaks[1] <= 0.15 * X.nbytes, f"peak {peaks[1]} bytes, data {X.nbytes}"


# --------------------------------------------------------------------------
# scikit-learn's estimator checks


@parametrize_with_checks([GaussianMixture()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# scores, sampling, warm start, messages


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scores_match_sklearn_for_the_same_parameters(rng, seed, covariance_type):
    X = make_blobs(rng)
    new = make_blobs(rng, n_per_component=50)
    model = fit_quietly(
        GaussianMixture(3, covariance_type=covariance_type, random_state=seed), X
    )
    other = as_sklearn(model)
    for data in (X, new):
        assert_close(
            model.score_samples(data), other.score_samples(data), RTOL_REFERENCE
        )
        assert_close(model.score(data), other.score(data), RTOL_REFERENCE)
        assert_close(model.bic(data), other.bic(data), RTOL_REFERENCE)
        assert_close(model.aic(data), other.aic(data), RTOL_REFERENCE)
        assert_array_equal(model.predict(data), other.predict(data))
        assert_allclose(
            model.predict_proba(data),
            other.predict_proba(data),
            rtol=0,
            atol=RTOL_REFERENCE,
        )
        log_prob_norm, _ = reference.e_step(
            data, model.weights_, model.means_, model.covariances_, covariance_type
        )
        assert_close(model.score_samples(data), log_prob_norm, RTOL_REFERENCE)
    # the training score is the lower bound one E-step later: a converged fit has
    # moved by less than tol since lower_bound_
    assert model.converged_
    assert abs(model.score(X) - model.lower_bound_) < model.tol


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_matches_sklearn_and_is_reproducible(rng, seed, covariance_type):
    X = make_blobs(rng)
    model = fit_quietly(
        GaussianMixture(3, covariance_type=covariance_type, random_state=seed), X
    )
    samples, labels = model.sample(500)
    expected_samples, expected_labels = as_sklearn(model, random_state=seed).sample(500)
    assert samples.shape == (500, 3) and samples.dtype == np.float64
    assert np.issubdtype(labels.dtype, np.integer)
    assert_array_equal(labels, expected_labels)
    assert_allclose(samples, expected_samples, rtol=RTOL_REFERENCE)
    again, again_labels = model.sample(500)  # an int random_state: the same draw
    assert_array_equal(again, samples)
    assert_array_equal(again_labels, labels)
    other, _ = model.set_params(random_state=seed + 1).sample(500)
    assert not np.array_equal(other, samples)
    # the samples come from the fitted components
    assert set(np.unique(labels)) <= set(range(3))
    for k in np.unique(labels):
        assert_allclose(
            samples[labels == k].mean(axis=0),
            model.means_[k],
            atol=6 * np.sqrt(np.max(X.var(axis=0)) / np.sum(labels == k)),
        )
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(0)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_continues_from_the_previous_solution(rng, covariance_type):
    X = make_blobs(rng)
    start = explicit_start(rng, X, 3, covariance_type)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0.0, **start)
    warm = GaussianMixture(warm_start=True, max_iter=8, n_init=3, **params)
    fit_quietly(warm, X)
    first_bounds = list(warm.lower_bounds_)
    fit_quietly(warm, X)
    assert warm.n_iter_ == 8
    long = fit_quietly(GaussianMixture(max_iter=16, **params), X)
    assert_same_fit(warm, long, RTOL_SAME_ARITHMETIC, with_lower_bounds=False)
    assert_close(
        first_bounds + list(warm.lower_bounds_),
        long.lower_bounds_,
        RTOL_SAME_ARITHMETIC,
    )
    theirs = SklearnGaussianMixture(warm_start=True, max_iter=8, n_init=3, **params)
    fit_quietly(theirs, X)
    fit_quietly(theirs, X)
    assert_same_fit(warm, theirs, RTOL_SKLEARN)


def test_warm_start_on_data_of_another_width_is_an_error(rng):
    """A warm start continues the fitted parameters: data with other features, or
    another n_components, is a clear error (unchecked, the kernels read and wrote
    past the parameters' arrays), and the model stays as it was."""
    X = make_blobs(rng)
    model = fit_quietly(GaussianMixture(3, warm_start=True, max_iter=5, random_state=0), X)
    fitted = {name: np.copy(getattr(model, name)) for name in FITTED}
    labels = model.predict(X)
    for other in (X[:, :2], np.c_[X, X]):
        with pytest.raises(ValueError, match=(
                "warm_start=True continues the previous fit, which had 3 components "
                f"and 3 features; now n_components = 3 and X has {other.shape[1]} ")):
            model.fit(other)
    model.set_params(n_components=4)
    with pytest.raises(ValueError, match="now n_components = 4 and X has 3 features"):
        model.fit(X)
    model.set_params(n_components=3)
    assert model.n_features_in_ == 3
    for name in FITTED:
        assert_array_equal(getattr(model, name), fitted[name], err_msg=name)
    assert_array_equal(model.predict(X), labels)
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(X[:, :2])


@pytest.mark.parametrize(("fitted_type", "new_type"), [
    (fitted, new) for fitted in COVARIANCE_TYPES for new in COVARIANCE_TYPES
    if new != fitted
])
def test_a_changed_covariance_type_is_a_clear_error_not_a_read_past_the_arrays(
    rng, fitted_type, new_type
):
    """set_params(covariance_type=...) on a fitted model: its precision factors have
    the fitted type's shape, which the kernels (no bounds checks) would read, and a
    warm start write, as the new type's ('diag' -> 'tied' with fewer components than
    features, 'tied' -> 'diag' with more). 3 components of 4 features: every pair of
    types has different shapes, so every change is an error."""
    X = make_blobs(rng, n_features=4)
    model = fit_quietly(GaussianMixture(3, covariance_type=fitted_type, max_iter=5,
                                        random_state=0), X)
    labels = model.predict(X)
    model.set_params(covariance_type=new_type)
    match = (f"covariance_type='{new_type}' with 3 components of 4 features needs "
             "covariances_ of shape")
    for method in (model.predict, model.predict_proba, model.score_samples,
                   model.score, model.bic):
        with pytest.raises(ValueError, match=match):
            method(X)
    with pytest.raises(ValueError, match=match):
        model.sample(5)
    model.set_params(warm_start=True)
    with pytest.raises(ValueError, match=match):
        model.fit(X)
    model.set_params(covariance_type=fitted_type)
    assert_array_equal(model.predict(X), labels)  # as it was


@pytest.mark.parametrize(("fitted_type", "new_type"),
                         [("diag", "tied"), ("tied", "diag")])
def test_a_changed_covariance_type_of_the_same_shapes_is_a_clear_error(
    rng, tmp_path, fitted_type, new_type
):
    """With as many components as features, 'tied' factors (D, D) have the shape of
    'diag' ones (K, D): a switch between them after a fit would be read in bounds, as
    another model. The type fitted (or loaded) with is kept and compared."""
    X = make_blobs(rng)  # 3 components of 3 features
    model = fit_quietly(GaussianMixture(3, covariance_type=fitted_type, max_iter=5,
                                        random_state=0), X)
    labels = model.predict(X)
    path = tmp_path / "model.json"
    save_model(model, path)
    for changed in (model, load_model(path), pickle.loads(pickle.dumps(model))):
        changed.set_params(covariance_type=new_type)
        match = (f"covariance_type='{new_type}', but the model was fitted with "
                 f"covariance_type='{fitted_type}': set covariance_type back")
        for method in (changed.predict, changed.score_samples, changed.sample):
            with pytest.raises(ValueError, match=match):
                method(X if method is not changed.sample else 5)
        with pytest.raises(ValueError, match=match):  # nor saved as the new type
            save_model(changed, tmp_path / "switched.json")
        changed.set_params(warm_start=True)
        with pytest.raises(ValueError, match=match):
            changed.fit(X)
        changed.set_params(covariance_type=fitted_type)
        assert_array_equal(changed.predict(X), labels)  # as it was
    model.set_params(covariance_type=new_type, warm_start=False)
    assert fit_quietly(model, X).predict(X).shape == labels.shape  # a refit is fine


def test_replaced_fitted_attributes_are_a_clear_error(rng):
    X = make_blobs(rng)
    model = fit_quietly(GaussianMixture(3, max_iter=5, random_state=0), X)
    means = model.means_
    model.means_ = np.vstack([means, means[:1]])  # a fourth mean, three of the rest
    with pytest.raises(ValueError, match=r"needs weights_ of shape \(4,\)"):
        model.predict(X)
    model.means_ = means[:, :2]  # fewer features than X (and n_features_in_)
    with pytest.raises(ValueError, match=r"The fitted means_ has shape \(3, 2\), but "
                                         "the model was fitted on 3 features"):
        model.score_samples(X)
    model.means_ = means
    model.set_params(chunk_size=0)  # checked at fit time, set after it
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        model.predict(X)


def test_a_fit_that_fails_leaves_the_model_as_it_was(rng):
    """The data checks set n_features_in_ before the weights are checked and before
    EM runs: a refit that fails must not leave the new width with the old
    parameters (predict would hand data of the new width to the kernels)."""
    X = make_blobs(rng)
    model = fit_quietly(GaussianMixture(3, max_iter=5, random_state=0), X)
    state = {name: np.copy(value) for name, value in vars(model).items()
             if isinstance(value, np.ndarray)}
    labels = model.predict(X)
    with pytest.raises(ValueError, match="non-negative"):
        model.fit(X[:, :2], sample_weight=-np.ones(len(X)))
    constant = np.c_[X[:, :2], np.ones(len(X))]  # singular without reg_covar
    model.set_params(reg_covar=0.0, on_singular="raise")
    with pytest.raises(SingularCovarianceError):
        model.fit(constant[:, [0, 2]])
    model.set_params(reg_covar=1e-6, on_singular="recover")
    assert model.n_features_in_ == 3
    for name, value in state.items():
        assert_array_equal(getattr(model, name), value, err_msg=name)
    assert_array_equal(model.predict(X), labels)
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(X[:, :2])


@CHUNK_SIZES
def test_fitted_attribute_types_match_sklearn(rng, seed, chunk_size):
    X = make_blobs(rng, n_per_component=100)
    ours = GaussianMixture(3, random_state=seed, chunk_size=chunk_size).fit(X)
    theirs = SklearnGaussianMixture(3, random_state=seed).fit(X)
    for name in ("converged_", "n_iter_", "n_features_in_", "lower_bounds_"):
        assert type(getattr(ours, name)) is type(getattr(theirs, name)), name
    assert isinstance(ours.lower_bound_, float)
    assert all(isinstance(bound, float) for bound in ours.lower_bounds_)


@pytest.mark.parametrize("verbose", [0, 1, 2, False, True])
def test_verbose_prints_progress(rng, capsys, verbose):
    X = make_blobs(rng, n_per_component=50)
    params = dict(
        n_components=3,
        tol=0.0,
        max_iter=6,
        n_init=2,
        **explicit_start(rng, X, 3, "full"),
    )
    model = fit_quietly(
        GaussianMixture(verbose=verbose, verbose_interval=2, **params), X
    )
    out = capsys.readouterr().out
    # printing does not change the fit (verbose fits take the per-iteration path)
    assert_same_fit(model, fit_quietly(GaussianMixture(**params), X), RTOL_SKLEARN)
    if verbose == 0:
        assert out == ""
        return
    assert "Initialization 0" in out and "Initialization 1" in out
    assert re.findall(r"Iteration (\d+)", out) == ["2", "4", "6"] * 2
    changes = [float(value) for value in re.findall(r"ll change\s+(\S+)", out)]
    if verbose == 1:
        assert changes == []
    else:
        expected = np.diff(model.lower_bounds_)[[0, 2, 4]]
        assert_allclose(changes[-3:], expected, rtol=1e-4)


def test_convergence_warning_when_max_iter_is_too_small(rng, seed):
    X = make_blobs(rng)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = GaussianMixture(
            3, max_iter=1, init_params="random", random_state=seed
        ).fit(X)
    assert model.converged_ is False and model.n_iter_ == 1


def test_converged_fit_agrees_with_sklearn_and_does_not_warn(rng):
    X = make_blobs(rng)
    params = dict(n_components=3, **explicit_start(rng, X, 3, "full"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ours = GaussianMixture(**params).fit(X)
    theirs = SklearnGaussianMixture(**params).fit(X)
    assert ours.converged_ is True and theirs.converged_ is True
    assert ours.n_iter_ == theirs.n_iter_ < 100
    assert_same_fit(ours, theirs, RTOL_SKLEARN)
