"""Fits on data read block by block (``fastem.em.sources``): np.memmap, ``.npy`` loaded
with ``mmap_mode='r'``, h5py, zarr and a minimal array-like.

The central claim is bitwise: from the same start, every source gives the same
fitted parameters, lower bound and iteration count as the ndarray in memory
(``assert_array_equal``), for the four covariance types, float32 and float64,
with and without sample weights, with a ragged last block and several chunks per
pass. The sample-based start (``init_sample_size``) is checked against
scikit-learn's KMeans and ``fastem.reference.m_step``; the per-block fold against
the kernels' ``reduce_*``; bad input, read errors and memory use as the issue asks.
"""

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from bayesian_helpers import (  # tests/bayesian_helpers.py
    PRIOR_TYPES,
    SOURCE_FIT_PARAMS,
    WEIGHT_SCALE,
    assert_identical_posterior,
    fit_bayesian,
    in_memory_fits_fixture,
)
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans, kmeans_plusplus

from fastem import BayesianGaussianMixture, reference
from fastem.em import driver as _driver
from fastem.em import sources as _sources
from fastem.kernels import estep as _kernels_estep
from fastem.mixture import GaussianMixture

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
N_SAMPLES, N_FEATURES, N_COMPONENTS = 6100, 3, 3  # not small data: the block kernels
BLOCK = 512  # 12 blocks, the last one ragged (468 rows)
RTOL_REFERENCE = 1e-10


def make_data(seed=0, n_samples=N_SAMPLES, n_features=N_FEATURES):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(N_COMPONENTS, n_features))
    labels = rng.integers(0, N_COMPONENTS, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, n_features))


def make_weights(seed=1, n_samples=N_SAMPLES):
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.0, 3.0, size=n_samples)
    weights[::11] = 0.0
    return weights


