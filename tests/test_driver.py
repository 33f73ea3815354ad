"""Unit tests of :mod:`fastem.em.driver`.

The block partition, precision factors and their inverses, the numpy M-step
from responsibilities (against :func:`fastem.reference.m_step`), the
thread-count independence of the statistics, the singular-covariance fallback
(diagonal loading, re-seeding, the events it records) and the restart loop.
The estimator-level behaviour is tested in ``test_mixture.py``.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from fastem import reference
from fastem.em import driver as _driver
from fastem.kernels.threads import thread_limit
from fastem.mixture import GaussianMixture, SingularCovarianceWarning

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MAX_BLOCKS = 64  # documented upper bound on the number of parallel blocks
RTOL_REFERENCE = 1e-10  # float64 agreement with fastem.reference
# Factor -> covariance -> factor of matrices with condition number <= ~10.
RTOL_ROUND_TRIP = 1e-12
EVENT_ACTIONS = ("diagonal loading", "re-seeded", "parked")


@pytest.fixture
def rng():
    return np.random.default_rng(20240612)


@pytest.fixture
def seed(rng):
    return int(rng.integers(2**31 - 1))


def make_settings(**overrides):
    values = dict(
        n_components=2,
        covariance_type="full",
        tol=1e-3,
        reg_covar=0.0,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        on_singular="recover",
        verbose=0,
        verbose_interval=10,
        block_size=128,
    )
    values.update(overrides)
    return _driver.FitSettings(**values)


def random_precisions(rng, covariance_type, n_components=3, n_features=4):
    """Well-conditioned precisions in scikit-learn's layouts."""

    def spd():
        factor = rng.normal(size=(n_features, n_features))
        return factor @ factor.T / n_features + np.eye(n_features)

    if covariance_type == "full":
        return np.stack([spd() for _ in range(n_components)])
    if covariance_type == "tied":
        return spd()
    if covariance_type == "diag":
        return rng.uniform(0.5, 2.0, size=(n_components, n_features))
    return rng.uniform(0.5, 2.0, size=n_components)


def as_stack(array, covariance_type):
    return array[np.newaxis] if covariance_type == "tied" else array


def data_scale(X, sample_weight=None):
    """Mean per-feature (weighted, biased) variance: the fallback's unit of loading."""
    covariance = np.atleast_2d(np.cov(X.T, aweights=sample_weight, bias=True))
    return float(np.trace(covariance) / X.shape[1])


def is_positive_definite(covariance, covariance_type):
    if covariance_type in ("full", "tied"):
        return bool(np.all(np.linalg.eigvalsh(covariance) > 0))
    return bool(np.all(np.asarray(covariance) > 0))


# --------------------------------------------------------------------------
# block partition


