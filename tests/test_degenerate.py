"""Degenerate data: a finite, valid model (or a clear error where that is documented), never NaN.

Every case of the hardening issue runs for the four covariance types and for
float32 and float64 data. A valid model has finite weights summing to one,
exactly symmetric positive-definite covariances and precisions, a finite
log-likelihood, finite ``score_samples`` and ``predict_proba`` rows summing to
one on the training data, no numpy RuntimeWarning, and a
``SingularCovarianceWarning`` exactly when the fallback repaired something,
whose message lists what it did (component, iteration, restart, action).

The scaled cases use 1e-150 and 1e150 for float64. float32 cannot hold those
(1e150 is inf, a bad-input error tested in test_validation.py; 1e-150 is 0,
the "all rows identical" case), so float32 runs use 1e-30 and 1e30, whose
squares underflow and overflow float32 just as 1e-150 and 1e150 square to the
edges of float64.
"""

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from fastem import GaussianMixture, load_faithful, reference
from fastem.mixture import SingularCovarianceError, SingularCovarianceWarning

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = (np.float64, np.float32)

# |sum(weights) - 1|: K <= 5 float64 weights, each rounded once.
ATOL_WEIGHTS = 1e-14
# predict_proba rows: log_resp = log_prob - log_norm carries |log_prob| * eps of
# rounding, and |log_prob| reaches ~1e3 on these data.
ATOL_RESP_SUM = 1e-12
# Variances of float32 data around 1e4: differences to nearby centres are exact
# in float32 and squares accumulate in float64, so the variance is that of the
# float32 values computed in float64 up to float64 rounding.
RTOL_OFFSET_VARIANCE = 1e-12
# Data rescaled internally by 2**k against the same data at unit scale (see
# test_extreme_scales_fit_like_unit_scale).
RTOL_SCALED = 1e-9


@pytest.fixture
def rng():
    return np.random.default_rng(20240705)


def blobs(rng, n_samples=100, n_features=3):
    half = n_samples // 2
    return np.vstack(
        [rng.normal(0.0, 1.0, (half, n_features)),
         rng.normal(6.0, 1.0, (n_samples - half, n_features))]
    )


@dataclass
class Case:
    """A degenerate data set: ``make(rng, dtype) -> X`` and the constructor parameters.

    ``repair``: True if the fallback must act (and the warning must name
    ``action``), False if it must not, None if either is valid.
    """

    id: str
    make: object
    params: dict = field(default_factory=dict)
    repair: bool = None
    action: str = None


def identical_rows(rng, dtype):
    return np.tile([[1.0, -2.0, 3e3]], (40, 1))


def constant_column(rng, dtype):
    X = blobs(rng)
    X[:, 1] = 5.0
    return X


def duplicated_rows(rng, dtype):
    X = blobs(rng)
    return np.vstack([np.repeat(X[:3], 30, axis=0), X])  # 90 copies of 3 rows + 100 rows


def few_distinct_points(rng, dtype):
    return np.repeat(blobs(rng)[:3], 10, axis=0)  # 3 distinct points for 5 components


def wide(rng, dtype):
    return rng.normal(size=(10, 20))


def outlier(rng, dtype):
    X = blobs(rng)
    X[0, 0] = 1e12
    return X


def tiny(rng, dtype):
    return blobs(rng) * (1e-150 if dtype == np.float64 else 1e-30)


def huge(rng, dtype):
    return blobs(rng) * (1e150 if dtype == np.float64 else 1e30)


def two_blobs_2d(rng, dtype):
    return blobs(rng, n_features=2)


def sklearn_30382(rng, dtype):
    """scikit-learn issue #30382: float32 diagonal variances went negative (-0.99999979)."""
    return np.array([[9999.0], [0.0]])


def offset_tiny_spread(rng, dtype):
    return 1e4 + rng.normal(0.0, 1e-2, size=(200, 2))


def one_point_per_component(rng, dtype):
    """6 points in 6-D for 5 components started at single points (k-means++): the initial
    covariances are ~1e-30 (found by hypothesis: float32 'tied' broke down)."""
    return rng.normal(scale=5.0, size=(6, 6))