@pytest.fixture
def rng():
    return np.random.default_rng(20240613)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Streamed sources read 2 blocks at a time: several chunks per pass; chunked
    stores one storage chunk at a time: several pieces per chunk, the first and last
    often partial."""
    monkeypatch.setattr(_sources, "CHUNK_BYTES", 2 * BLOCK * N_FEATURES * 4)
    monkeypatch.setattr(_sources, "PIECE_BYTES", 1)


class RowsOnly:
    """The least a streamed source needs: shape, dtype, ndim and row slicing."""

    def __init__(self, array):
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        return self._array[key].copy()


class ChunkedRows(RowsOnly):
    """An array-like with storage chunks of 700 rows (``chunks``), not zarr: read in
    pieces of whole storage chunks, copied."""

    def __init__(self, array):
        super().__init__(array)
        self.chunks = (700, *array.shape[1:])


def open_as(kind, array, directory, name="X"):
    """``array`` as a source of the given kind (files written under ``directory``)."""
    if kind == "ndarray":
        return array
    if kind == "memmap":
        path = os.path.join(directory, f"{name}.dat")
        out = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
        out[:] = array
        out.flush()
        return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)
    if kind == "npy":
        path = os.path.join(directory, f"{name}.npy")
        np.save(path, array)
        return np.load(path, mmap_mode="r")
    if kind == "h5py":
        handle = h5py.File(os.path.join(directory, f"{name}.h5"), "w")
        chunks = (min(700, len(array)), *array.shape[1:])  # not lined up with blocks
        return handle.create_dataset(name, data=array, chunks=chunks)
    if kind == "zarr":
        chunks = (min(900, len(array)), *array.shape[1:])
        out = zarr.open_array(os.path.join(directory, f"{name}.zarr"), mode="w",
                              shape=array.shape, dtype=array.dtype, chunks=chunks)
        out[:] = array
        return out
    if kind == "rows-only":
        return RowsOnly(array)
    if kind == "chunked-rows":
        return ChunkedRows(array)
    raise ValueError(kind)


SOURCES = ("memmap", "npy", "h5py", "zarr", "rows-only", "chunked-rows")


def fit(X, sample_weight=None, **params):
    settings = dict(n_components=N_COMPONENTS, random_state=0, chunk_size=BLOCK,
                    max_iter=15, tol=1e-8, init_sample_size=2000)
    settings.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(**settings).fit(X, sample_weight=sample_weight)


def assert_same_fit(expected, got):
    for name in FITTED:
        assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert got.lower_bound_ == expected.lower_bound_
    assert got.lower_bounds_ == expected.lower_bounds_
    assert got.n_iter_ == expected.n_iter_
    assert got.converged_ == expected.converged_


# --------------------------------------------------------------------------
# the fold


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "diagonal"])
@pytest.mark.parametrize("grouping", [[1] * 9, [2, 3, 4], [9], [4, 1, 4]])
def test_fold_in_chunks_is_bitwise_the_kernels_reduce(rng, dense, grouping):
    """StatisticsFold over any grouping of the blocks into chunks gives the bits of
    reduce_dense / reduce_diagonal over all the blocks at once."""
    n_blocks, n_components, n_features, n_padded = 9, 4, 5, 8
    scale = 10.0 ** rng.integers(-8, 8, size=(n_blocks, 1))
    nk = rng.uniform(size=(n_blocks, n_components)) * scale
    sum_x = rng.normal(size=(n_blocks, n_components, n_padded)) * scale[:, :, None]
    if dense:
        scatter = rng.normal(size=(n_blocks, 2, n_padded, n_padded)) * scale[:, :, None, None]
        expected = _kernels_estep.reduce_dense(nk, sum_x, scatter, sums := rng.normal(
            size=(n_blocks, 3)), n_features)
        fold = _sources.StatisticsFold(True, n_components, n_features, n_padded, 2)
    else:
        sum_x = sum_x[:, :, :n_features].copy()
        scatter = rng.normal(size=(n_blocks, n_components, n_features)) * scale[:, :, None]
        sums = rng.normal(size=(n_blocks, 3))
        expected = _kernels_estep.reduce_diagonal(nk, sum_x, scatter, sums)
        fold = _sources.StatisticsFold(False, n_components, n_features, n_features, 0)
    start = 0
    for size in grouping:
        part = slice(start, start + size)
        fold.add((nk[part], sum_x[part], scatter[part], sums[part]))
        start += size
    for got, want in zip(fold.result(), expected, strict=True):
        assert_array_equal(got, want)


def test_streamed_statistics_equal_the_in_memory_pass(rng):
    X = make_data()
    weights = make_weights()
    parameters = _driver.Parameters(
        np.full(3, 1 / 3), X[:3].copy(), None, np.stack([np.eye(3) * 0.5] * 3)
    )
    memory = _driver.estep_statistics(X, weights, parameters, "full", BLOCK,
                                      with_entropy=True)
    source = _sources.StreamedSource(RowsOnly(X), RowsOnly(weights))
    streamed = _driver.source_statistics(source, parameters, "full", BLOCK,
                                         with_entropy=True)
    for name in ("nk", "sum_x", "scatter", "log_likelihood", "resp_log_resp",
                 "log_max_resp", "centres"):
        assert_array_equal(getattr(streamed, name), getattr(memory, name), err_msg=name)


# --------------------------------------------------------------------------
# the equivalence matrix


@pytest.fixture(scope="module")
def expected_fits():
    """In-memory fits, computed once per (covariance type, dtype, weighted)."""
    cache = {}

    def get(covariance_type, dtype, weighted, **params):
        key = (covariance_type, dtype, weighted, tuple(sorted(params.items())))
        if key not in cache:
            X = make_data().astype(dtype)
            weights = make_weights() if weighted else None
            cache[key] = fit(X, weights, covariance_type=covariance_type, **params)
        return cache[key]

    return get


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_source_gives_the_in_memory_fit_bit_for_bit(
    tmp_path, expected_fits, kind, covariance_type, dtype
):
    X = open_as(kind, make_data().astype(dtype), tmp_path)
    got = fit(X, covariance_type=covariance_type)
    assert_same_fit(expected_fits(covariance_type, dtype, False), got)


@pytest.mark.parametrize("kind", ["npy", "h5py", "rows-only"])
@pytest.mark.parametrize("dtype", ["int32", "float16"])
def test_other_numeric_dtypes_stream_as_in_memory(tmp_path, kind, dtype):
    """Integers and float16 are fitted in float64, as an ndarray of them is: the same
    bits from a file or an object with only row slicing."""
    X = np.round(make_data() * 100).astype(dtype)
    expected = fit(X)
    assert_same_fit(expected, fit(open_as(kind, X, tmp_path)))
    assert_array_equal(expected.predict(open_as(kind, X, tmp_path, name="Y")),
                       expected.predict(X))


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_sample_weights_streamed_with_the_data(tmp_path, expected_fits, kind,
                                               covariance_type):
    X = open_as(kind, make_data(), tmp_path)
    weights = open_as(kind, make_weights(), tmp_path, name="weights")
    got = fit(X, weights, covariance_type=covariance_type)
    assert_same_fit(expected_fits(covariance_type, "float64", True), got)
    # ndarray weights with a streamed X, too
    assert_same_fit(expected_fits(covariance_type, "float64", True),
                    fit(X, make_weights(), covariance_type=covariance_type))


@pytest.mark.parametrize("init_params", ["random_from_data", "k-means++"])
@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_other_starts_and_user_given_starts(tmp_path, expected_fits, init_params,
                                            covariance_type):
    X = open_as("npy", make_data(), tmp_path)
    for weighted in (False, True):
        expected = expected_fits(covariance_type, "float64", weighted,
                                 init_params=init_params)
        assert_same_fit(expected, fit(X, make_weights() if weighted else None,
                                      covariance_type=covariance_type,
                                      init_params=init_params))
    start = dict(weights_init=expected.weights_, means_init=expected.means_,
                 precisions_init=expected.precisions_, max_iter=3)
    in_memory = fit(make_data(), covariance_type=covariance_type, **start)
    assert_same_fit(in_memory, fit(X, covariance_type=covariance_type, **start))


def test_chunking_and_threads_do_not_change_the_bits(tmp_path, monkeypatch,
                                                     expected_fits):
    X = open_as("npy", make_data(), tmp_path)
    expected = expected_fits("full", "float64", False)
    for chunk_bytes in (1, 5 * BLOCK * N_FEATURES * 8, 1 << 30):
        monkeypatch.setattr(_sources, "CHUNK_BYTES", chunk_bytes)
        for n_threads in (1, 2):
            assert_same_fit(expected, fit(X, covariance_type="full", n_threads=n_threads))


def test_small_streamed_data_is_read_into_memory(tmp_path):
    X = make_data(n_samples=300)
    expected = fit(X, covariance_type="full")
    assert_same_fit(expected, fit(open_as("h5py", X, tmp_path), covariance_type="full"))


def test_a_fit_reached_through_the_fallback_is_the_same(tmp_path):
    """A component re-seeded (more components than clusters, duplicated rows) uses the
    data covariance and a random row, both read through the source."""
    rng = np.random.default_rng(3)
    X = np.repeat(rng.normal(size=(5, 2)), 1300, axis=0)
    X[:, 0] += 100.0
    params = dict(n_components=8, covariance_type="full", reg_covar=0.0,
                  init_params="random_from_data", max_iter=5)
    expected = fit(X, **params)
    assert expected.singular_events_
    got = fit(open_as("zarr", X, tmp_path), **params)
    assert_same_fit(expected, got)
    assert got.singular_events_ == expected.singular_events_


def test_data_scaled_to_unit_range_streams_too(tmp_path):
    X = np.ldexp(make_data(), 450)  # fitted at unit scale (beyond 2**400)
    expected = fit(X, covariance_type="diag")
    assert_same_fit(expected, fit(open_as("memmap", X, tmp_path), covariance_type="diag"))


# --------------------------------------------------------------------------
# the starts


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampled_kmeans_start_against_sklearn_and_the_reference(covariance_type):
    """init_sample_size: KMeans on the sampled rows, every row to its nearest centre,
    then the M-step of those hard responsibilities."""
    X = make_data()
    size, seed = 1500, 7
    model = GaussianMixture(N_COMPONENTS, covariance_type=covariance_type, max_iter=0,
                            init_sample_size=size, random_state=seed, reg_covar=1e-6,
                            chunk_size=BLOCK).fit(X)
    random_state = np.random.RandomState(seed)
    generator = np.random.default_rng(random_state.randint(2**32, dtype=np.uint64))
    rows = np.sort(generator.choice(len(X), size=size, replace=False))
    centres = KMeans(N_COMPONENTS, n_init=1, random_state=random_state).fit(
        X[rows]).cluster_centers_
    distances = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)
    resp = np.eye(N_COMPONENTS)[distances.argmin(axis=1)]
    weights, means, covariances = reference.m_step(X, resp, covariance_type, 1e-6)
    assert_allclose(model.weights_, weights, rtol=RTOL_REFERENCE)
    assert_allclose(model.means_, means, rtol=RTOL_REFERENCE)
    assert_allclose(model.covariances_, covariances, rtol=RTOL_REFERENCE,
                    atol=RTOL_REFERENCE * np.abs(covariances).max())


def scikit_learns_k_rows(X, sample_weight, n_components, init_params, seed):
    """The K rows scikit-learn's start ``init_params`` picks, drawn here with
    scikit-learn and numpy: k-means++ is ``sklearn.cluster.kmeans_plusplus`` with
    the weights; random_from_data is GaussianMixture's ``RandomState.choice(N, K,
    replace=False)`` among the rows of positive weight (a zero weight leaves its
    row out, so it is never a component's row)."""
    random_state = np.random.RandomState(seed)
    if init_params == "k-means++":
        return kmeans_plusplus(X, n_components, random_state=random_state,
                               sample_weight=sample_weight)[1]
    candidates = np.flatnonzero(sample_weight > 0)
    return candidates[random_state.choice(len(candidates), n_components,
                                          replace=False)]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("init_params", ["random_from_data", "k-means++"])
def test_start_from_k_rows_is_the_one_hot_pass(covariance_type, weighted, init_params):
    """random_from_data and the in-memory k-means++ read only their K rows (drawn
    without an (N,) array: fastem.em.draws, fastem.em.kmeans_plusplus): the start
    is reference.m_step of one-hot responsibilities on the rows scikit-learn's
    draws pick (scikit_learns_k_rows; weighted too), and the bits of the one-hot
    pass over all rows it replaces (parameters_from_resp), including a 'tied' sum
    in chunk order."""
    X = make_data(n_samples=3 * _driver.INIT_CHUNK + 17, n_features=2)
    weights = make_weights(n_samples=len(X)) if weighted else np.ones(len(X))
    n_components, seed, reg_covar = 5, 5, 1e-6
    settings = _driver.FitSettings(
        n_components=n_components, covariance_type=covariance_type, tol=1e-3,
        reg_covar=reg_covar, max_iter=1, n_init=1, init_params=init_params,
        weights_init=None, means_init=None, precisions_init=None,
        on_singular="recover", verbose=0, verbose_interval=10, block_size=BLOCK,
    )
    got = _driver.start_parameters(_sources.MemorySource(X, weights), settings,
                                   np.random.RandomState(seed))[:3]
    rows = scikit_learns_k_rows(X, weights, n_components, init_params, seed)
    assert np.all(weights[rows] > 0)
    one_hot = np.zeros((len(X), n_components))
    one_hot[rows, np.arange(n_components)] = 1.0
    expected = reference.m_step(X, one_hot, covariance_type, reg_covar,
                                sample_weight=weights)
    for name, want, have in zip(("weights", "means", "covariances"), expected, got,
                                strict=True):
        # a one-row component's covariance is reg_covar on the diagonal, and
        # rounding (about 1e-30) off it: an absolute tolerance for those
        atol = RTOL_REFERENCE * np.abs(want).max() if name == "covariances" else 0
        assert_allclose(have, want, rtol=RTOL_REFERENCE, atol=atol, err_msg=name)
    resp_of = _driver.initial_resp(X, weights, settings, np.random.RandomState(seed))
    one_hot_pass = _driver.parameters_from_resp(X, weights, resp_of, n_components,
                                                covariance_type, reg_covar)
    for name, want, have in zip(("weights", "means", "covariances"), one_hot_pass,
                                got, strict=True):
        if name == "weights" and weighted:  # divided by the weights' sum per block
            assert_allclose(have, want, rtol=1e-15)
        else:
            assert_array_equal(have, want, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_start_streams_bit_for_bit(tmp_path, monkeypatch, covariance_type,
                                          dtype):
    """init_params='random' from every source: the in-memory fit's bits. Chunks of the
    start of 1000 rows: 7 of them, the last ragged, one or two per read."""
    monkeypatch.setattr(_driver, "INIT_CHUNK", 1000)
    X = make_data().astype(dtype)
    params = dict(covariance_type=covariance_type, init_params="random", n_init=2)
    expected = fit(X, **params)
    for kind in SOURCES:
        assert_same_fit(expected, fit(open_as(kind, X, tmp_path, name=kind), **params))
    if covariance_type in ("full", "spherical") and dtype == "float64":
        weights = make_weights()
        expected = fit(X, weights, **params)
        assert_same_fit(expected, fit(open_as("zarr", X, tmp_path, name="Xw"),
                                      open_as("h5py", weights, tmp_path, name="w"),
                                      **params))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_random_start_is_scikit_learns_one_draw(tmp_path, covariance_type):
    """Drawn INIT_CHUNK rows at a time from a memory map, the start is bit for bit
    scikit-learn's single uniform draw of (n_samples, K) normalised (initial_resp)
    through parameters_from_resp, leaves the RandomState where that draw does, and
    agrees with reference.m_step; K = 9 puts the row sums past numpy's 8-term
    unrolled loop, and the last chunk holds one row."""
    n_components = 9
    X = make_data(n_samples=2 * _driver.INIT_CHUNK + 1, n_features=2)
    settings = _driver.FitSettings(
        n_components=n_components, covariance_type=covariance_type, tol=1e-3,
        reg_covar=1e-6, max_iter=1, n_init=1, init_params="random", weights_init=None,
        means_init=None, precisions_init=None, on_singular="recover", verbose=0,
        verbose_interval=10, block_size=BLOCK,
    )
    one_draw = np.random.RandomState(5)
    ones = np.ones(len(X))
    expected = _driver.parameters_from_resp(
        X, ones, _driver.initial_resp(X, ones, settings, one_draw), n_components,
        covariance_type, 1e-6)
    by_chunk = np.random.RandomState(5)
    source = _sources.StreamedSource(open_as("npy", X, tmp_path))
    source.scan(BLOCK)  # the checks' pass, as a fit makes it first
    got = _driver._random_start(source, settings, by_chunk)
    for name, want, have in zip(("weights", "means", "covariances"), expected, got,
                                strict=True):
        assert_array_equal(have, want, err_msg=name)
    assert by_chunk.uniform() == one_draw.uniform()
    resp = np.random.RandomState(5).uniform(size=(len(X), n_components))
    resp /= resp.sum(axis=1, keepdims=True)
    for want, have in zip(reference.m_step(X, resp, covariance_type, 1e-6), got,
                          strict=True):
        assert_allclose(have, want, rtol=RTOL_REFERENCE)


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.5, TypeError),
                                          (True, TypeError)])
