"""The fused E-step kernels (fastem.kernels.estep) against fastem.reference.

Every test runs through both kernel families: the tiled block kernels of
fastem.kernels.estep and the small-data row kernels of fastem.kernels.small.
Each kernel has its oracle: ``*_weighted_log_prob`` -> reference.estimate_weighted_log_prob,
``log_resp_from_weighted`` -> reference.e_step, ``*_statistics`` ->
reference.sufficient_statistics and reference.log_likelihood. The driver
functions in fastem.em.driver are the thin layer that picks the kernel for a
covariance type, so they are what is called here.
"""

import os
import subprocess
import sys
from pathlib import Path

import background  # tests/background.py
import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from fastem import reference
from fastem.em import driver as _driver
from fastem.kernels import estep as _kernels_estep
from fastem.kernels.threads import thread_limit
from fastem.kernels.vector import vector_lanes

# float64: the kernels and the oracle differ only by summation order. The row
# kernels compute in float64 whatever the data's dtype, so this holds for
# float32 data through them too.
RTOL64 = 1e-10
# float32 data through the tiled kernels: distances are computed in float32
# (relative error ~1e-6 of the Mahalanobis distance); accumulation is float64.
RTOL32 = 1e-4
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = (np.float64, np.float32)
SHAPES = [  # (n_samples, n_features, n_components)
    (40, 1, 1),
    (40, 1, 5),
    (60, 2, 1),
    (60, 2, 5),
    (300, 17, 1),
    (300, 17, 5),
    (9, 17, 5),  # n < d
    (10_000, 2, 5),
]


def tolerances(dtype, kernel_path):
    """(rtol, atol) for comparing values of order one computed from data of ``dtype``
    by the kernels of ``kernel_path`` ('tiles' or 'rows'): float32 tolerances only
    for float32 data through the tiled kernels (the row kernels compute in float64)."""
    if dtype == np.float64 or kernel_path == "rows":
        return RTOL64, 1e-10
    return RTOL32, 1e-4


def random_covariances(rng, covariance_type, n_components, n_features):
    """Well-conditioned covariances in scikit-learn's layout."""
    def spd():
        factor = rng.normal(size=(n_features, n_features))
        return factor @ factor.T / n_features + 0.5 * np.eye(n_features)

    if covariance_type == "full":
        return np.stack([spd() for _ in range(n_components)])
    if covariance_type == "tied":
        return spd()
    if covariance_type == "diag":
        return rng.uniform(0.3, 2.0, size=(n_components, n_features))
    return rng.uniform(0.3, 2.0, size=n_components)


