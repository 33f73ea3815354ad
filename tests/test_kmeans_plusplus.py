"""Tests of :mod:`fastem.em.kmeans_plusplus` (k-means++ in bounded memory).

Its oracle is scikit-learn's ``kmeans_plusplus``: the same rows, in order,
and the random state left where scikit-learn leaves it, for both dtypes,
unit (broadcast), positive and partly zero weights, K from 1 to 20, blocks
of 1, 7 and the default number of rows (ragged last blocks), blocks
lengthened past MAX_BLOCKS, and duplicated rows. The kernels that reproduce
numpy's arithmetic (the pairwise sum of the weights, the cumsum of the
probabilities, searchsorted on block ends) are tested against numpy itself.
Memory: tracemalloc's peak does not grow with the number of rows.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.cluster import kmeans_plusplus
from sklearn.metrics.pairwise import _euclidean_distances

from fastem.em import kmeans_plusplus as _kmeans_plusplus
from fastem.em.kmeans_plusplus import kmeans_plusplus_rows
from fastem.kernels import kmeans_plusplus as kernels

DTYPES = (np.float64, np.float32)
SEEDS = (0, 1, 2)
# (n_samples, n_features, n_clusters)
SHAPES = ((1000, 3, 5), (777, 2, 20), (300, 1, 1), (2001, 8, 16))


@pytest.fixture
def rng():
    return np.random.default_rng(20250113)


def make_weights(kind, n_samples, rng):
    if kind == "unit":
        return np.broadcast_to(1.0, (n_samples,))
    if kind == "positive":
        return rng.uniform(0.1, 3.0, n_samples)
    weights = rng.uniform(0.0, 2.0, n_samples)  # "zeros": about half are zero
    weights[rng.random(n_samples) < 0.5] = 0.0
    return weights


def same_as_sklearn(X, sample_weight, n_clusters, seed, **kwargs):
    """Assert that fastem picks scikit-learn's rows and leaves the same state."""
    theirs = np.random.RandomState(seed)
    ours = np.random.RandomState(seed)
    expected = kmeans_plusplus(
        X, n_clusters, random_state=theirs, sample_weight=sample_weight
    )[1]
    got = kmeans_plusplus_rows(X, sample_weight, n_clusters, ours, **kwargs)
    assert_array_equal(got, expected)
    state_theirs, state_ours = theirs.get_state(), ours.get_state()
    assert_array_equal(state_ours[1], state_theirs[1])
    assert state_ours[2:] == state_theirs[2:]