def test_init_sample_size_is_checked(value, error):
    with pytest.raises(error, match="init_sample_size"):
        GaussianMixture(2, init_sample_size=value).fit(make_data(n_samples=50))


# --------------------------------------------------------------------------
# inference


@pytest.mark.parametrize("kind", ["npy", "zarr"])
def test_inference_on_sources_is_the_in_memory_inference(tmp_path, expected_fits, kind):
    model = expected_fits("full", "float64", False)
    X = make_data(seed=5)
    source = open_as(kind, X, tmp_path)
    assert_array_equal(model.predict(source), model.predict(X))
    assert_array_equal(model.predict_proba(source), model.predict_proba(X))
    assert_array_equal(model.score_samples(source), model.score_samples(X))
    assert model.score(source) == model.score(X)
    assert model.bic(source) == model.bic(X)
    params = dict(n_components=N_COMPONENTS, random_state=0, chunk_size=BLOCK,
                  init_sample_size=2000)
    labels = GaussianMixture(**params).fit_predict(source)
    assert_array_equal(labels, GaussianMixture(**params).fit(X).predict(X))


# --------------------------------------------------------------------------
# bad input


def test_wrong_number_of_dimensions(tmp_path):
    for shape in [(N_SAMPLES,), (10, 20, 3)]:
        X = open_as("npy", np.zeros(shape), tmp_path)
        with pytest.raises(ValueError, match="2-D array"):
            GaussianMixture(2).fit(X)