def random_problem(rng, covariance_type, n_samples, n_features, n_components):
    """Data drawn around random means, and parameters (Parameters, covariances)."""
    means = rng.normal(scale=3.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = means[labels] + rng.normal(size=(n_samples, n_features))
    weights = rng.dirichlet(np.full(n_components, 2.0))
    covariances = random_covariances(rng, covariance_type, n_components, n_features)
    precisions_chol = reference.precisions_cholesky(covariances, covariance_type)
    parameters = _driver.Parameters(weights, means, covariances, precisions_chol)
    return X, parameters


@pytest.fixture
def rng():
    return np.random.default_rng(20261126)


@pytest.fixture(autouse=True, params=["tiles", "rows"])
def kernel_path(request, monkeypatch):
    """Every test here runs twice: through the tiled block kernels
    (fastem.kernels.estep) and through the small-data row kernels
    (fastem.kernels.small), whatever its size."""
    limit = -1 if request.param == "tiles" else 10**18
    monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", limit)
    return request.param


def block_size_for(X, covariance_type, n_components):
    return _driver.default_block_size(
        X.shape[0], X.shape[1], n_components, covariance_type, X.itemsize
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_log_prob_matches_reference(rng, covariance_type, dtype, shape,
                                             kernel_path):
    n_samples, n_features, n_components = shape
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    expected = reference.estimate_weighted_log_prob(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    actual = _driver.estimate_weighted_log_prob(
        X, parameters, covariance_type, block_size_for(X, covariance_type, n_components)
    )
    rtol, atol = tolerances(dtype, kernel_path)
    # float32 log-densities are compared relative to their magnitude.
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("block_size", [None, 64], ids=["default blocks", "64-row blocks"])
def test_labels_are_the_argmax_of_the_weighted_log_prob(
    rng, monkeypatch, covariance_type, dtype, shape, block_size, kernel_path
):
    """Labels pick the same component as the (n, K) array's argmax, and as the
    oracle's wherever its best two components are not tied to rounding."""
    n_samples, n_features, n_components = shape
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    if block_size is None:
        block_size = block_size_for(X, covariance_type, n_components)
    else:  # labels a few blocks at a time
        monkeypatch.setattr(_driver, "LABEL_CHUNK_ROWS", 3 * block_size)
    labels = _driver.estimate_labels(X, parameters, covariance_type, block_size)
    assert labels.dtype == np.int64 and labels.shape == (n_samples,)
    weighted = _driver.estimate_weighted_log_prob(X, parameters, covariance_type, block_size)
    np.testing.assert_array_equal(labels, weighted.argmax(axis=1))
    expected = reference.estimate_weighted_log_prob(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    top_two = np.sort(expected, axis=1)[:, -2:] if n_components > 1 else None
    clear = (
        np.ones(n_samples, bool) if top_two is None
        else top_two[:, 1] - top_two[:, 0] > (
            1e-6 if tolerances(dtype, kernel_path)[0] == RTOL64 else 1e-1)
    )
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(labels[clear], expected.argmax(axis=1)[clear])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_log_resp_matches_reference_e_step(rng, covariance_type, dtype, shape,
                                           kernel_path):
    n_samples, n_features, n_components = shape
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    expected_norm, expected_log_resp = reference.e_step(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    log_prob_norm, log_resp = _driver.estimate_log_prob_resp(
        X, parameters, covariance_type, block_size_for(X, covariance_type, n_components)
    )
    rtol, atol = tolerances(dtype, kernel_path)
    np.testing.assert_allclose(log_prob_norm, expected_norm, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.exp(log_resp), np.exp(expected_log_resp), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_statistics_match_reference(rng, covariance_type, dtype, shape, weighted,
                                    kernel_path):
    n_samples = shape[0]
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    sample_weight = rng.uniform(0, 3, size=n_samples) if weighted else np.ones(n_samples)
    assert_statistics_match_reference(X, sample_weight, parameters, covariance_type,
                                      kernel_path)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kept", [True, False], ids=["lanes kept", "over LANE_BYTES"])
def test_diagonal_statistics_with_and_without_lane_partials(rng, covariance_type, dtype,
                                                            kept, kernel_path):
    """The 'diag' kernel keeps its moments lane by lane through a block up to K D =
    LANE_BYTES / (16 lanes) (_lane_rows), and beyond adds a component's up
    after each tile: both give the oracle's statistics. (128 components: the
    oracle's densities take an eigendecomposition of each D x D covariance, which
    at 32 components, D = 512 in the AVX2 build, where float64 has one lane, took
    3-5 s a case; now D is 8 to 128.)"""
    n_components = 128
    largest = _kernels_estep.LANE_BYTES // (16 * vector_lanes(dtype))  # K D kept
    n_features = largest // n_components + (0 if kept else 1)
    X, parameters = random_problem(rng, covariance_type, 300, n_features, n_components)
    X = X.astype(dtype)
    assert_statistics_match_reference(X, rng.uniform(0, 3, size=300), parameters,
                                      covariance_type, kernel_path)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(700, 2, 4), (700, 5, 3)])
def test_statistics_with_unit_and_other_weights_in_one_tile(rng, covariance_type, dtype,
                                                            shape, kernel_path):
    """Weights of 1 (whose log-sum-exps the block kernels multiply together, see
    _add_tile_sums), 0 and others mixed in every tile: the oracle's sums."""
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    sample_weight = rng.choice([1.0, 1.0, 1.0, 1.0, 0.0, 2.5, 0.25], size=shape[0])
    assert_statistics_match_reference(X, sample_weight, parameters, covariance_type,
                                      kernel_path)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weight", [0.0, 1.0, 2.5])
def test_point_no_component_explains(rng, covariance_type, weight):
    """A row whose squared distances overflow to inf has every log-density -inf: of
    positive weight, it makes the log-likelihood -inf and adds w log(1/K) (uniform
    responsibilities) to sum w r log r and sum w log max r; of weight 0 it adds
    nothing. It adds nothing to the statistics either way. (float64: the row
    kernels compute in float64 whatever the data's dtype, where no float32 value
    overflows when squared.)"""
    n_components = 4
    X, parameters = random_problem(rng, covariance_type, 300, 3, n_components)
    sample_weight = rng.choice([1.0, 1.0, 0.5], size=len(X))
    far = np.vstack([X[:150], np.full((1, 3), 1e200), X[150:]])
    far_weight = np.concatenate([sample_weight[:150], [weight], sample_weight[150:]])
    block_size = block_size_for(X, covariance_type, n_components)
    with np.errstate(over="ignore", invalid="ignore"):
        with_far = _driver.estep_statistics(far, far_weight, parameters,
                                            covariance_type, block_size,
                                            with_entropy=True)
    without = _driver.estep_statistics(X, sample_weight, parameters, covariance_type,
                                       block_size, with_entropy=True)
    rtol = RTOL64
    for name in ("nk", "sum_x", "scatter"):
        np.testing.assert_allclose(getattr(with_far, name), getattr(without, name),
                                   rtol=rtol, atol=rtol * len(X), err_msg=name)
    if weight > 0:
        assert with_far.log_likelihood == -np.inf
    else:
        np.testing.assert_allclose(with_far.log_likelihood, without.log_likelihood,
                                   rtol=rtol)
    uniform = -weight * np.log(n_components)
    np.testing.assert_allclose(with_far.resp_log_resp, without.resp_log_resp + uniform,
                               rtol=rtol)
    np.testing.assert_allclose(with_far.log_max_resp, without.log_max_resp + uniform,
                               rtol=rtol)


def assert_statistics_match_reference(X, sample_weight, parameters, covariance_type,
                                      kernel_path):
    """The fused kernel's (nk, sum_x, scatter, log_likelihood) against the oracle's.

    The kernels work with the means rounded to the data's dtype (the ``centres``
    they return): the oracle's responsibilities, statistics and log-likelihood
    are those of the same rounded means, so that float32 data through the row
    kernels (float64 arithmetic) is held to the float64 tolerances.
    """
    dtype = X.dtype
    block_size = block_size_for(X, covariance_type, parameters.means.shape[0])
    nk, sum_x, scatter, log_likelihood, centres = _driver.sufficient_statistics(
        X, sample_weight, parameters, covariance_type, block_size
    )
    np.testing.assert_array_equal(centres, parameters.means.astype(dtype))
    _, log_resp = reference.e_step(
        X, parameters.weights, centres, parameters.covariances, covariance_type
    )
    resp = np.exp(log_resp)
    expected = reference.sufficient_statistics(
        X, resp, centres, covariance_type, sample_weight=sample_weight
    )
    expected_log_likelihood = reference.log_likelihood(
        X, parameters.weights, centres, parameters.covariances, covariance_type,
        sample_weight=sample_weight,
    )
    if covariance_type == "spherical":
        scatter = scatter.sum(axis=1)  # the kernel returns per-feature diagonals
    elif covariance_type == "tied":
        scatter = scatter[0]
    rtol, atol = tolerances(dtype, kernel_path)
    scale = sample_weight.sum()
    np.testing.assert_allclose(nk, expected[0], rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(sum_x, expected[1], rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(scatter, expected[2], rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(log_likelihood, expected_log_likelihood, rtol=rtol)
    # the same pass's sum w r log r and sum w log max r (the variational lower
    # bound and ICL need them), against the oracle's responsibilities
    statistics = _driver.estep_statistics(X, sample_weight, parameters, covariance_type,
                                          block_size, with_entropy=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        resp_log_resp = np.where(resp > 0, resp * np.log(resp), 0.0).sum(axis=1)
        log_max_resp = np.log(resp.max(axis=1))
    np.testing.assert_allclose(statistics.resp_log_resp, sample_weight @ resp_log_resp,
                               rtol=rtol, atol=atol * scale)
    np.testing.assert_allclose(statistics.log_max_resp, sample_weight @ log_max_resp,
                               rtol=rtol, atol=atol * scale)
    assert statistics.log_likelihood == log_likelihood
    # Without sum r log r (the default, all but the variational mixture) the pass
    # skips its term: every other result the same bits, resp_log_resp NaN.
    without = _driver.estep_statistics(X, sample_weight, parameters, covariance_type,
                                       block_size)
    assert np.isnan(without.resp_log_resp)
    for name in ("nk", "sum_x", "scatter", "log_likelihood", "log_max_resp", "centres"):
        np.testing.assert_array_equal(getattr(without, name), getattr(statistics, name),
                                      err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_features", [5, 8, 17])
def test_statistics_of_separated_clusters_match_reference(rng, covariance_type, dtype,
                                                          n_features, kernel_path):
    """Clusters 100 sigma apart: every point has exactly zero responsibility for all
    but its own component, so in most tiles a component has at most SPARSE_TILE
    points ('full', 'tied'; SPARSE_DIAGONAL_TILE for 'diag', 'spherical';
    COMPACT_TILE for 'full' and 'tied' with 8 features), and the kernels gather
    them for their statistics (the dense kernel from SPARSE_MIN_FEATURES
    (padded) features on, and into a compact tile at COMPACT_FEATURES); in the
    other tiles (a run of one cluster, zero weights) they do not. Both paths
    must give the oracle's statistics."""
    n_samples, n_components = 4096, 20
    X, parameters = random_problem(rng, covariance_type, n_samples, n_features,
                                   n_components)
    labels = rng.integers(n_components, size=n_samples)
    # a run of one cluster gives tiles where its component has > SPARSE_TILE points
    labels[640:1280] = 0
    means = rng.normal(scale=100.0, size=(n_components, n_features))
    X = (means[labels] + rng.normal(size=(n_samples, n_features))).astype(dtype)
    parameters = _driver.Parameters(parameters.weights, means, parameters.covariances,
                                    parameters.precisions_chol)
    sample_weight = rng.uniform(0, 3, size=n_samples)
    sample_weight[2000:2100] = 0.0
    _, log_resp = reference.e_step(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    resp = np.exp(log_resp)
    nonzero = (resp * sample_weight[:, np.newaxis] > 0).reshape(
        -1, _kernels_estep.statistics_tile(X), n_components).sum(axis=1)
    limit = (_kernels_estep.SPARSE_TILE if covariance_type in ("full", "tied")
             else _kernels_estep.SPARSE_DIAGONAL_TILE)
    if covariance_type in ("full", "tied") and n_features == 8:
        limit = _kernels_estep.COMPACT_TILE
        assert n_features == _kernels_estep.COMPACT_FEATURES
        # counts that fill no whole vector too (the compact tile's padding)
        assert np.any((nonzero > 0) & (nonzero % 8 != 0) & (nonzero <= limit))
    assert np.any((nonzero > 0) & (nonzero <= limit))
    assert np.any(nonzero > limit)
    assert np.mean(resp > 0) < 1.5 / n_components  # the clusters are separated
    assert_statistics_match_reference(X, sample_weight, parameters, covariance_type,
                                      kernel_path)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_mstep_matches_reference(rng, covariance_type, dtype, shape, kernel_path):
    """Statistics -> parameters equals the oracle's two-pass M-step, from the
    oracle's responsibilities for the means the kernels work with (rounded to the
    data's dtype: the centres of the statistics)."""
    n_samples, n_features, n_components = shape
    X, parameters = random_problem(rng, covariance_type, *shape)
    X = X.astype(dtype)
    reg_covar = 1e-3
    block_size = block_size_for(X, covariance_type, n_components)
    statistics = _driver.sufficient_statistics(
        X, np.ones(n_samples), parameters, covariance_type, block_size
    )
    new, status = _driver.maximization(*statistics[:3], statistics[4], covariance_type,
                                       reg_covar)
    centres = statistics[4]
    np.testing.assert_array_equal(centres, parameters.means.astype(dtype))
    _, log_resp = reference.e_step(
        X, parameters.weights, centres, parameters.covariances, covariance_type
    )
    weights, means, covariances = reference.m_step(
        X, np.exp(log_resp), covariance_type, reg_covar=reg_covar
    )
    rtol, atol = tolerances(dtype, kernel_path)
    # With n < d some components may receive no responsibility at all: they
    # are flagged EMPTY (status 1) for the driver and are not compared.
    assert np.all((status == 0) | (status == 1))
    kept = status == 0
    assert np.all(np.exp(log_resp)[:, ~kept].sum(axis=0) < 1e-12 * n_samples)
    np.testing.assert_allclose(new.weights, weights, rtol=rtol, atol=atol)
    np.testing.assert_allclose(new.means[kept], means[kept], rtol=rtol, atol=atol)
    if covariance_type == "tied":
        np.testing.assert_allclose(new.covariances, covariances, rtol=rtol, atol=atol)
    else:
        np.testing.assert_allclose(new.covariances[kept], covariances[kept], rtol=rtol,
                                   atol=atol)
    np.testing.assert_allclose(
        new.precisions_chol,
        reference.precisions_cholesky(new.covariances, covariance_type),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_below_two_to_the_minus_140_count_as_zero(covariance_type,
                                                                   kernel_path):
    """The tiled kernels count a float64 weighted responsibility below 2**-140 as
    zero (_kernels_estep.NEGLIGIBLE); the row kernels keep every one. One
    dimension, unit variances, equal weights, means 0 and 15: a point at x has
    log r_1 = 15 x - 112.5 (and r_0 = 1 to rounding), so the 600 points in
    [-0.5, 0.5] give component 1 responsibilities between 1e-52 and 3e-46, and
    the point at 1.5 one of 8e-40."""
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.uniform(-0.5, 0.5, size=600), [1.5]])[:, np.newaxis]
    means = np.array([[0.0], [15.0]])
    covariances = {"full": np.ones((2, 1, 1)), "tied": np.ones((1, 1)),
                   "diag": np.ones((2, 1)), "spherical": np.ones(2)}[covariance_type]
    parameters = _driver.Parameters(
        np.array([0.5, 0.5]), means, covariances,
        reference.precisions_cholesky(covariances, covariance_type))
    _, log_resp = reference.e_step(X, parameters.weights, means, covariances,
                                   covariance_type)
    resp = np.exp(log_resp)
    below = resp < 2.0 ** -140
    assert _kernels_estep.NEGLIGIBLE == 2.0 ** -140
    assert below[:600, 1].all() and not below[600:].any()
    kept = np.where(below, 0.0, resp)
    # what is dropped is most of component 1's mass in the first 600 points
    assert resp[:600, 1].sum() > 1e-6 * resp[600, 1]
    block_size = block_size_for(X, covariance_type, 2)
    nk, sum_x, scatter, _, centres = _driver.sufficient_statistics(
        X, np.ones(len(X)), parameters, covariance_type, block_size)
    expected = reference.sufficient_statistics(
        X, kept if kernel_path == "tiles" else resp, centres, covariance_type)
    if covariance_type == "spherical":
        scatter = scatter.sum(axis=1)
    elif covariance_type == "tied":
        scatter = scatter[0]
    for got, want in zip((nk, sum_x, scatter), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL64, atol=0.0)
    # only the kept point: the first 600 rows alone leave component 1 no mass
    nk, _, _, _, _ = _driver.sufficient_statistics(
        X[:600], np.ones(600), parameters, covariance_type, block_size)
    assert (nk[1] == 0.0) == (kernel_path == "tiles")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_far_point_gets_finite_responsibilities(rng, covariance_type, dtype,
                                                kernel_path):
    """A point far from every component: densities underflow, log-sum-exp does not."""
    X, parameters = random_problem(rng, covariance_type, 50, 3, 4)
    X[7] = 1e4
    X = X.astype(dtype)
    log_prob_norm, log_resp = _driver.estimate_log_prob_resp(X, parameters, covariance_type, 128)
    assert np.all(np.isfinite(log_prob_norm))
    assert np.all(np.isfinite(log_resp))
    np.testing.assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=1e-12)
    expected_norm, _ = reference.e_step(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    np.testing.assert_allclose(log_prob_norm[7], expected_norm[7],
                               rtol=tolerances(dtype, kernel_path)[0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_statistics_do_not_depend_on_thread_count(rng, covariance_type, dtype):
    X, parameters = random_problem(rng, covariance_type, 5000, 4, 3)
    X = X.astype(dtype)
    weights = rng.uniform(size=len(X))
    results = []
    for n_threads in (1, 2):
        with thread_limit(n_threads):
            results.append(
                _driver.sufficient_statistics(X, weights, parameters, covariance_type, 256)
            )
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_offset_data_statistics(rng, covariance_type):
    """Data and means offset by 1e6: the statistics around the means are unchanged."""
    X, parameters = random_problem(rng, covariance_type, 2000, 3, 2)
    shifted = _driver.Parameters(
        parameters.weights, parameters.means + 1e6, parameters.covariances,
        parameters.precisions_chol,
    )
    weights = np.ones(len(X))
    centred = _driver.sufficient_statistics(X, weights, parameters, covariance_type, 512)
    offset = _driver.sufficient_statistics(X + 1e6, weights, shifted, covariance_type, 512)
    # X + 1e6 is rounded at 1e6 * eps ~ 1e-10 absolute, which bounds the agreement.
    for name, one, two in zip(("nk", "sum_x", "scatter", "log_likelihood"), centred, offset):
        np.testing.assert_allclose(two, one, rtol=1e-7, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0.0, 1.0, "far"])
def test_diagonal_log_prob_of_data_off_the_origin(rng, covariance_type, dtype, offset,
                                                  kernel_path):
    """Seventeen features, two passes of eight and one: data and means moved by an
    offset, from around the origin (every |m e| within CENTRE_BOUND, the centring
    folded into a multiply-add) to far from it (1e5 in float32, 1e8 in float64:
    |m e| ~ 1e5 and 1e8, exact centring; folded, the rounded m e would miss the
    oracle by far more than the tolerance). The means are multiples of 1/64, so
    that they are the same numbers in float32."""
    X, parameters = random_problem(rng, covariance_type, 400, 17, 5)
    if offset == "far":
        offset = 1e5 if dtype == np.float32 else 1e8
    means = np.round((parameters.means + offset) * 64.0) / 64.0
    X = (X + offset).astype(dtype)
    products = np.abs(means * np.sqrt(
        1.0 / np.broadcast_to(parameters.covariances.reshape(5, -1), means.shape)))
    bound = _kernels_estep.CENTRE_BOUND
    assert (products.max() > bound) if offset > 1.0 else (products.max() <= bound)
    expected = reference.estimate_weighted_log_prob(
        X, parameters.weights, means, parameters.covariances, covariance_type)
    moved = _driver.Parameters(parameters.weights, means, parameters.covariances,
                               parameters.precisions_chol)
    actual = _driver.estimate_weighted_log_prob(X, moved, covariance_type,
                                                block_size_for(X, covariance_type, 5))
    rtol, atol = tolerances(dtype, kernel_path)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_scaled_data_log_likelihood_moves_by_the_log_determinant(rng, covariance_type,
                                                                  dtype):
    """X and means times 2**k, covariances times 4**k: every distance and
    responsibility is the same number, and the log-likelihood moves by exactly
    -N D k log 2. The log_norm constants are then large (k = 60: -D k log 2 per
    point), and rounding them to float32 with the log-probabilities would move
    the float32 log-likelihood by ~1e-8 relative; the kernels subtract the
    largest of them first and add it back in float64 (_log_norm_shift).
    """
    X, parameters = random_problem(rng, covariance_type, 3000, 3, 4)
    X = X.astype(dtype)
    exponent = 60
    scaled_covariances = np.ldexp(parameters.covariances, 2 * exponent)
    scaled = _driver.Parameters(
        parameters.weights, np.ldexp(parameters.means, exponent), scaled_covariances,
        reference.precisions_cholesky(scaled_covariances, covariance_type),
    )
    weights = np.ones(len(X))
    unit = _driver.sufficient_statistics(X, weights, parameters, covariance_type, 1024)
    moved = _driver.sufficient_statistics(np.ldexp(X, exponent), weights, scaled,
                                          covariance_type, 1024)
    shift = len(X) * X.shape[1] * exponent * np.log(2.0)
    # float64 rounding of the log-determinants and of the sums only
    np.testing.assert_allclose(moved[3] + shift, unit[3], rtol=1e-12)
    np.testing.assert_allclose(moved[0], unit[0], rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_empty_component_is_flagged(rng, covariance_type):
    """A component with no responsibility is reported EMPTY, not divided by zero."""
    X, parameters = random_problem(rng, covariance_type, 500, 2, 3)
    parameters.means[2] = 1e6
    statistics = _driver.sufficient_statistics(
        X, np.ones(len(X)), parameters, covariance_type, 128
    )
    assert statistics[0][2] == 0.0
    new, status = _driver.maximization(*statistics[:3], statistics[4], covariance_type, 1e-6)
    assert status[2] == 1  # STATUS_EMPTY
    assert np.all(np.isfinite(new.means)) and np.all(np.isfinite(new.covariances))
    np.testing.assert_allclose(new.weights.sum(), 1.0, rtol=1e-15)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_collapsed_component_is_flagged_singular(covariance_type):
    """All-equal rows with reg_covar=0: the covariance is singular and flagged."""
    X = np.tile([[1.0, 2.0]], (20, 1))
    covariances = random_covariances(np.random.default_rng(0), covariance_type, 1, 2)
    parameters = _driver.Parameters(
        np.ones(1), np.array([[0.5, 1.5]]), covariances,
        reference.precisions_cholesky(covariances, covariance_type),
    )
    statistics = _driver.sufficient_statistics(X, np.ones(20), parameters, covariance_type, 128)
    new, status = _driver.maximization(*statistics[:3], statistics[4], covariance_type, 0.0)
    assert status[0] == 2  # STATUS_SINGULAR
    np.testing.assert_allclose(new.means, [[1.0, 2.0]], rtol=1e-15)


# The build for an AVX2 CPU (16 vector registers) takes other register blocks than
# an AVX-512 one (see fastem.kernels.vector.vector_registers): this module's oracle
# tests of the block kernels, and test_mixture's parity with scikit-learn through
# the block kernels (17 features: the diagonal kernel's feature passes and the dense
# one's scatter blocks; separated clusters: the gathered path), run again in a fresh
# process whose kernels numba compiles for an AVX2 EPYC ('znver3'). The host runs
# that code if it has AVX2 and FMA.
AVX2_TESTS = ("(tiles and (weighted_log_prob or log_resp or statistics))"
              " or (parity_with_sklearn and (17 or separated))")
AVX2_TEST_FILES = ("test_kernels_estep.py", "test_mixture.py")


def host_runs_avx2():
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:
        return False
    return bool(features.get("avx2")) and bool(features.get("fma"))


@background.fixture
def avx2_build_oracle_tests(directory):
    """AVX2_TESTS of AVX2_TEST_FILES in a fresh pytest process with an empty numba
    cache in ``directory``, compiled for 'znver3'."""
    if not host_runs_avx2():
        return None
    env = dict(os.environ, NUMBA_CPU_NAME="znver3", NUMBA_CPU_FEATURES="",
               NUMBA_CACHE_DIR=str(directory), FASTEM_AVX2_BUILD_TESTS="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", AVX2_TESTS,
         *(str(Path(__file__).with_name(name)) for name in AVX2_TEST_FILES)],
        env=env, capture_output=True, text=True, timeout=1200, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )


@pytest.mark.skipif(bool(os.environ.get("FASTEM_AVX2_BUILD_TESTS")),
                    reason="inside the AVX2 build's own run")
def test_avx2_build_matches_the_oracle(avx2_build_oracle_tests):
    result = avx2_build_oracle_tests
    if result is None:
        pytest.skip("this CPU cannot run AVX2 code")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_kernels_free_every_array_and_keep_their_inputs_alive(rng):
    """The helpers the block and row kernels inline are compiled without numba's
    reference counting (``_nrt=False``: they neither allocate nor return arrays, and
    their callers hold every array they are given). If one of them did need it, a
    kernel would free an array too early or never: numba's own allocation counts
    must balance over statistics and inference passes of every kernel, on two
    threads, and the caller's arrays keep their Python reference counts."""
    _nrt = pytest.importorskip("numba.core.runtime._nrt_python")
    from numba.core.runtime import rtsys

    _nrt.memsys_enable_stats()
    try:
        cases = []
        for covariance_type in COVARIANCE_TYPES:
            for n_samples, n_features in ((3000, 17), (40, 3)):  # block and row kernels
                X, parameters = random_problem(rng, covariance_type, n_samples,
                                               n_features, 5)
                cases.append((X.astype(np.float32), X, parameters, covariance_type))
        weights = np.ones(3000)

        def passes():
            for X32, X, parameters, covariance_type in cases:
                for data in (X, X32):
                    block_size = block_size_for(data, covariance_type, 5)
                    with thread_limit(2):
                        statistics = _driver.sufficient_statistics(
                            data, weights[: len(data)], parameters, covariance_type,
                            block_size)
                        log_prob = _driver.estimate_weighted_log_prob(
                            data, parameters, covariance_type, block_size)
                    del statistics, log_prob

        passes()  # compile (or load) first: compiling allocates too
        counts = [sys.getrefcount(array) for case in cases for array in case[:2]]
        before = rtsys.get_allocation_stats()
        passes()
        after = rtsys.get_allocation_stats()
    finally:
        _nrt.memsys_disable_stats()
    assert after.alloc - before.alloc > 0  # the counts do count
    assert after.alloc - before.alloc == after.free - before.free
    assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free
    assert [sys.getrefcount(array) for case in cases for array in case[:2]] == counts


@njit(cache=False)
def _transpose_tile(X, start, n_points, X_tile, width):
    _kernels_estep._transpose_tile(X.reshape(X.size), X.shape[1], start, n_points,
                                   X_tile, width)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_features", [3, 8, 13, 16, 17, 24])
@pytest.mark.parametrize("n_points", [1, 7, 8, 9, 100, 128])
def test_transpose_tile(dtype, n_features, n_points):
    """X_tile[i, t] = X[start + t, i] for the tile's points (8x8 squares by vector
    shuffles, the rest one element at a time), point 0 repeated past them, and the
    padding rows left as they are."""
    rng = np.random.default_rng(n_features * 1000 + n_points)
    X = rng.normal(size=(300, n_features)).astype(dtype)
    X_before = X.copy()
    start, width, n_padded = 37, 128, n_features + 5
    X_tile = np.zeros((n_padded, width), dtype=dtype)
    X_tile[n_features:] = 7.0
    _transpose_tile(X, start, n_points, X_tile, width)
    expected = np.zeros_like(X_tile)
    expected[:n_features, :n_points] = X[start:start + n_points].T
    expected[:n_features, n_points:] = X[start][:, None]
    expected[n_features:] = 7.0
    np.testing.assert_array_equal(X_tile, expected)
    np.testing.assert_array_equal(X, X_before)


def _work_arrays(kernel, dtype, n_components, n_features):
    """The work arrays of ``kernel`` ('dense' or 'diagonal'), with the shape and
    dtype each must have and whether it must come zeroed, in the kernel's order."""
    width = _kernels_estep.STATISTICS_TILE[np.dtype(dtype)]
    wide = np.float64
    tile = [("mahalanobis", width, dtype, False),
            ("resp", (n_components, width), dtype, False),
            *[(name, width, dtype, False) for name in
              ("tile_top", "tile_peak", "other_peak", "tile_scale", "tile_entropy")],
            ("tile_weight", width, wide, False), ("weighted_resp", width, dtype, False),
            ("products", width, wide, False)]
    if kernel == "dense":
        n_padded = _kernels_estep.n_padded(n_features)
        sparse = _kernels_estep.SPARSE_TILE
        arrays = _kernels_estep.dense_tile_arrays(np.dtype(dtype), n_components,
                                                  n_padded, width)
        expected = [("X_tile", (n_padded, width), dtype, True),
                    ("weighted_diff", (n_padded, width), dtype, False), *tile,
                    ("index", width, np.int64, True),
                    ("gathered_resp", width, dtype, True),
                    ("gathered_diff", (sparse, n_padded), dtype, True),
                    ("gathered_weighted_diff", (sparse, n_padded), dtype, True),
                    ("compact_tile", (n_padded, width), dtype, False)]
    else:
        arrays = _kernels_estep.diagonal_tile_arrays(np.dtype(dtype), n_components,
                                                     n_features, width)
        lanes = vector_lanes(dtype)
        rows = 2 * n_components * n_features
        if rows * lanes * 8 > _kernels_estep.LANE_BYTES:
            rows = 2 * n_features
        expected = [("X_tile", (n_features, width), dtype, True), *tile,
                    ("moment_lanes", (rows, lanes), wide, True),
                    ("index", width, np.int64, False),
                    ("gathered_resp", width, dtype, False)]
    return arrays, expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["dense", "diagonal"])
@pytest.mark.parametrize(("n_components", "n_features"),
                         [(1, 1), (3, 5), (16, 32), (32, 257)])
def test_work_arrays_are_separate_aligned_and_of_the_kernels_types(dtype, kernel,
                                                                   n_components,
                                                                   n_features):
    """Each work array has the shape, dtype and C order its kernel takes (so numba
    compiles the kernel once), starts a 64-byte line in a build with 32 vector
    registers (AVX-512: no 512-bit vector of a row straddles two lines) and at 32
    bytes in others, the zeroed ones are zero, and none shares a byte with
    another: what is written to each stays there."""
    from numba import typeof

    from fastem.kernels.vector import _vector_registers

    arrays, expected = _work_arrays(kernel, dtype, n_components, n_features)
    alignment = 64 if _vector_registers() >= 32 else 32
    assert [(array.shape, array.dtype) for array in arrays] == [
        (np.empty(shape).shape, np.dtype(kind)) for _, shape, kind, _ in expected]
    assert [typeof(array) for array in arrays] == [
        typeof(np.empty(shape, dtype=kind)) for _, shape, kind, _ in expected]
    for array, (name, _, _, zeroed) in zip(arrays, expected, strict=True):
        assert array.flags.c_contiguous and array.flags.writeable, name
        assert array.ctypes.data % alignment == 0, (name, array.ctypes.data % 64)
        if zeroed:
            assert not array.any(), name
    spans = sorted((array.ctypes.data, array.ctypes.data + array.nbytes)
                   for array in arrays)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:]))
    for number, array in enumerate(arrays):
        array[...] = number + 1
    for number, array in enumerate(arrays):
        assert (array == number + 1).all()