@settings(max_examples=200, deadline=None)
@given(
    n_samples=st.integers(1, 10**8),
    n_features=st.integers(1, 128),
    n_components=st.integers(1, 64),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    itemsize=st.sampled_from([4, 8]),
)
def test_default_block_size_depends_on_the_shape_only(
    n_samples, n_features, n_components, covariance_type, itemsize
):
    shape = (n_samples, n_features, n_components, covariance_type, itemsize)
    with thread_limit(1):
        one_thread = _driver.default_block_size(*shape)
    with thread_limit(2):
        two_threads = _driver.default_block_size(*shape)
    assert one_thread == two_threads
    assert isinstance(one_thread, int) and one_thread >= 1
    n_blocks = -(-n_samples // one_thread)
    assert n_blocks >= 1
    if n_blocks > MAX_BLOCKS:
        # more blocks only for huge data: then a block holds at most BLOCK_BYTES of
        # X, or 16 times its own partial statistics (full: K (1 + D + D^2) floats)
        parts = 8 * n_components * (1 + n_features + n_features**2)
        block_bytes = one_thread * n_features * itemsize
        assert block_bytes <= max(_driver.BLOCK_BYTES, 16 * parts)
        assert n_samples * n_features * itemsize > MAX_BLOCKS * _driver.BLOCK_BYTES / 2


@pytest.mark.parametrize(("shape", "n_blocks"), [
    ((1_000_000, 2, 4, "full"), 64),     # P1
    ((1_000_000, 8, 16, "full"), 64),    # P2
    ((200_000, 32, 32, "full"), 8),      # P3: 11 by the memory budget, 8 balanced
    ((1_000_000, 16, 32, "diag"), 64),   # P5
    ((100_000, 32, 32, "full"), 4),      # 5 by the budget
])
def test_default_block_size_gives_two_and_four_threads_equal_shares(shape, n_blocks):
    """From 4 blocks on, the count asked for is a multiple of 4 (two threads ran P3's
    11 blocks as 6 and 5), the same for float32 as for float64 data (float32 P3
    had 5 blocks: 3 and 2). (Rows then round up to whole tiles, which can leave
    fewer blocks: 59 for 30,000 rows of 16 features and 8 components.)"""
    for itemsize in (8, 4):
        rows = _driver.default_block_size(*shape, itemsize)
        assert -(-shape[0] // rows) == n_blocks, itemsize


# --------------------------------------------------------------------------
# precision factors


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_round_trip_against_numpy(rng, covariance_type):
    precisions = random_precisions(rng, covariance_type)
    factors = _driver.precision_cholesky_from_precisions(precisions, covariance_type)
    covariances = _driver.covariances_from_precisions_chol(factors, covariance_type)
    assert factors.shape == covariances.shape == precisions.shape
    if covariance_type in ("full", "tied"):
        for factor, precision, covariance in zip(
            as_stack(factors, covariance_type),
            as_stack(precisions, covariance_type),
            as_stack(covariances, covariance_type),
            strict=True,
        ):
            assert_array_equal(np.tril(factor, -1), 0.0)  # upper triangular
            assert np.all(np.diag(factor) > 0)
            assert_allclose(factor @ factor.T, precision, rtol=RTOL_ROUND_TRIP)
            # the unique such factor, by numpy: inv(cholesky(inv(precision)))^T
            by_numpy = np.linalg.inv(np.linalg.cholesky(np.linalg.inv(precision))).T
            assert_allclose(
                factor, by_numpy, rtol=RTOL_ROUND_TRIP, atol=RTOL_ROUND_TRIP
            )
            assert_allclose(covariance, np.linalg.inv(precision), rtol=RTOL_ROUND_TRIP)
    else:
        assert_allclose(factors, np.sqrt(precisions), rtol=RTOL_ROUND_TRIP)
        assert_allclose(covariances, 1.0 / precisions, rtol=RTOL_ROUND_TRIP)
    assert_allclose(
        _driver.precisions_from_cholesky(factors, covariance_type),
        precisions,
        rtol=RTOL_ROUND_TRIP,
    )
    # ... and back from the covariances, by fastem and by the oracle
    for again in (
        _driver.precision_cholesky(covariances, covariance_type),
        reference.precisions_cholesky(covariances, covariance_type),
    ):
        assert_allclose(again, factors, rtol=RTOL_ROUND_TRIP, atol=RTOL_ROUND_TRIP)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_of_a_singular_covariance_is_none(rng, covariance_type):
    covariances = _driver.covariances_from_precisions_chol(
        _driver.precision_cholesky_from_precisions(
            random_precisions(rng, covariance_type), covariance_type
        ),
        covariance_type,
    )
    if covariance_type == "full":
        covariances[1] = np.outer(covariances[1][0], covariances[1][0])  # rank one
    elif covariance_type == "tied":
        covariances = np.outer(covariances[0], covariances[0])
    elif covariance_type == "diag":
        covariances[1, 2] = 0.0
    else:
        covariances[1] = -1.0
    assert _driver.precision_cholesky(covariances, covariance_type) is None


# --------------------------------------------------------------------------
# M-step from responsibilities (the initialisation's)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("init_chunk", [None, 7], ids=["one-chunk", "chunks-of-7"])
def test_parameters_from_resp_matches_reference_m_step(
    rng, monkeypatch, covariance_type, dtype, init_chunk
):
    if init_chunk is not None:
        monkeypatch.setattr(_driver, "INIT_CHUNK", init_chunk)
    n_samples, n_features, n_components = 60, 3, 4
    X = (rng.normal(size=(n_samples, n_features)) * [1.0, 3.0, 0.5] + 2.0).astype(dtype)
    resp = rng.dirichlet(np.ones(n_components), size=n_samples)
    sample_weight = rng.uniform(0.0, 3.0, size=n_samples)
    sample_weight[::5] = 0.0
    reg_covar = 1e-6
    weights, means, covariances = _driver.parameters_from_resp(
        X,
        sample_weight,
        lambda start, stop: resp[start:stop],
        n_components,
        covariance_type,
        reg_covar,
    )
    expected = reference.m_step(
        X.astype(np.float64),
        resp,
        covariance_type,
        reg_covar=reg_covar,
        sample_weight=sample_weight,
    )
    for name, actual, wanted in zip(
        ("weights", "means", "covariances"),
        (weights, means, covariances),
        expected,
        strict=True,
    ):
        assert_allclose(
            actual,
            wanted,
            rtol=RTOL_REFERENCE,
            atol=RTOL_REFERENCE * np.max(np.abs(wanted)),
            err_msg=name,
        )


# --------------------------------------------------------------------------
# statistics: thread count and memory addresses


def moved(array, offset):
    """A copy of ``array`` at a chosen byte offset from a 64-byte boundary."""
    buffer = np.empty(array.nbytes + 256, dtype=np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    copy = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    return copy


@pytest.fixture
def block_kernels(monkeypatch):
    """Every shape takes the tiled block kernels (the fused kernels that threads and
    block sizes reach): the small data of these tests would take the rows' serial
    kernels, which neither threads nor block sizes touch."""
    monkeypatch.setattr(_driver, "SMALL_WORK_LIMIT", -1)


def statistics_inputs(rng, covariance_type, n_samples=600):
    n_features, n_components = 3, 3
    centres = np.array([[-5.0, 0.0, 1.0], [0.0, 2.0, 0.0], [5.0, 0.0, -1.0]])
    X = np.concatenate(
        [rng.normal(size=(n_samples // 3, n_features)) + c for c in centres]
    )
    sample_weight = rng.uniform(0.5, 2.0, size=len(X))
    precisions = random_precisions(rng, covariance_type, n_components, n_features)
    factors = _driver.precision_cholesky_from_precisions(precisions, covariance_type)
    parameters = _driver.Parameters(
        np.array([0.3, 0.3, 0.4]),
        centres + 0.3 * rng.normal(size=centres.shape),
        _driver.covariances_from_precisions_chol(factors, covariance_type),
        factors,
    )
    return X, sample_weight, parameters


def statistics_bytes(X, sample_weight, parameters, covariance_type, block_size):
    statistics = _driver.sufficient_statistics(
        X, sample_weight, parameters, covariance_type, block_size
    )
    return b"".join(np.asarray(part).tobytes() for part in statistics)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("block_size", [32, 600])
def test_statistics_bitwise_identical_for_1_and_2_threads(
    rng, covariance_type, block_size, block_kernels
):
    X, sample_weight, parameters = statistics_inputs(rng, covariance_type)
    with thread_limit(1):
        one = statistics_bytes(
            X, sample_weight, parameters, covariance_type, block_size
        )
        log_prob_one = _driver.estimate_weighted_log_prob(
            X, parameters, covariance_type, block_size
        )
    with thread_limit(2):
        two = statistics_bytes(
            X, sample_weight, parameters, covariance_type, block_size
        )
        log_prob_two = _driver.estimate_weighted_log_prob(
            X, parameters, covariance_type, block_size
        )
    assert one == two
    assert_array_equal(log_prob_one, log_prob_two)
    # and they are the right statistics
    log_prob_norm, log_resp = reference.e_step(
        X, parameters.weights, parameters.means, parameters.covariances, covariance_type
    )
    nk, sum_x, scatter, log_likelihood, centres = _driver.sufficient_statistics(
        X, sample_weight, parameters, covariance_type, block_size
    )
    assert_array_equal(centres, parameters.means)  # float64 data: the means
    ref_nk, ref_sum_x, ref_scatter = reference.sufficient_statistics(
        X, np.exp(log_resp), parameters.means, covariance_type, sample_weight
    )
    assert_allclose(nk, ref_nk, rtol=RTOL_REFERENCE)
    assert_allclose(
        sum_x, ref_sum_x, rtol=RTOL_REFERENCE, atol=RTOL_REFERENCE * nk.max()
    )
    # the scatter in the oracle's layout: 'tied' one (D, D) matrix; 'spherical' the
    # traces of the (K, D) per-feature sums the kernels accumulate
    if covariance_type == "tied":
        scatter = scatter[0]
    elif covariance_type == "spherical":
        scatter = scatter.sum(axis=1)
    assert scatter.shape == ref_scatter.shape
    assert_allclose(
        scatter, ref_scatter, rtol=RTOL_REFERENCE,
        atol=RTOL_REFERENCE * np.max(np.abs(ref_scatter)),
    )
    assert_allclose(log_likelihood, sample_weight @ log_prob_norm, rtol=RTOL_REFERENCE)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_do_not_depend_on_memory_addresses(rng, covariance_type,
                                                      block_kernels):
    """The same values at other addresses give the same bits.

    Regression test: at b199fd9 the fused kernels' results depended (in the last
    bits, for some shapes, a few percent of the time) on where the inputs sat in
    memory, so repeated fits, 1- vs 2-thread fits and C- vs F-ordered fits
    differed. Several shapes and block sizes, because it was shape dependent.
    """
    for n_samples in (600, 999, 2001):
        X, sample_weight, parameters = statistics_inputs(
            rng, covariance_type, n_samples
        )
        for block_size in (64, 256):
            seen = set()
            for _ in range(60):
                offsets = 8 * rng.integers(0, 24, size=4)
                shifted = _driver.Parameters(
                    parameters.weights,
                    moved(parameters.means, offsets[2]),
                    parameters.covariances,
                    moved(parameters.precisions_chol, offsets[3]),
                )
                seen.add(
                    statistics_bytes(
                        moved(X, offsets[0]),
                        moved(sample_weight, offsets[1]),
                        shifted,
                        covariance_type,
                        block_size,
                    )
                )
            assert len(seen) == 1, (n_samples, block_size)


# --------------------------------------------------------------------------
# the singular-covariance fallback


def singular_case(covariance_type, negative_eigenvalue):
    """Two components; component 1 (the tied matrix) has one eigenvalue < 0."""
    bad_matrix = np.array(
        [[1.0, 1.0 + negative_eigenvalue], [1.0 + negative_eigenvalue, 1.0]]
    )
    good_matrix = np.array([[2.0, 0.5], [0.5, 1.0]])
    if covariance_type == "full":
        covariances = np.stack([good_matrix, bad_matrix])
    elif covariance_type == "tied":
        covariances = bad_matrix
    elif covariance_type == "diag":
        covariances = np.array([[2.0, 1.0], [1.0, -negative_eigenvalue]])
    else:
        covariances = np.array([2.0, -negative_eigenvalue])
    factors = np.zeros_like(covariances)
    if covariance_type in ("full", "diag", "spherical"):
        factors[0] = _driver.precision_cholesky(covariances[:1], covariance_type)[0]
    status = np.array([_driver.STATUS_OK, _driver.STATUS_SINGULAR])
    if covariance_type == "tied":
        status[:] = _driver.STATUS_SINGULAR
    parameters = _driver.Parameters(
        np.array([0.4, 0.6]), np.array([[0.0, 0.0], [1.0, 1.0]]), covariances, factors
    )
    return parameters, status


def repair(parameters, status, X, covariance_type, seed, reg_covar=0.0, iteration=3):
    settings = make_settings(covariance_type=covariance_type, reg_covar=reg_covar)
    sample_weight = np.ones(len(X))
    context = _driver._FitContext(X, sample_weight, restart=1)
    _driver._repair(
        parameters,
        status,
        X,
        sample_weight,
        settings,
        np.random.RandomState(seed),
        context,
        iteration,
    )
    return context.events


def repaired_component(parameters, covariance_type):
    if covariance_type == "tied":
        return parameters.covariances, parameters.precisions_chol
    return parameters.covariances[1], parameters.precisions_chol[1]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_singular_covariance_gets_the_smallest_sufficient_diagonal_loading(
    rng, seed, covariance_type
):
    X = rng.normal(size=(200, 2))
    # 3e-6 lies between two rungs of the ladder (1e-6 and 1e-5 times the data's
    # scale, which is ~1)
    parameters, status = singular_case(covariance_type, negative_eigenvalue=3e-6)
    original, _ = repaired_component(parameters, covariance_type)
    original = np.array(original, copy=True)
    kept = (
        parameters.means.copy(),
        parameters.weights.copy(),
        None if covariance_type == "tied" else parameters.covariances[0].copy(),
    )
    events = repair(parameters, status, X, covariance_type, seed)
    assert len(events) == 1
    event = events[0]
    assert event["action"] == "diagonal loading"
    assert event["restart"] == 1 and event["iteration"] == 3
    assert event["component"] == (0 if covariance_type == "tied" else 1)
    loading = event["loading"]
    assert 0 < loading <= _driver.LOADING_LIMIT * data_scale(X)
    covariance, factor = repaired_component(parameters, covariance_type)
    identity = np.eye(2) if covariance_type in ("full", "tied") else 1.0
    assert_allclose(covariance, original + loading * identity, rtol=0, atol=1e-15)
    assert is_positive_definite(covariance, covariance_type)
    # the loading is the first rung of the x10 ladder that works
    assert not is_positive_definite(original + loading / 10 * identity, covariance_type)
    one_matrix_type = "tied" if covariance_type in ("full", "tied") else covariance_type
    expected_factor = reference.precisions_cholesky(covariance, one_matrix_type)
    assert_allclose(factor, expected_factor, rtol=RTOL_REFERENCE)
    assert_array_equal(parameters.means, kept[0])
    assert_array_equal(parameters.weights, kept[1])
    if kept[2] is not None:
        assert_array_equal(parameters.covariances[0], kept[2])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariance_beyond_loading_is_reseeded_at_a_data_point(
    rng, seed, covariance_type
):
    X = rng.normal(size=(200, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]]) + [3.0, -1.0]
    parameters, status = singular_case(covariance_type, negative_eigenvalue=1.0)
    weights_before = parameters.weights.copy()
    events = repair(parameters, status, X, covariance_type, seed, reg_covar=1e-6)
    assert len(events) == 1
    assert events[0]["action"] == "re-seeded" and "singular" in events[0]["reason"]
    k = 0 if covariance_type == "tied" else 1
    assert events[0]["component"] == k
    # the mean moved to a data row
    assert np.any(np.all(X == parameters.means[events[0]["component"]], axis=1))
    covariance, factor = repaired_component(parameters, covariance_type)
    data_covariance = np.cov(X.T, bias=True) + 1e-6 * np.eye(2)
    expected = {
        "full": data_covariance,
        "tied": data_covariance,
        "diag": np.diag(data_covariance),
        "spherical": np.trace(data_covariance) / 2,
    }[covariance_type]
    assert_allclose(covariance, expected, rtol=1e-12)
    assert is_positive_definite(covariance, covariance_type)
    assert np.all(np.isfinite(factor))
    # the re-seeded component gets a share 1 / K of the weight, taken from all
    # components in proportion (weights[1] >= 1/2 alone held with no share given:
    # component 1 starts at 0.6)
    share = 1.0 / len(weights_before)
    expected_weights = weights_before * (1.0 - share)
    expected_weights[k] += share
    assert_allclose(parameters.weights, expected_weights, rtol=1e-15)
    assert_allclose(parameters.weights.sum(), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constant_data_without_regularisation(seed, covariance_type):
    """Every covariance is exactly zero: the fallback must still give a usable model."""
    X = np.full((20, 3), 5.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = GaussianMixture(
            2, covariance_type=covariance_type, reg_covar=0.0, random_state=seed
        ).fit(X)
    assert any(issubclass(w.category, SingularCovarianceWarning) for w in caught)
    assert model.singular_events_
    assert_allclose(model.means_, 5.0, rtol=1e-12)
    for name in ("weights_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, name))), name
    for covariance in as_stack(np.asarray(model.covariances_), covariance_type):
        assert is_positive_definite(covariance, covariance_type)
    assert np.isfinite(model.lower_bound_)
    assert_array_equal(model.predict(X), model.predict(X[:1])[0])
    assert np.all(np.isfinite(model.score_samples(X)))


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_singular_events_fields(seed, init_params):
    X = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularCovarianceWarning)
        model = GaussianMixture(
            2, reg_covar=0.0, n_init=10, init_params=init_params, random_state=seed
        ).fit(X)
    assert model.singular_events_
    for event in model.singular_events_:
        assert {"restart", "iteration", "component", "action"} <= set(event)
        assert event["restart"] in range(10)
        assert event["component"] in range(2)
        assert isinstance(event["iteration"], int) and event["iteration"] >= 0
        assert event["action"] in EVENT_ACTIONS
        if event["action"] == "diagonal loading":
            assert event["loading"] > 0 and "reason" not in event
        else:
            assert isinstance(event["reason"], str) and "loading" not in event
    restarts = [event["restart"] for event in model.singular_events_]
    assert restarts == sorted(restarts)


# --------------------------------------------------------------------------
# the restart loop


def test_a_restart_that_breaks_down_is_abandoned(rng, seed, monkeypatch):
    X = np.concatenate([rng.normal(size=(80, 2)) + c for c in ([0, 0], [5, 0], [0, 5])])
    params = dict(n_components=3, init_params="random", max_iter=20)
    stream = np.random.RandomState(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        singles = [
            GaussianMixture(random_state=stream, **params).fit(X) for _ in range(3)
        ]
    run_em = _driver.run_em
    calls = []

    def first_restart_breaks_down(*args, **kwargs):
        calls.append(len(calls))
        if len(calls) == 1:
            raise _driver._Breakdown("log-likelihood is nan at iteration 1 (injected)")
        return run_em(*args, **kwargs)

    monkeypatch.setattr(_driver, "run_em", first_restart_breaks_down)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(
            n_init=3, random_state=np.random.RandomState(seed), **params
        ).fit(X)
    assert len(calls) == 3
    survivors = singles[1:]
    best = max(survivors, key=lambda single: single.lower_bound_)
    assert model.lower_bound_ == best.lower_bound_
    assert_allclose(model.means_, best.means_, rtol=1e-12)


def test_every_restart_breaking_down_is_a_clear_error(rng, seed, monkeypatch):
    def breaks_down(*args, **kwargs):
        raise _driver._Breakdown("log-likelihood is nan at iteration 1 (injected)")

    monkeypatch.setattr(_driver, "run_em", breaks_down)
    X = rng.normal(size=(50, 2))
    with pytest.raises(ValueError, match="reg_covar") as error:
        GaussianMixture(2, n_init=2, random_state=seed).fit(X)
    assert "restart 0" in str(error.value) and "restart 1" in str(error.value)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_initial_covariances_are_exactly_symmetric(covariance_type):
    """(w d)^T d rounds (i, j) and (j, i) differently; a fit that keeps its initial
    covariance (max_iter=0) must still return a symmetric one (seen in CI as a
    1-ulp asymmetry found by the hypothesis suite)."""
    rng = np.random.default_rng(7)
    X = rng.normal(scale=5.0, size=(466, 7))
    sample_weight = rng.uniform(0.1, 10.0, size=466)
    resp = rng.dirichlet(np.ones(3), size=466)
    _, _, covariances = _driver.parameters_from_resp(
        X, sample_weight, lambda start, stop: resp[start:stop], 3, covariance_type, 0.0
    )
    np.testing.assert_array_equal(covariances, np.swapaxes(covariances, -1, -2))
    model = GaussianMixture(3, covariance_type=covariance_type, max_iter=0,
                            init_params="random", random_state=0)
    model.fit(X, sample_weight=sample_weight)
    np.testing.assert_array_equal(model.covariances_, np.swapaxes(model.covariances_, -1, -2))