def test_a_source_without_row_slicing_is_a_type_error():
    class NoSlicing:
        shape, dtype, ndim = (100, 2), np.dtype("float64"), 2

    class BadSlicing(NoSlicing):
        def __getitem__(self, key):
            raise KeyError(key)

    with pytest.raises(TypeError, match="cannot be sliced by rows"):
        GaussianMixture(2).fit(NoSlicing())
    with pytest.raises(TypeError, match="cannot be sliced by rows"):
        GaussianMixture(2).fit(BadSlicing())


def test_nan_in_block_1000_names_the_row(tmp_path):
    X = np.random.default_rng(0).normal(size=(1001 * 64, 2))
    X[1000 * 64 + 5, 1] = np.nan
    model = GaussianMixture(3, chunk_size=64)
    with pytest.raises(ValueError, match=r"NaN at row 64005 \(block 1000\), column 1"):
        model.fit(open_as("npy", X, tmp_path))
    assert not hasattr(model, "n_features_in_")


def test_bad_streamed_weights(tmp_path):
    X = open_as("npy", make_data(), tmp_path)
    weights = make_weights()
    weights[4000] = -1.0
    with pytest.raises(ValueError, match=r"non-negative; found -1\.0 at index 4000"):
        fit(X, open_as("memmap", weights, tmp_path, name="w"))
    with pytest.raises(ValueError, match="shape"):
        fit(X, np.ones(5))
    weights[4000] = np.nan
    with pytest.raises(ValueError, match="sample_weight contains nan at index 4000; "
                                         "weights must be finite"):
        fit(X, open_as("memmap", weights, tmp_path, name="w_nan"))
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        fit(X, open_as("memmap", np.zeros(N_SAMPLES), tmp_path, name="w_zero"))