FAR_COMPONENT_START = {
    "means_init": [[0.0, 0.0], [6.0, 6.0], [1e3, 1e3]],
    "weights_init": [1 / 3, 1 / 3, 1 / 3],
}

CASES = [
    Case("all rows identical", identical_rows, {"n_components": 2}, True, "re-seeded"),
    Case("all rows identical, reg_covar=0", identical_rows,
         {"n_components": 1, "reg_covar": 0.0}, True, "diagonal loading"),
    Case("constant column", constant_column, {"n_components": 2}, False),
    Case("constant column, reg_covar=0", constant_column, {"n_components": 2, "reg_covar": 0.0}),
    Case("many duplicated rows, reg_covar=0", duplicated_rows,
         {"n_components": 3, "reg_covar": 0.0}),
    Case("n_components > distinct points", few_distinct_points, {"n_components": 5}, True,
         "re-seeded"),
    Case("n_features > n_samples", wide, {"n_components": 2}, False),
    Case("n_features > n_samples, reg_covar=0", wide, {"n_components": 2, "reg_covar": 0.0}),
    Case("outlier at 1e12", outlier, {"n_components": 2}, False),
    Case("outlier at 1e12, reg_covar=0", outlier, {"n_components": 2, "reg_covar": 0.0}),
    Case("scaled by 1e-150", tiny, {"n_components": 2}, False),
    Case("scaled by 1e-150, reg_covar=0", tiny, {"n_components": 2, "reg_covar": 0.0}, False),
    Case("scaled by 1e150", huge, {"n_components": 2}, False),
    Case("scaled by 1e150, reg_covar=0", huge, {"n_components": 2, "reg_covar": 0.0}, False),
    Case("one point per component, reg_covar=0", one_point_per_component,
         {"n_components": 5, "reg_covar": 0.0, "init_params": "k-means++"}, True,
         "diagonal loading"),
    Case("component loses all responsibility", two_blobs_2d,
         {"n_components": 3, **FAR_COMPONENT_START}, True, "re-seeded"),
    Case("sklearn #30382", sklearn_30382, {"n_components": 2, "reg_covar": 0.1}, False),
    Case("tiny spread around 1e4", offset_tiny_spread, {"n_components": 1, "reg_covar": 0.0},
         False),
]


def fit_recording(model, X, **fit_params):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, **fit_params)
        resp = model.predict_proba(X)
        log_prob = model.score_samples(X)
    return model, resp, log_prob, caught


def as_matrices(covariances, covariance_type, n_components, n_features):
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return covariances[np.newaxis]
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in covariances])
    return np.stack([value * np.eye(n_features) for value in covariances])


def assert_spd(matrices, name):
    for k, matrix in enumerate(matrices):
        assert np.all(np.isfinite(matrix)), f"{name}[{k}] is not finite"
        assert_array_equal(matrix, matrix.T, err_msg=f"{name}[{k}] is not symmetric")
        assert np.linalg.eigvalsh(matrix).min() > 0, f"{name}[{k}] is not positive definite"
        np.linalg.cholesky(matrix)


def assert_valid_model(model, X, resp, log_prob, caught):
    n_components = model.n_components
    n_features = X.shape[1]
    weights = model.weights_
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    assert abs(weights.sum() - 1.0) <= ATOL_WEIGHTS
    assert np.all(np.isfinite(model.means_))
    covariance_type = model.covariance_type
    assert_spd(as_matrices(model.covariances_, covariance_type, n_components, n_features),
               "covariances_")
    assert_spd(as_matrices(model.precisions_, covariance_type, n_components, n_features),
               "precisions_")
    assert np.all(np.isfinite(model.precisions_cholesky_))
    assert np.isfinite(model.lower_bound_)
    assert np.all(np.isfinite(model.lower_bounds_))
    assert np.all(np.isfinite(log_prob))
    assert np.all(np.isfinite(resp)) and np.all(resp >= 0)
    assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    runtime = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not runtime, runtime