@pytest.mark.parametrize("block_rows", [7, _kmeans_plusplus.BLOCK_ROWS])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weights", ["unit", "positive", "zeros"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_rows_and_state_as_sklearn(dtype, weights, shape, block_rows, rng):
    n_samples, n_features, n_clusters = shape
    X = rng.standard_normal((n_samples, n_features)).astype(dtype)
    sample_weight = make_weights(weights, n_samples, rng)
    for seed in SEEDS:
        same_as_sklearn(X, sample_weight, n_clusters, seed, block_rows=block_rows)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_per_block_and_longer_blocks(dtype, rng, monkeypatch):
    X = (rng.standard_normal((500, 4)) * [1.0, 10.0, 0.1, 3.0]).astype(dtype)
    sample_weight = make_weights("zeros", 500, rng)
    same_as_sklearn(X, sample_weight, 9, 3, block_rows=1)
    # at most MAX_BLOCKS block ends per candidate: 500 rows in 3 blocks of 167
    monkeypatch.setattr(_kmeans_plusplus, "MAX_BLOCKS", 3)
    for seed in SEEDS:
        same_as_sklearn(X, sample_weight, 9, seed, block_rows=7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_duplicated_rows(dtype, rng):
    # at most 16 distinct rows of small integers (every distance exact): with
    # K = 20 the potential reaches 0, where every later candidate is row 0
    X = rng.integers(0, 4, size=(600, 2)).astype(dtype)
    for n_clusters in (8, 20):
        for weights in ("unit", "zeros"):
            same_as_sklearn(X, make_weights(weights, 600, rng), n_clusters, 4,
                            block_rows=7)
    # 100 distinct rows, each five times: identical candidates tie (first wins)
    X = np.tile(rng.standard_normal((100, 3)), (5, 1)).astype(dtype)
    for seed in SEEDS:
        same_as_sklearn(X, make_weights("positive", 500, rng), 12, seed, block_rows=7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_sum_is_numpys_sum(dtype, rng):
    tree = np.empty((3, kernels.STACK_DEPTH), dtype=np.int64)
    partial = np.empty(kernels.STACK_DEPTH, dtype=dtype)
    out = np.empty(1, dtype=dtype)
    lengths = [*range(1, 300), 1000, 8191, 8192, 8193, 65537, 100003]
    for n in lengths:
        # magnitudes over 16 decades: any other order of the sum differs
        weights = rng.random(n) * 10.0 ** rng.integers(-8, 8, n)
        assert not kernels.weight_sum(weights, 1, n, out, tree, partial)
        assert out[0] == np.sum(weights.astype(dtype)), n
    # one broadcast value: 0.1 is inexact, so the tree's shape shows
    for n in (9, 129, 1000, 3_000_001):
        assert not kernels.weight_sum(np.array([0.1]), 0, n, out, tree, partial)
        assert out[0] == np.sum(np.full(n, 0.1, dtype=dtype)), n
    assert kernels.weight_sum(np.array([1.0, -1.0, 2.0]), 1, 3, out, tree, partial)
    assert kernels.weight_sum(np.array([1.0, np.nan]), 1, 2, out, tree, partial)


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_cumsum_and_search_are_numpys(dtype, rng):
    n_samples, block_rows = 1003, 10
    weights = rng.random(n_samples) * 10.0 ** rng.integers(-3, 3, n_samples)
    weights_x = weights.astype(dtype)
    total = np.array([weights_x.sum()])
    cdf = (weights_x / total[0]).astype(np.float64).cumsum()  # numpy's choice
    block_ends = np.empty(-(-n_samples // block_rows))
    last = kernels.probability_cumsum(weights, 1, total, 0, n_samples, 0.0, block_rows,
                                      block_ends)
    assert last == cdf[-1]
    assert_array_equal(block_ends, cdf[block_rows - 1::block_rows].tolist() + [cdf[-1]])
    for target in rng.random(20):
        expected = np.searchsorted(cdf / cdf[-1], target, side="right")
        block = expected // block_rows
        start = block * block_rows
        carry = block_ends[block - 1] if block else 0.0
        assert kernels.probability_search(weights, 1, total, start, start + block_rows,
                                          carry, last, target) == expected


@pytest.mark.parametrize("dtype", DTYPES)
def test_find_rows_is_searchsorted_clipped(dtype, rng):
    n_samples = 400
    X = rng.standard_normal((n_samples, 3)).astype(dtype)
    sample_weight = rng.uniform(0.0, 2.0, n_samples)
    work = _kmeans_plusplus._Workspace(X, sample_weight, 1, 2, 3, 16)
    work.candidate_pass(np.array([5]), 0)
    closest = _euclidean_distances(X[[5]], X, squared=True)[0]
    cumsum = np.cumsum(sample_weight.astype(dtype) * closest)
    targets = np.concatenate([rng.random(30) * float(cumsum[-1]), [0.0, np.inf]])
    expected = np.clip(np.searchsorted(cumsum, targets), None, n_samples - 1)
    assert_array_equal(work.find_rows(1, 0, targets), expected)
    assert expected[-2:].tolist() == [0, n_samples - 1]


PEAK_SCRIPT = """
import json, tracemalloc
import numpy as np
from fastem.em.kmeans_plusplus import kmeans_plusplus_rows
rng = np.random.default_rng(7)
peaks = []
for n_samples in (20_000, 200_000):
    X = rng.standard_normal((n_samples, 4))
    sample_weight = np.broadcast_to(1.0, (n_samples,))
    kmeans_plusplus_rows(X[:100], sample_weight[:100], 8, np.random.RandomState(0))
    tracemalloc.start()
    try:
        kmeans_plusplus_rows(X, sample_weight, 8, np.random.RandomState(0))
        peaks.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
print(json.dumps(peaks))
"""


def test_peak_memory_does_not_grow_with_rows():
    """tracemalloc's peak: tens of KiB at 20,000 and 200,000 rows, against
    scikit-learn's 1.25 x the data (here 0.64 and 6.4 MB). Measured in a fresh
    process: tracemalloc counts every thread's allocations, and this one's
    background threads read the output of the test session's compiling processes
    (tests/background.py)."""
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    peaks = json.loads(result.stdout)
    assert max(peaks) < 64 * 1024, peaks
    assert peaks[1] - peaks[0] < 4 * 1024, peaks  # block ends: 4 x 8 bytes per block


def test_callers_arrays_untouched(rng):
    X = rng.standard_normal((300, 3)).astype(np.float32)
    sample_weight = rng.uniform(0.0, 1.0, 300)
    X_before, weights_before = X.copy(), sample_weight.copy()
    kmeans_plusplus_rows(X, sample_weight, 6, np.random.RandomState(0), block_rows=7)
    assert_array_equal(X, X_before)
    assert_array_equal(sample_weight, weights_before)
    unit = np.broadcast_to(1.0, (300,))
    kmeans_plusplus_rows(X, unit, 6, np.random.RandomState(0))
    assert unit.strides == (0,) and not unit.flags.writeable


def test_bad_input():
    X = np.zeros((5, 2))
    unit = np.broadcast_to(1.0, (5,))
    state = np.random.RandomState(0)
    with pytest.raises(ValueError, match="n_samples=5 should be >= n_clusters=6"):
        kmeans_plusplus_rows(X, unit, 6, state)
    with pytest.raises(ValueError, match="C-contiguous"):
        kmeans_plusplus_rows(np.asfortranarray(np.ones((5, 2))), unit, 2, state)
    with pytest.raises(TypeError, match="RandomState"):
        kmeans_plusplus_rows(X, unit, 2, 0)
    with pytest.raises(ValueError, match="non-negative"):
        kmeans_plusplus_rows(X, np.array([1.0, -1.0, 1.0, 1.0, 1.0]), 2, state)
    with pytest.raises(ValueError, match="positive finite sum"):
        kmeans_plusplus_rows(X, np.zeros(5), 2, state)
    with pytest.raises(ValueError, match="shape"):
        kmeans_plusplus_rows(X, np.ones(4), 2, state)
    with pytest.raises(ValueError, match="block_rows"):
        kmeans_plusplus_rows(X, unit, 2, state, block_rows=0)