@pytest.mark.parametrize("n_samples", [300_000, 3_000_000])
def test_streamed_data_without_features_is_a_clear_error(tmp_path, n_samples):
    """(n, 0) data read block by block: the message of in-memory data, not a
    reduction of an empty array or a division by zero in the block size."""
    X = open_as("npy", np.empty((n_samples, 0)), tmp_path)
    with pytest.raises(ValueError, match=(
            rf"Found array with 0 feature\(s\) \(shape=\({n_samples}, 0\)\) while a "
            "minimum of 1 is required by GaussianMixture")):
        fit(X)


def test_streamed_inference_names_the_first_bad_value(tmp_path):
    model = fit(make_data())
    X = make_data(seed=2)
    X[3000, 1] = np.nan
    with pytest.raises(ValueError, match=r"Input X contains NaN at row 3000 \(block 5\), "
                                         "column 1. Remove or impute"):
        model.predict(open_as("npy", X, tmp_path))


def reader_threads():
    return [thread for thread in threading.enumerate()
            if thread.name.startswith("fastem-reader") and thread.is_alive()]


@pytest.mark.parametrize("method", ["predict_proba", "score_samples", "predict"])
def test_an_inference_error_mid_file_leaves_no_reader_thread(tmp_path, method):
    """A NaN found mid-file in inference on a memory map: once the error has been
    raised, the reader thread (StreamedSource.chunks) has stopped, its next chunk
    and buffers dropped, even while the traceback is kept (as a debugger, a
    notebook's last error or pytest's report keep it)."""
    model = fit(make_data())
    X = make_data(seed=2)
    X[3000, 1] = np.nan  # chunk 2 of 6 (the chunks are 2 blocks)
    source = open_as("npy", X, tmp_path)
    assert not reader_threads()
    with pytest.raises(ValueError, match="NaN at row 3000") as raised:
        getattr(model, method)(source)
    assert raised.value.__traceback__ is not None  # kept alive while checking
    assert not reader_threads(), reader_threads()


def test_an_object_array_of_numbers_streams_as_in_memory():
    """An array-like of dtype object holding numbers is read as float64, block by
    block, as an ndarray of them is converted; an element that is not a number is
    the in-memory TypeError, naming its row."""
    X = make_data()
    expected = fit(X.astype(object))
    assert_same_fit(expected, fit(RowsOnly(X.astype(object))))
    assert_array_equal(expected.predict(RowsOnly(X.astype(object))),
                       expected.predict(X))
    with_text = X.astype(object)
    with_text[4000, 1] = "n/a"
    with pytest.raises(TypeError) as in_memory:
        fit(with_text)
    with pytest.raises(TypeError) as streamed:
        fit(RowsOnly(with_text))
    assert str(streamed.value) == str(in_memory.value)
    assert "row 4000, column 1 ('n/a')" in str(streamed.value)


class FailingRows(RowsOnly):
    """Rows past ``fail_from`` cannot be read (as a damaged file)."""

    def __init__(self, array, fail_from):
        super().__init__(array)
        self.fail_from = fail_from
        self.armed = False

    def __getitem__(self, key):
        if self.armed and isinstance(key, slice) and key.stop > self.fail_from:
            raise OSError("Can't read data (inflate() failed)")
        return super().__getitem__(key)


@contextlib.contextmanager
def breaks_after_the_checks(source):
    """The first StreamedSource.read arms ``source`` (a FailingRows): the checks pass,
    then the disk breaks."""
    read = _sources.StreamedSource.read

    def read_then_fail(self, *args, **kwargs):
        source.armed = True
        return read(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_sources.StreamedSource, "read", read_then_fail)
        yield


def test_a_read_error_mid_fit_names_the_block_and_leaves_no_half_fitted_model():
    X = make_data()
    source = FailingRows(X, fail_from=4000)
    previous = fit(X[:5000])
    model = fit(X[:5000])
    with breaks_after_the_checks(source), pytest.raises(
            _sources.DataReadError, match=r"block 7 \(rows 3584 to 4095\)"):
        model.fit(source)
    assert_same_fit(previous, model)  # what it was before the failed fit
    fresh = GaussianMixture(3, chunk_size=BLOCK)
    source.armed = True
    with pytest.raises(OSError, match="block"):
        fresh.fit(source)
    assert not any(name.endswith("_") for name in vars(fresh))


def test_a_read_error_of_streamed_weights_names_the_block():
    """As for X: a chunk of weights that cannot be read is narrowed down to its first
    block that cannot be read on its own (it named the whole chunk)."""
    X, weights = make_data(), make_weights()
    source = FailingRows(weights, fail_from=4000)
    with breaks_after_the_checks(source), pytest.raises(
            _sources.DataReadError,
            match=r"block 7 \(rows 3584 to 4095\) of sample_weight"):
        fit(RowsOnly(X), source)


class CountingRows(RowsOnly):
    """Counts the reads (``__getitem__`` calls)."""

    reads = 0

    def __getitem__(self, key):
        self.reads += 1
        return super().__getitem__(key)