def assert_warning_says_what_happened(model, caught):
    """One SingularCovarianceWarning iff there were repairs, listing the first five."""
    singular = [w for w in caught if issubclass(w.category, SingularCovarianceWarning)]
    events = model.singular_events_
    if not events:
        assert singular == []
        return
    assert len(singular) == 1
    message = str(singular[0].message)
    assert message.startswith(f"fastem repaired {len(events)} singular or empty component(s): ")
    for event in events[:5]:
        described = (
            f"component {event['component']} at iteration {event['iteration']} "
            f"of restart {event['restart']}: {event['action']}"
        )
        assert described in message, (described, message)
        assert event["action"] in ("diagonal loading", "re-seeded", "parked")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_degenerate_data_gives_a_valid_model(rng, case, covariance_type, dtype):
    X = case.make(rng, dtype).astype(dtype)
    assert np.all(np.isfinite(X))
    model = GaussianMixture(covariance_type=covariance_type, random_state=0, **case.params)
    model, resp, log_prob, caught = fit_recording(model, X)
    assert_valid_model(model, X, resp, log_prob, caught)
    assert_warning_says_what_happened(model, caught)
    if case.repair is not None:
        assert bool(model.singular_events_) == case.repair, model.singular_events_
    if case.action is not None:
        assert model.singular_events_[0]["action"] == case.action


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sklearn_30382_variances_are_reg_covar(rng, covariance_type, dtype):
    """Two points, two components: each variance is exactly reg_covar, never negative."""
    X = sklearn_30382(rng, dtype).astype(dtype)
    model = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.1,
                            random_state=0).fit(X)
    assert_array_equal(np.sort(model.means_.ravel()), [0.0, 9999.0])
    assert_array_equal(model.covariances_, np.full_like(model.covariances_, 0.1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_tiny_spread_around_a_large_offset_keeps_its_variance(rng, covariance_type, dtype):
    """float32 data at 1e4 +- 1e-2 (about 10 float32 ulps): the variance is not lost."""
    X = offset_tiny_spread(rng, dtype).astype(dtype)
    model = GaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0).fit(X)
    covariance = np.cov(X.astype(np.float64).T, bias=True)
    expected = {"full": covariance[np.newaxis], "tied": covariance,
                "diag": np.diag(covariance)[np.newaxis],
                "spherical": np.array([np.diag(covariance).mean()])}[covariance_type]
    assert_allclose(model.covariances_, expected, rtol=RTOL_OFFSET_VARIANCE,
                    atol=RTOL_OFFSET_VARIANCE * np.abs(expected).max())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_reg_covar_near_the_largest_float64_fits_as_in_scikit_learn(covariance_type):
    """reg_covar=1e308 on Old Faithful: every variance is 1e308 (the data's own are
    below its rounding), as in scikit-learn's fit from the same start. Symmetrising a
    'full' or 'tied' covariance as (C + C^T) / 2 overflowed there (a ValueError "X's
    spread is too extreme", with a RuntimeWarning, before stop 47). scikit-learn
    1.9.1's 'spherical' fit gives NaN weights here, so 'spherical' is checked against
    its 'diag' fit: with every variance 1e308 the two models are one."""
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    X = load_faithful()
    params = dict(n_components=2, reg_covar=1e308, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = GaussianMixture(covariance_type=covariance_type, **params).fit(X)
    theirs_type = "diag" if covariance_type == "spherical" else covariance_type
    expected = SklearnGaussianMixture(covariance_type=theirs_type, **params).fit(X)
    covariances = expected.covariances_
    if covariance_type == "spherical":
        assert np.all(covariances == 1e308)
        covariances = covariances[:, 0]
    for name, theirs in (("weights_", expected.weights_), ("means_", expected.means_),
                         ("covariances_", covariances)):
        ours = getattr(model, name)
        assert np.all(np.isfinite(ours)), name
        assert_allclose(ours, theirs, rtol=1e-10, err_msg=name)
    assert np.all(np.isfinite(model.precisions_cholesky_))
    assert_allclose(model.lower_bound_, expected.lower_bound_, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    ("scale", "reg_covar", "fragment"),
    [
        (1e160, 1e-6, "a fitted covariance overflows. Divide X by a constant"),
        (1e-160, 0.0, "a fitted precision (inverse covariance) overflows. Multiply X"),
    ],
    ids=["1e160", "1e-160 reg_covar=0"],
)
def test_data_beyond_float64_gives_a_clear_error(rng, covariance_type, scale, reg_covar, fragment):
    """Covariances of data spread over 1e160 overflow float64 (precisions of 1e-160
    data, without regularisation, likewise): the documented outcome is a ValueError."""
    X = blobs(rng) * scale
    X_before = X.copy()
    model = GaussianMixture(2, covariance_type=covariance_type, reg_covar=reg_covar,
                            random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="too extreme for float64") as error:
            model.fit(X)
    assert fragment in str(error.value)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not hasattr(model, "weights_")
    assert_array_equal(X, X_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_extreme_scales_fit_like_unit_scale(rng, covariance_type, dtype):
    """X * 2**k (k = +-460 for float64, +-90 for float32) is fitted at unit scale.

    The data and the parameters scale exactly (powers of two); only the
    log-determinants pick up a rounded shift of k log 2, which moves the
    responsibilities by ~1e-13 relative. Over 20 fixed iterations (tol=0, so
    that no convergence test can flip) the parameters agree to RTOL_SCALED.
    """
    X = blobs(rng).astype(dtype)
    exponent = 460 if dtype == np.float64 else 90
    params = dict(n_components=2, covariance_type=covariance_type, reg_covar=0.0,
                  random_state=0, tol=0.0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        unit = GaussianMixture(**params).fit(X)
        for k in (exponent, -exponent):
            scaled = GaussianMixture(**params).fit(np.ldexp(X, k))
            assert_allclose(scaled.weights_, unit.weights_, rtol=RTOL_SCALED)
            for name, power in (("means_", 1), ("covariances_", 2), ("precisions_cholesky_", -1)):
                expected = np.ldexp(getattr(unit, name), power * k)
                assert_allclose(getattr(scaled, name), expected, rtol=RTOL_SCALED,
                                atol=RTOL_SCALED * np.abs(expected).max(), err_msg=name)
            shift = X.shape[1] * k * np.log(2.0)
            assert_allclose(scaled.lower_bounds_, np.asarray(unit.lower_bounds_) - shift,
                            rtol=RTOL_SCALED)
            assert_array_equal(scaled.predict(np.ldexp(X, k)), unit.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weight", [2.0**-1000, 2.0**1000], ids=["2^-1000", "2^1000"])
def test_uniform_sample_weights_of_any_size_fit_as_unit_weights(rng, covariance_type, weight):
    """Only relative weights matter: weights of 2**+-1000 give the unweighted fit bit for bit
    (they used to flatten the mixture weights to 1/K)."""
    X = blobs(rng)
    X[:30] += 20.0  # three groups of unequal size: weights 0.3 / 0.2 / 0.5
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    unweighted = GaussianMixture(**params).fit(X)
    weighted = GaussianMixture(**params).fit(X, sample_weight=np.full(len(X), weight))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_array_equal(getattr(weighted, name), getattr(unweighted, name), err_msg=name)
    assert weighted.lower_bound_ == unweighted.lower_bound_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_model_near_the_float32_limits_predicts_without_nan(rng, covariance_type):
    """Precision factors of subnormal float32 data exceed float32: inference runs in float64."""
    X = (blobs(rng) * 1e-41).astype(np.float32)
    model = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                            random_state=0)
    model, resp, log_prob, caught = fit_recording(model, X)
    assert_valid_model(model, X, resp, log_prob, caught)
    assert np.abs(model.precisions_cholesky_).max() > np.finfo(np.float32).max


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_points_far_from_the_model_are_improbable_never_nan(rng, covariance_type, dtype):
    """Points up to the dtype's limits: never NaN, never a RuntimeWarning.

    float64: they score -inf (their log-density is below -1e600, not a float64)
    with uniform responsibilities. float32: small data is computed in float64
    (the row kernels), where those log-densities (about -1e77) are finite: they
    and the responsibilities are the float64 oracle's."""
    big = np.finfo(dtype).max
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    model.fit(blobs(rng).astype(dtype))
    far = np.array([[big, -big, 0.0], [-big, big, 0.0], [big, big, big], [0.0, -1e7, 1e7]],
                   dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_prob = model.score_samples(far)
        resp = model.predict_proba(far)
    assert np.isfinite(log_prob[3]) and log_prob[3] < -1e13
    assert not np.any(np.isnan(resp))
    if dtype == np.float64:
        assert_array_equal(log_prob[:3], -np.inf)
        assert_allclose(resp[:3], 0.5, rtol=0, atol=ATOL_RESP_SUM)
        return
    expected_norm, _ = reference.e_step(
        far.astype(np.float64), model.weights_, model.means_, model.covariances_,
        covariance_type,
    )
    assert np.all(log_prob[:3] < -1e70)
    assert_allclose(log_prob, expected_norm, rtol=1e-10)
    # At -1e77 the components' log-densities differ by less than their rounding
    # (~1e61), so the responsibilities are not determined by the data; they must
    # still be probabilities.
    assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=ATOL_RESP_SUM)
    assert np.all((resp >= 0) & (resp <= 1))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: dtype.__name__)
def test_far_point_responsibilities_sum_to_one(rng, dtype):
    """A 'tied' model and a point far out along the second feature, against the
    oracle.

    float64, 1e30 away: the two log-densities (~-5e59) differ by ~5e30 in exact
    arithmetic, far below their rounding (~1e44), and are the same float64
    number: the point is a tie, and each component gets its weight (0.5 to
    1e-13 here), not all of it (``w - logsumexp(w)`` gave both 1). float32
    data, 1e9 away: the log-densities (~-5e17, float64 parameters and
    arithmetic) differ by ~5e9, far above their rounding (~1e2), so the nearer
    component gets it all.
    """
    model = GaussianMixture(2, covariance_type="tied", random_state=0)
    model.fit(blobs(rng).astype(dtype))
    point = np.array([[0.0, 1e30 if dtype == np.float64 else 1e9, 0.0]], dtype=dtype)
    log_prob = model.score_samples(point)[0]
    resp = model.predict_proba(point)
    assert np.isfinite(log_prob) and log_prob < -1e17
    parameters = (model.weights_, model.means_, model.covariances_, "tied")
    log_densities = reference.estimate_log_prob(point, *parameters[1:])[0]
    expected_norm, expected_log_resp = reference.e_step(point, *parameters)
    assert_allclose(log_prob, expected_norm[0], rtol=1e-10)
    assert_allclose(resp, np.exp(expected_log_resp), rtol=0, atol=ATOL_RESP_SUM)
    if dtype == np.float64:
        assert log_densities[0] == log_densities[1]
        assert_allclose(resp, model.weights_[np.newaxis], rtol=0, atol=ATOL_RESP_SUM)
    else:
        assert abs(log_densities[0] - log_densities[1]) > 1e9
        assert_array_equal(np.sort(resp[0]), [0.0, 1.0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "case", [case for case in CASES if case.repair], ids=lambda case: case.id
)
def test_on_singular_raise_names_the_component(rng, case, covariance_type):
    """With on_singular='raise', every case the fallback must repair is a clear error."""
    X = case.make(rng, np.float64)
    model = GaussianMixture(covariance_type=covariance_type, random_state=0,
                            on_singular="raise", **case.params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SingularCovarianceError) as error:
            model.fit(X)
    assert re.search(r"component \d+ has an ill-defined empirical covariance at iteration \d+",
                     str(error.value))


def test_data_beyond_float64_through_the_cli_is_one_line_and_exit_2(rng, tmp_path, capsys):
    from fastem.cli import main

    path = tmp_path / "huge.npy"
    np.save(path, blobs(rng) * 1e160)
    status = main(["fit", str(path)])
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastem: error: "), captured.err
    assert "too extreme for float64: a fitted covariance overflows" in lines[0]