def test_the_weights_of_a_dense_sample_are_read_in_one_pass():
    """The start's sample of rows (one in 100 here) is read in one pass over the
    chunks, and so are its weights (they were read run by run: a read per ~2
    rows picked, each decoding a whole storage chunk of a zarr or h5py file)."""
    n_samples = 200_000
    weights = CountingRows(np.random.default_rng(0).uniform(0.5, 2.0, n_samples))
    source = _sources.open_source(RowsOnly(np.zeros((n_samples, 2))), weights)
    indices = np.sort(np.random.default_rng(1).choice(n_samples, 2000, replace=False))
    picked = source.weights_at(indices)
    reads = weights.reads
    assert_array_equal(picked, source.read_weights(0, n_samples)[indices])
    step = source.chunk_bytes // 8
    assert reads <= -(-n_samples // step)  # one read per chunk of weights


def test_a_truncated_file_is_a_clear_error(tmp_path):
    """A zarr chunk that was damaged after the array was written."""
    X = open_as("zarr", make_data(), tmp_path)
    chunk_files = sorted(
        os.path.join(root, name) for root, _, names in os.walk(tmp_path / "X.zarr")
        for name in names if not name.startswith(("zarr.json", ".z"))
    )
    with open(chunk_files[len(chunk_files) // 2], "wb") as damaged:
        damaged.write(b"not a chunk")
    with pytest.raises(_sources.DataReadError, match="block"):
        fit(X)


# --------------------------------------------------------------------------
# memory


MEMORY_SCRIPT = textwrap.dedent("""
    import sys, threading, time, warnings
    import numpy as np
    from fastem.em import sources as _sources
    from fastem.mixture import GaussianMixture

    _sources.CHUNK_BYTES = 1 << 20
    path, field = sys.argv[1], sys.argv[2] + ":"  # RssAnon or RssFile
    X = np.load(path, mmap_mode="r")

    def anonymous_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])

    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous_kib())
            time.sleep(0.002)

    model = GaussianMixture(4, max_iter=2, tol=0, init_sample_size=20000, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:70000])  # load the kernels before measuring
    baseline = anonymous_kib()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    done.set()
    sampler.join()
    print(max(peak[0], anonymous_kib()) - baseline)
""")


def test_streamed_fit_memory_does_not_grow_with_n_samples(tmp_path):
    """Peak anonymous memory (RssAnon, sampled every 2 ms) of a memory-mapped fit of
    N and of 4N rows: the growth from N to 4N is a small fraction of the data."""
    rng = np.random.default_rng(0)
    peaks = []
    sizes = (250_000, 1_000_000)
    for n_samples in sizes:
        path = tmp_path / f"x{n_samples}.npy"
        X = (rng.normal(size=(n_samples, 8)) + rng.integers(0, 4, (n_samples, 1)) * 3)
        np.save(path, X.astype(np.float32))
        del X
        peaks.append(peak_growth(path, "RssAnon"))
    data_growth = (sizes[1] - sizes[0]) * 8 * 4
    assert peaks[1] - peaks[0] < 0.1 * data_growth, (peaks, data_growth)
    assert peaks[1] < 0.5 * sizes[1] * 8 * 4, peaks


def peak_growth(path, field):
    """Bytes by which /proc/self/status's ``field`` grew at most during a fit of the
    .npy at ``path``, memory-mapped (MEMORY_SCRIPT, in a fresh process)."""
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(path), field],
                            capture_output=True, text=True, timeout=600, check=True)
    return int(result.stdout.split()[-1]) * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("order, n_samples, n_features",
                         [("C", 1_000_000, 8), ("F", 4_000_000, 4)])
def test_memory_mapped_fit_unmaps_the_pages_it_has_read(tmp_path, order, n_samples,
                                                        n_features):
    """The file pages of a memory-mapped fit's resident set (RssFile, sampled every
    2 ms) stay at a few 1 MiB chunks, not the file (32 MB in C order, 64 MB in
    Fortran order) that every pass reads: pages are unmapped once their rows are
    used (StreamedSource.release_rows). Without that, this grew by the whole file.

    In Fortran order a chunk's rows are one piece of each column: those pieces are
    unmapped (before, nothing was). A page fault may map a whole large folio of the
    page cache (Linux 6.18 on ext4: up to 2 MiB), so each column can hold that much
    beyond its chunk: 4 columns, 8 MiB, within the bound of a quarter of the file."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(n_samples, n_features))
         + rng.integers(0, 4, (n_samples, 1)) * 3).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, np.asarray(X, order=order))
    del X
    assert np.load(path, mmap_mode="r").flags[f"{order}_CONTIGUOUS"]
    growth = peak_growth(path, "RssFile")
    assert growth < 0.25 * n_samples * n_features * 4, growth


ESTIMATE_PEAK_SCRIPT = textwrap.dedent("""
    import sys, tracemalloc, warnings
    import numpy as np
    from fastem.em import sources as _sources
    from fastem.mixture import GaussianMixture

    _sources.CHUNK_BYTES = 1 << 20
    X = np.load(sys.argv[1], mmap_mode="r")
    model = GaussianMixture(8, max_iter=2, tol=0, init_sample_size=20000,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X[:70000])
    model.predict_proba(X[:70000])  # load the kernels before measuring
    tracemalloc.start()
    resp = model.predict_proba(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(peak, resp.nbytes, resp.shape[0])
""")


def test_streamed_predict_proba_holds_its_output_and_a_chunk(tmp_path):
    """predict_proba of a memory map (500,000 x 4, K = 8: a 32 MB output; 1 MiB
    chunks of X, 32,768 rows) writes each chunk's responsibilities into one output
    array: its peak (tracemalloc, in a fresh process: this one's background threads
    allocate too) is the output and a few chunks' (rows, K) temporaries, not the
    pieces and their concatenation (twice the output)."""
    rng = np.random.default_rng(0)
    n_samples, n_features, n_components = 500_000, 4, 8
    X = (rng.normal(size=(n_samples, n_features))
         + rng.integers(0, 4, (n_samples, 1)) * 3)
    path = tmp_path / "x.npy"
    np.save(path, X)
    del X
    result = subprocess.run([sys.executable, "-c", ESTIMATE_PEAK_SCRIPT, str(path)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    peak, output_bytes, n_rows = map(int, result.stdout.split()[-3:])
    assert (n_rows, output_bytes) == (n_samples, n_samples * n_components * 8)
    # 0.3 x the output (9.6 MB) for what inference of one chunk holds besides it (its
    # weighted log-probabilities, log-responsibilities and their exp, each 32,768 x 8
    # float64 = 2 MiB: 1.21 x in all, measured), and an allowance of 1 MiB for the
    # interpreter's small allocations; the pieces and their concatenation were 2.0 x
    allowance = 1 << 20
    assert peak < 1.3 * output_bytes + allowance, (peak, output_bytes)


@pytest.mark.parametrize("mode", ["r", "r+"])
def test_fortran_ordered_memory_map_fits_as_in_memory(tmp_path, expected_fits, mode):
    """A Fortran-ordered .npy (columns contiguous), whose pages are released column
    piece by column piece, gives the in-memory fit and inference, bit for bit."""
    path = tmp_path / "x.npy"
    np.save(path, np.asfortranarray(make_data()))
    X = np.load(path, mmap_mode=mode)
    assert X.flags.f_contiguous and not X.flags.c_contiguous
    expected = expected_fits("full", "float64", False)
    assert_same_fit(expected, fit(X, covariance_type="full"))
    assert_same_fit(expected, fit(X, covariance_type="full"))  # the pages read again
    assert_array_equal(expected.predict_proba(X), expected.predict_proba(make_data()))
    assert_same_fit(expected_fits("full", "float64", False),
                    fit(X[:, :], covariance_type="full"))  # a view of the map


def test_copy_on_write_memory_map_keeps_the_callers_changes(tmp_path):
    """A memory map opened copy-on-write (mode 'c') that the caller changed is fitted
    with the changes: its pages are not dropped (that would read the file again)."""
    X = make_data()
    path = tmp_path / "x.npy"
    np.save(path, X)
    changed = np.load(path, mmap_mode="c")
    changed[::7] += 5.0
    expected = fit(np.array(changed))
    assert_same_fit(expected, fit(changed))
    assert_same_fit(expected, fit(changed))  # a second fit reads the same rows


def test_writable_memory_map_is_fitted_as_changed_and_left_unchanged(tmp_path):
    """A memory map opened for writing (mode 'r+') that the caller changed and did
    not flush: the fit sees the changes (its pages may be dropped after reading:
    shared pages keep what was written) and leaves the array, and the file once
    flushed, exactly as the caller made them."""
    X = make_data()
    path = tmp_path / "x.npy"
    np.save(path, X)
    changed = np.load(path, mmap_mode="r+")
    changed[::7] += 5.0
    expected_values = np.array(changed)
    expected = fit(expected_values)
    assert_same_fit(expected, fit(changed))
    model = fit(changed)
    model.predict(changed), model.score_samples(changed)
    assert_array_equal(changed, expected_values)
    changed.flush()
    del changed
    assert_array_equal(np.load(path), expected_values)


def test_a_zarr_fit_holds_two_chunks_and_one_storage_chunk(tmp_path, monkeypatch,
                                                           background):
    """A fit from zarr holds our two chunks (the one the kernels use, the one being
    read into) and the storage chunk zarr is decoding (its compressed bytes and a
    decoded copy), not every storage chunk a read touches (zarr decodes those at
    once) nor a new array per chunk. Measured with tracemalloc, which sees zarr's and
    numpy's buffers: the process's anonymous memory (as measured above for a memory
    map) also counts what glibc keeps of the buffers zarr's decoding threads freed,
    which varies from run to run (see the README). Before the reads went piece by
    piece into two reused arrays this fit held 9.7 to 10.6 MiB; now 5.9."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.normal(size=(240_000, 8)) + rng.integers(0, 4, (240_000, 1)) * 3.0
    storage_rows = 10_000  # 640 KB storage chunks
    store = zarr.open_array(str(tmp_path / "X.zarr"), mode="w", shape=X.shape,
                            dtype=X.dtype, chunks=(storage_rows, 8))
    store[:] = X
    chunk_bytes = 2 << 20  # 8 blocks of 4096 rows
    monkeypatch.setattr(_sources, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(_sources, "PIECE_BYTES", chunk_bytes // 4)  # as 4 of 16 MiB
    start = dict(weights_init=np.full(4, 0.25), means_init=X[:4],
                 precisions_init=np.stack([np.eye(8)] * 4))
    params = dict(max_iter=2, tol=0, chunk_size=4096, **start)
    model = fit(store, n_components=4, **params)  # load the kernels first
    background.quiet()  # the background fixtures' threads allocate in this process too
    tracemalloc.start()
    try:
        fit(store, n_components=4, **params)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    bound = 2 * chunk_bytes + 3 * storage_rows * 8 * 8 + (1 << 20)
    assert peak < bound, (peak / 2**20, bound / 2**20)
    assert_same_fit(fit(X, n_components=4, **params), model)


def test_the_core_install_does_not_import_dask(tmp_path):
    """Streamed fits and inference never import dask (an optional dependency)."""
    path = tmp_path / "x.npy"
    np.save(path, make_data())
    script = textwrap.dedent(f"""
        import sys, warnings
        import numpy as np
        from fastem.mixture import GaussianMixture
        warnings.simplefilter("ignore")
        X = np.load({str(path)!r}, mmap_mode="r")
        GaussianMixture(3, max_iter=2).fit(X).predict(X)
        assert not any(name.split(".")[0] in ("dask", "distributed")
                       for name in sys.modules), "dask was imported"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


@pytest.mark.parametrize("dense", [True, False])
def test_sampled_rows_are_read_in_one_pass_or_in_runs(tmp_path, monkeypatch, dense):
    X = make_data()
    source = _sources.StreamedSource(open_as("zarr", X, tmp_path))
    monkeypatch.setattr(_sources, "DENSE_SAMPLE", 10 if dense else 10**6)
    rows = np.sort(np.random.default_rng(0).choice(len(X), 1000, replace=False))
    assert_array_equal(source.rows(rows), X[rows])


# --------------------------------------------------------------------------
# BayesianGaussianMixture: the same sources, the same bits


expected_bayesian = in_memory_fits_fixture(make_data, make_weights)


@pytest.mark.parametrize("kind", ["npy", "h5py", "zarr"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_bayesian_fit_from_every_source_is_the_in_memory_fit(
    tmp_path, expected_bayesian, kind, covariance_type, dtype, prior_type
):
    """A memory-mapped .npy, h5py and zarr give the in-memory posterior and lower
    bounds bit for bit, from the same (sampled k-means) start."""
    X = open_as(kind, make_data().astype(dtype), tmp_path)
    params = dict(covariance_type=covariance_type, weight_concentration_prior_type=prior_type)
    expected = expected_bayesian(dtype=dtype, **params)
    assert expected.n_iter_ == 10  # ten variational iterations compared, not a start
    assert_identical_posterior(fit_bayesian(X, **params), expected)


@pytest.mark.parametrize("covariance_type", ["tied", "spherical"])
def test_bayesian_streamed_weights_and_other_starts(tmp_path, expected_bayesian,
                                                   covariance_type):
    """Weights streamed with the data (as given: a variational fit does not rescale
    them), and the K-row starts, give the in-memory bits."""
    X = open_as("npy", make_data(), tmp_path)
    weights = open_as("memmap", WEIGHT_SCALE * make_weights(), tmp_path, name="weights")
    assert_identical_posterior(fit_bayesian(X, weights, covariance_type=covariance_type),
                               expected_bayesian(covariance_type, weighted=True))
    for init_params in ("k-means++", "random_from_data"):
        assert_identical_posterior(
            fit_bayesian(X, covariance_type=covariance_type, init_params=init_params),
            expected_bayesian(covariance_type, init_params=init_params))


def test_bayesian_data_scaled_to_unit_range_streams_too(tmp_path):
    X = np.ldexp(make_data(), 450)  # fitted at unit scale (beyond 2**400)
    expected = fit_bayesian(X, covariance_type="diag")
    assert_identical_posterior(fit_bayesian(open_as("zarr", X, tmp_path),
                                            covariance_type="diag"), expected)


def test_bayesian_starts_on_streamed_data_are_those_of_gaussian_mixture(tmp_path):
    """Without init_sample_size a streamed fit starts from the sampled k-means (the
    in-memory one from k-means on all rows); 'random' draws scikit-learn's
    responsibilities block by block, the in-memory bits."""
    X = make_data()
    source = open_as("npy", X, tmp_path)
    sampled = fit_bayesian(X, init_sample_size=100_000)  # every row: the default
    assert_identical_posterior(fit_bayesian(source, init_sample_size=None), sampled)
    assert_identical_posterior(fit_bayesian(source, init_params="random"),
                               fit_bayesian(X, init_params="random"))
    for value, error in [(0, ValueError), (2.5, TypeError)]:
        with pytest.raises(error, match="init_sample_size"):
            fit_bayesian(X, init_sample_size=value)


def test_bayesian_inference_on_sources_is_the_in_memory_inference(tmp_path,
                                                                  expected_bayesian):
    model = expected_bayesian("full")
    X = make_data(seed=5)
    source = open_as("h5py", X, tmp_path)
    assert_array_equal(model.predict(source), model.predict(X))
    assert_array_equal(model.predict_proba(source), model.predict_proba(X))
    assert_array_equal(model.score_samples(source), model.score_samples(X))
    assert model.score(source) == model.score(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = BayesianGaussianMixture(**SOURCE_FIT_PARAMS, covariance_type="full"
                                         ).fit_predict(open_as("zarr", make_data(), tmp_path))
    assert_array_equal(labels, model.predict(make_data()))


def test_in_memory_weight_lookups_by_chunk_match_whole_array_numpy():
    """With zero weights, an in-memory source finds the rows of given positive-weight
    ranks, and precision_limit the spread of the weighted rows, a chunk of rows at a
    time: the same as numpy over the whole array, across chunk boundaries."""
    rng = np.random.default_rng(7)
    n_samples = 3 * _sources.MEMORY_CHUNK_ROWS + 123
    X = rng.normal(size=(n_samples, 3))
    X[rng.integers(n_samples, size=50)] *= 1e3  # extremes, some weighted
    weights = rng.uniform(0.5, 2.0, n_samples) * (rng.uniform(size=n_samples) < 0.4)
    positive = np.flatnonzero(weights > 0)
    ranks = np.sort(rng.choice(len(positive), size=40, replace=False))
    ranks[-1] = len(positive) - 1  # the last positive row
    source = _sources.MemorySource(X, weights)
    assert_array_equal(source.positive_rows(ranks), positive[ranks])
    assert source.n_positive() == len(positive)
    assert source.first_positive_row() == positive[0]
    weighted = X[positive]
    expected = float(np.max(0.5 * weighted.max(axis=0) - 0.5 * weighted.min(axis=0)))
    assert _driver._half_spread_of_weighted(X, weights) == expected
    assert _driver.precision_limit(X, weights) == _driver.precision_limit(weighted,
                                                                         weights[positive])


def test_unit_weights_are_a_view_that_the_lookups_read_without_arrays():
    weights = _sources.unit_weights(1000)
    assert weights.strides == (0,) and not weights.flags.writeable
    assert _sources.are_unit_weights(weights)
    assert not _sources.are_unit_weights(np.ones(1000))
    assert _sources.count_positive(weights) == 1000
    assert _sources.first_positive(weights) == 0
    assert _sources.kernel_weights(weights) is _kernels_estep.UNIT_WEIGHT
    assert_array_equal(_sources.row_weights(weights), np.ones(1000))
