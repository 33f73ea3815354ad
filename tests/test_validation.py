"""Bad input gets a clear error that names the problem, and the caller's data is never changed.

One table drives the estimator and the command line: each row builds the bad
input from the fixture data, and gives the exception type and a fragment of
the message ``GaussianMixture`` must raise, and, where the command line can
express the case, the fragment of its one-line error (exit status 2). Rows
the command line cannot express (it has no option for sample weights, initial
parameters or predicting) say so with ``cli=None``.
"""

import numbers
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from scipy import sparse
from sklearn.exceptions import NotFittedError

from fastem import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC
from fastem._validation import InvalidParameterError
from fastem.cli import main

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_SAMPLES, N_FEATURES = 40, 3


@pytest.fixture
def rng():
    return np.random.default_rng(20240704)


@pytest.fixture
def X(rng):
    """Two separated groups, 40 samples x 3 features, float64, C order."""
    return np.vstack(
        [rng.normal(0.0, 1.0, size=(20, N_FEATURES)), rng.normal(6.0, 1.0, size=(20, N_FEATURES))]
    )


def with_value(X, row, column, value):
    X = X.copy()
    X[row, column] = value
    return X


def with_values(X, *entries):
    X = X.copy()
    for row, column, value in entries:
        X[row, column] = value
    return X


def object_array(X, row, column, value):
    X = X.astype(object)
    X[row, column] = value
    return X


def save_npy(tmp_path, array):
    path = tmp_path / "data.npy"
    np.save(path, array, allow_pickle=True)
    return [str(path)]


def npy_file(make):
    """CLI argv: the array ``make(X)`` saved as .npy."""
    return lambda tmp_path, X: save_npy(tmp_path, make(X))


def options(*argv):
    """CLI argv: the fixture data as .npy followed by options."""
    return lambda tmp_path, X: [*save_npy(tmp_path, X), *argv]


@dataclass
class Case:
    id: str
    error: type
    fragment: str
    X: Callable = lambda X: X  # the X passed to fit (or predict)
    params: dict = None  # constructor parameters besides random_state
    sample_weight: Callable = None
    action: str = "fit"  # or "predict" (after a fit on the fixture data) or "predict_unfitted"
    cli: Callable = None  # (tmp_path, X) -> argv after "fit"; None: not expressible
    cli_fragment: str = None


CASES = [
    # non-finite values: which one, and where the first one is
    Case("X NaN", ValueError, "contains NaN at row 4, column 1",
         X=lambda X: with_value(X, 4, 1, np.nan),
         cli=npy_file(lambda X: with_value(X, 4, 1, np.nan)), cli_fragment="element [4, 1] is nan"),
    Case("X +inf", ValueError, "contains +inf at row 7, column 2",
         X=lambda X: with_value(X, 7, 2, np.inf),
         cli=npy_file(lambda X: with_value(X, 7, 2, np.inf)), cli_fragment="element [7, 2] is inf"),
    Case("X -inf", ValueError, "contains -inf at row 0, column 0",
         X=lambda X: with_value(X, 0, 0, -np.inf),
         cli=npy_file(lambda X: with_value(X, 0, 0, -np.inf)), cli_fragment="element [0, 0] is -inf"),
    Case("X NaN before inf", ValueError, "contains NaN at row 2, column 2 (2 non-finite",
         X=lambda X: with_values(X, (9, 0, np.inf), (2, 2, np.nan)),
         cli=npy_file(lambda X: with_values(X, (9, 0, np.inf), (2, 2, np.nan))),
         cli_fragment="element [2, 2] is nan"),
    # shapes
    Case("X 1-D", ValueError, "got a 1-D array of shape (40,). Reshape your data: X.reshape(-1, 1)",
         X=lambda X: X[:, 0]),  # the CLI reads a 1-D .npy as one feature, by design
    Case("X 3-D", ValueError, "got a 3-D array of shape (40, 3, 1)",
         X=lambda X: X[:, :, np.newaxis],
         cli=npy_file(lambda X: X[:, :, np.newaxis]), cli_fragment="shape (40, 3, 1)"),
    Case("X scalar", ValueError, "got a scalar", X=lambda X: 3.0),
    Case("X ragged list", ValueError, "could not make an array of X",
         X=lambda X: [[1.0, 2.0], [3.0]]),
    Case("X empty", ValueError, "0 sample(s) (shape=(0, 3))",
         X=lambda X: X[:0],
         cli=npy_file(lambda X: X[:0]), cli_fragment="empty array of shape (0, 3)"),
    Case("X zero features", ValueError, "0 feature(s) (shape=(40, 0))",
         X=lambda X: X[:, :0],
         cli=npy_file(lambda X: X[:, :0]), cli_fragment="empty array of shape (40, 0)"),
    Case("n_samples < n_components", ValueError, "n_components = 5, n_samples = 3",
         X=lambda X: X[:3], params={"n_components": 5},
         cli=lambda tmp_path, X: [*save_npy(tmp_path, X[:3]), "-k", "5"],
         cli_fragment="has 3 rows, fewer than the 5 components"),
    # dtypes
    Case("X object with a string", TypeError, "element at row 3, column 1 ('abc') is not a number",
         X=lambda X: object_array(X, 3, 1, "abc"),
         cli=npy_file(lambda X: object_array(X, 3, 1, "abc")),
         cli_fragment="Object arrays cannot be loaded"),
    Case("X object with None", ValueError, "contains NaN at row 0, column 2",  # None: missing
         X=lambda X: object_array(X, 0, 2, None)),
    Case("X object with a dict", TypeError, "row 0, column 0 ({'a': 1}) is not a number (float() argument",
         X=lambda X: object_array(X, 0, 0, {"a": 1})),
    Case("X string dtype", TypeError, "holds strings (dtype <U",
         X=lambda X: X.astype(str),
         cli=npy_file(lambda X: X.astype(str)), cli_fragment="dtype <U32; a numeric array is needed"),
    Case("X complex", ValueError, "Complex data not supported: X has dtype complex128",
         X=lambda X: X + 1j,
         cli=npy_file(lambda X: X + 1j), cli_fragment="dtype complex128; a numeric array is needed"),
    Case("X boolean", TypeError, "X is boolean (dtype bool)",
         X=lambda X: X > 0,
         cli=npy_file(lambda X: X > 0), cli_fragment="dtype bool; a numeric array is needed"),
    Case("DataFrame boolean column", TypeError, "column 'b' of X is boolean",
         X=lambda X: pd.DataFrame(X, columns=["a", "b", "c"]).assign(b=lambda d: d.b > 0)),
    Case("DataFrame text column", TypeError, "column 'c' of X holds a value that is not a number at row 0",
         X=lambda X: pd.DataFrame(X, columns=["a", "b", "c"]).assign(c="n/a")),
    Case("X sparse", TypeError, "Sparse data was passed for X, but dense data is required",
         X=lambda X: sparse.csr_matrix(X)),
    # sample_weight (no CLI option)
    Case("sample_weight wrong length", ValueError, "sample_weight must have shape (40,) to match X, got (39,)",
         sample_weight=lambda X: np.ones(len(X) - 1)),
    Case("sample_weight negative", ValueError, "non-negative; found -1.0 at index 3",
         sample_weight=lambda X: with_value(np.ones((1, len(X))), 0, 3, -1.0)[0]),
    Case("sample_weight NaN", ValueError, "sample_weight contains nan at index 5",
         sample_weight=lambda X: with_value(np.ones((1, len(X))), 0, 5, np.nan)[0]),
    Case("sample_weight inf", ValueError, "sample_weight contains inf at index 0",
         sample_weight=lambda X: with_value(np.ones((1, len(X))), 0, 0, np.inf)[0]),
    Case("sample_weight all zero", ValueError, "sample_weight sums to zero",
         sample_weight=lambda X: np.zeros(len(X))),
    Case("sample_weight text", TypeError, "sample_weight must be numeric",
         sample_weight=lambda X: np.array(["1"] * len(X))),
    Case("positive weights < n_components", ValueError, "n_samples = 2 (rows with positive sample_weight)",
         params={"n_components": 3},
         sample_weight=lambda X: np.r_[1.0, 1.0, np.zeros(len(X) - 2)]),
    # initial parameters (no CLI option)
    Case("weights_init not summing to 1", ValueError, "weights_init must sum to 1 (normalise it), got sum 0.9",
         params={"n_components": 2, "weights_init": [0.5, 0.4]}),
    Case("weights_init negative", ValueError, "weights_init must lie in [0, 1]",
         params={"n_components": 2, "weights_init": [1.5, -0.5]}),
    Case("means_init wrong shape", ValueError, "means_init must have shape (2, 3), got (2, 2)",
         params={"n_components": 2, "means_init": np.zeros((2, 2))}),
    Case("means_init NaN", ValueError, "means_init contains NaN or infinity",
         params={"n_components": 2, "means_init": [[0.0, 0.0, np.nan], [6.0, 6.0, 6.0]]}),
    Case("precisions_init not symmetric", ValueError, "full precisions_init (component 1) is not symmetric",
         params={"n_components": 2,
                 "precisions_init": np.stack([np.eye(3), np.eye(3) + np.triu(np.ones((3, 3)), 1)])}),
    Case("precisions_init not positive definite", ValueError, "tied precisions_init is not positive definite",
         params={"n_components": 2, "covariance_type": "tied", "precisions_init": np.diag([1.0, -1.0, 1.0])}),
    Case("diag precisions_init not positive", ValueError, "diag precisions_init must be positive",
         params={"n_components": 2, "covariance_type": "diag", "precisions_init": np.zeros((2, 3))}),
    Case("precisions_init wrong shape", ValueError, "precisions_init must have shape (2,), got (3,)",
         params={"n_components": 2, "covariance_type": "spherical", "precisions_init": np.ones(3)}),
    # hyper-parameters
    Case("n_components 0", ValueError, "n_components must be >= 1, got 0",
         params={"n_components": 0},
         cli=options("-k", "0"), cli_fragment="-k/--n-components: must be at least 1, got 0"),
    Case("n_components negative", ValueError, "n_components must be >= 1, got -2",
         params={"n_components": -2},
         cli=options("-k", "-2"), cli_fragment="-k/--n-components: must be at least 1, got -2"),
    Case("n_components float", TypeError, "n_components must be an integer, got 2.5",
         params={"n_components": 2.5},
         cli=options("-k", "2.5"), cli_fragment="'2.5' is not an integer"),
    Case("n_components string", TypeError, "n_components must be an integer, got '2'",
         params={"n_components": "2"}),
    Case("unknown covariance_type", ValueError, "covariance_type must be one of 'full', 'tied', 'diag', 'spherical'; got 'ful'",
         params={"covariance_type": "ful"},
         cli=options("--covariance-type", "ful"), cli_fragment="--covariance-type: invalid choice: 'ful'"),
    Case("unknown init_params", ValueError, "init_params must be one of 'kmeans'",
         params={"init_params": "kmeans++"},
         cli=options("--init-params", "kmeans++"), cli_fragment="--init-params: invalid choice: 'kmeans++'"),
    Case("negative tol", ValueError, "tol must be a finite number >= 0.0, got -0.1",
         params={"tol": -0.1},
         cli=options("--tol", "-0.1"), cli_fragment="--tol: must be a finite number >= 0, got '-0.1'"),
    Case("NaN tol", ValueError, "tol must be a finite number >= 0.0, got nan",
         params={"tol": float("nan")},
         cli=options("--tol", "nan"), cli_fragment="--tol: must be a finite number >= 0, got 'nan'"),
    Case("negative reg_covar", ValueError, "reg_covar must be a finite number >= 0.0, got -1e-06",
         params={"reg_covar": -1e-6},
         cli=options("--reg-covar=-1e-6"), cli_fragment="--reg-covar: must be a finite number >= 0, got '-1e-6'"),
    Case("infinite reg_covar", ValueError, "reg_covar must be a finite number >= 0.0, got inf",
         params={"reg_covar": float("inf")},
         cli=options("--reg-covar", "inf"), cli_fragment="--reg-covar: must be a finite number >= 0, got 'inf'"),
    Case("warm_start not a bool", TypeError, "warm_start must be True or False, got 'yes'",
         params={"warm_start": "yes"}),
    Case("negative max_iter", ValueError, "max_iter must be >= 0, got -1",
         params={"max_iter": -1}),
    Case("n_init 0", ValueError, "n_init must be >= 1, got 0", params={"n_init": 0}),
    Case("negative verbose", ValueError, "verbose must be >= 0, got -1",
         params={"verbose": -1}),
    Case("verbose_interval 0", ValueError, "verbose_interval must be >= 1, got 0",
         params={"verbose_interval": 0}),
    Case("n_threads 0", ValueError, "n_threads must be >= 1, got 0",
         params={"n_threads": 0}),
    Case("n_threads float", TypeError, "n_threads must be an integer, got 1.5",
         params={"n_threads": 1.5}),
    Case("chunk_size 0", ValueError, "chunk_size must be >= 1, got 0",
         params={"chunk_size": 0}),
    Case("unknown on_singular", ValueError, "on_singular must be one of",
         params={"on_singular": "ignore"}),
    # inference (no CLI command)
    Case("predict before fit", NotFittedError, "is not fitted yet", action="predict_unfitted"),
    Case("predict other n_features", ValueError, "X has 2 features, but GaussianMixture is expecting 3 features",
         X=lambda X: X[:, :2], action="predict"),
    Case("predict NaN", ValueError, "contains NaN at row 1, column 0",
         X=lambda X: with_value(X, 1, 0, np.nan), action="predict"),
    Case("predict 1-D", ValueError, "got a 1-D array of shape (3,)",
         X=lambda X: X[0], action="predict"),
]


def build(case, X):
    """The case's inputs: X, sample_weight and constructor parameters."""
    data = case.X(X)
    sample_weight = case.sample_weight(X) if case.sample_weight else None
    return data, sample_weight, dict(case.params or {})


def run_case(case, X, data, sample_weight, params):
    """Run the case's action on the given inputs; returns pytest's ExceptionInfo."""
    model = GaussianMixture(random_state=0, **params)
    with pytest.raises(case.error) as caught:
        if case.action == "fit":
            model.fit(data, sample_weight=sample_weight)
        elif case.action == "predict_unfitted":
            model.predict(data)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.set_params(n_components=2).fit(X)
            model.predict(data)
    return caught


def snapshot(value):
    """Bytes, dtype, shape and layout of an input (its repr for other objects)."""
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.strides, value.tobytes())
    if isinstance(value, pd.DataFrame):
        return tuple(
            (name, str(dtype), tuple(map(repr, value[name].tolist())))
            for name, dtype in value.dtypes.items()
        )
    if sparse.issparse(value):
        return (value.data.tobytes(), value.indices.tobytes(), value.indptr.tobytes())
    return repr(value)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_raises_a_clear_error(case, X):
    caught = run_case(case, X, *build(case, X))
    error = caught.value
    assert type(error) is case.error or (
        case.error is NotFittedError and isinstance(error, NotFittedError)
    ) or (  # a constructor parameter: both, as scikit-learn's InvalidParameterError
        type(error) is InvalidParameterError and case.error in (ValueError, TypeError)
    ), f"{type(error).__name__}: {error}"
    message = str(error)
    assert case.fragment in message, message
    assert "\n" not in message, "one paragraph, no array dump"
    assert len(message) < 400, message


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_bad_input_leaves_the_callers_arrays_unchanged(case, X):
    X_before = snapshot(X)
    data, sample_weight, params = build(case, X)
    inputs = {"X": data, "sample_weight": sample_weight, **params}
    before = {name: snapshot(value) for name, value in inputs.items()}
    run_case(case, X, data, sample_weight, params)
    assert snapshot(X) == X_before
    for name, value in inputs.items():
        assert snapshot(value) == before[name], name


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.cli is not None], ids=lambda case: case.id
)
def test_bad_input_through_the_cli_is_one_line_and_exit_2(case, X, tmp_path, capsys):
    argv = ["fit", *case.cli(tmp_path, X)]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastem: error: "), lines[0]
    assert case.cli_fragment in lines[0], lines[0]
    assert captured.out == ""


def test_every_cli_case_has_a_fragment():
    for case in CASES:
        assert (case.cli is None) == (case.cli_fragment is None), case.id


# --------------------------------------------------------------------------
# accepted inputs: converted, never modified, and fitted as the float64 array


def fitted(model):
    return [model.weights_, model.means_, model.covariances_, model.precisions_cholesky_,
            model.lower_bound_]


def assert_same_model(actual, expected):
    for a, b in zip(fitted(actual), fitted(expected), strict=True):
        assert_array_equal(a, b)


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda X: np.round(X * 100).astype(np.int64), id="int64"),
        pytest.param(lambda X: np.round(X * 100).astype(np.int32), id="int32"),
        pytest.param(lambda X: pd.DataFrame(np.round(X * 100)), id="DataFrame"),
        pytest.param(lambda X: np.round(X * 100).tolist(), id="list of lists"),
        pytest.param(lambda X: np.round(X * 100).astype(object), id="object of floats"),
        pytest.param(lambda X: pd.DataFrame(np.round(X * 100)).astype("Int64"), id="nullable Int64"),
    ],
)
def test_accepted_inputs_fit_exactly_as_the_float64_array(X, convert):
    expected_X = np.round(X * 100)
    data = convert(X)
    before = snapshot(data)
    params = dict(n_components=2, random_state=0)
    model = GaussianMixture(**params).fit(data)
    expected = GaussianMixture(**params).fit(expected_X)
    assert_same_model(model, expected)
    assert model.means_.dtype == np.float64
    assert_array_equal(model.predict_proba(data), expected.predict_proba(expected_X))
    assert snapshot(data) == before


def test_dataframe_feature_names_are_kept_and_checked(X):
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = GaussianMixture(2, random_state=0).fit(frame)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert_same_model(model, GaussianMixture(2, random_state=0).fit(X))
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        model.predict(frame.rename(columns={"c": "d"}))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F", "sliced"])
def test_fit_and_inference_never_modify_the_callers_arrays(X, rng, covariance_type, dtype, order):
    """Every array the caller passes, in every layout, is byte-for-byte unchanged.

    The data include duplicated rows so that the singular-covariance fallback
    (which re-seeds components at data points) runs as well.
    """
    data = np.vstack([X, np.repeat(X[:1], 10, axis=0)]).astype(dtype)
    if order == "F":
        data = np.asfortranarray(data)
    elif order == "sliced":
        wide = np.zeros((data.shape[0], 2 * N_FEATURES), dtype=dtype)
        wide[:, ::2] = data
        data = wide[:, ::2]
    sample_weight = rng.uniform(0.5, 2.0, size=len(data)).astype(dtype)
    n_components = 3
    precisions = {
        "full": np.stack([np.eye(N_FEATURES)] * n_components),
        "tied": np.eye(N_FEATURES),
        "diag": np.ones((n_components, N_FEATURES)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    inputs = {
        "X": data,
        "sample_weight": sample_weight,
        "weights_init": np.full(n_components, 1.0 / n_components),
        "means_init": np.asfortranarray(data[[0, 25, 45]].astype(np.float64)),
        "precisions_init": precisions,
    }
    before = {name: snapshot(value) for name, value in inputs.items()}
    model = GaussianMixture(
        n_components, covariance_type=covariance_type, reg_covar=0.0, random_state=0,
        weights_init=inputs["weights_init"], means_init=inputs["means_init"],
        precisions_init=inputs["precisions_init"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = model.fit_predict(data, sample_weight=sample_weight)
        model.fit(data, sample_weight=sample_weight)
        model.predict(data)
        model.predict_proba(data)
        model.score_samples(data)
        model.score(data)
        model.bic(data)
        model.aic(data)
    assert labels.shape == (len(data),)
    for name, value in inputs.items():
        assert snapshot(value) == before[name], name
    # and the model does not hold on to the caller's arrays
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        for value in inputs.values():
            assert not np.shares_memory(getattr(model, attribute), value), attribute


def estimator_of(kind, init_params):
    """A warm-starting GaussianMixture or BayesianGaussianMixture, or a small
    GaussianMixtureIC grid, with the given start."""
    if kind == "GaussianMixtureIC":
        return GaussianMixtureIC(n_components=(1, 2, 3), init_params=init_params,
                                 n_init=1, random_state=0)
    estimator = {"GaussianMixture": GaussianMixture,
                 "BayesianGaussianMixture": BayesianGaussianMixture}[kind]
    return estimator(n_components=3, init_params=init_params, warm_start=True,
                     max_iter=10, random_state=0)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("kind", "init_params"), [
    (kind, init_params)
    for kind in ("GaussianMixture", "BayesianGaussianMixture", "GaussianMixtureIC")
    for init_params in ("kmeans", "k-means++", "random", "random_from_data", "hc")
    if init_params != "hc" or kind == "GaussianMixtureIC"  # GaussianMixtureIC's only
])
def test_every_estimator_and_start_leave_the_callers_arrays_alone(X, rng, kind,
                                                                 init_params, order):
    """The starts computed from the data (k-means, k-means++, random responsibilities,
    rows of X, mclust's hierarchical start for GaussianMixtureIC), a warm refit, and
    every method that takes data, of each estimator: the caller's X and sample_weight
    are byte-for-byte unchanged. (The test above gives GaussianMixture its start.)"""
    data = np.vstack([X, np.repeat(X[:1], 10, axis=0)])  # duplicated rows
    if order == "F":
        data = np.asfortranarray(data)
    sample_weight = rng.uniform(0.5, 2.0, size=len(data))
    before = snapshot(data), snapshot(sample_weight)
    model = estimator_of(kind, init_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit_predict(data, sample_weight=sample_weight)
        model.fit(data, sample_weight=sample_weight)  # warm, where it can be
        model.predict(data)
        model.predict_proba(data)
        model.score_samples(data)
        model.score(data)
        if kind != "BayesianGaussianMixture":
            model.bic(data)
            model.aic(data)
    assert (snapshot(data), snapshot(sample_weight)) == before


# --------------------------------------------------------------------------
# Fast paths: an already valid float array skips scikit-learn's validate_data,
# and the RandomState is seeded only when a draw is needed. Both must behave
# exactly as the full path does.


def test_refit_on_an_array_drops_the_feature_names_of_a_dataframe(X):
    model = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    model.fit(X)  # the fast path
    assert not hasattr(model, "feature_names_in_")
    assert model.n_features_in_ == N_FEATURES
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        model.predict(X[:, :2])


def test_predict_on_an_array_warns_when_fitted_with_feature_names(X):
    model = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b", "c"]))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(X)


def test_too_few_samples_in_a_valid_float_array_is_rejected(X):
    with pytest.raises(ValueError, match=r"Found array with 1 sample\(s\)"):
        GaussianMixture(1).fit(X[:1])


@pytest.mark.parametrize("seed", ["zero", -1, 2**32, np.random.default_rng(0)])
def test_an_invalid_random_state_is_rejected_even_from_a_complete_start(X, seed):
    start = dict(
        weights_init=[0.5, 0.5], means_init=X[[0, -1]], precisions_init=np.array([np.eye(3)] * 2)
    )
    with pytest.raises(ValueError, match="RandomState|Seed"):
        GaussianMixture(2, random_state=seed, **start).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_a_lazily_seeded_fit_draws_what_an_eager_one_draws(X, init_params):
    params = dict(n_components=2, init_params=init_params, max_iter=5)
    eager = GaussianMixture(random_state=np.random.RandomState(7), **params).fit(X)
    lazy = GaussianMixture(random_state=7, **params).fit(X)
    assert_same_model(lazy, eager)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_first_bad_precision_matrix_is_reported(X):
    precisions = np.array([np.eye(3)] * 3)
    precisions[1, 0, 0] = -1.0  # symmetric, not positive definite
    precisions[2, 0, 1] = 0.5  # not symmetric
    with pytest.raises(ValueError, match=r"\(component 1\) is not positive definite"):
        GaussianMixture(3, precisions_init=precisions).fit(X)
    precisions[1, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"\(component 2\) is not symmetric"):
        GaussianMixture(3, precisions_init=precisions).fit(X)
    precisions[2, 0, 1] = precisions[2, 1, 0] * (1 + 1e-9)  # allclose: symmetric enough
    GaussianMixture(3, precisions_init=precisions, max_iter=1).fit(X)


# --------------------------------------------------------------------------
# Real-valued parameters at their limits: refused or accepted as scikit-learn's
# parameter constraints refuse or accept them. scikit-learn's Interval(Real, 0,
# None, closed="left") excludes +inf (the missing right end is an open inf), so
# tol=inf, reg_covar=inf and the priors' inf are refused by both; NaN and -inf too.

#: (estimator, parameter, other constructor parameters, a valid finite value)
REAL_PARAMETERS = [
    ("GaussianMixture", "tol", {}, 0.5),
    ("GaussianMixture", "reg_covar", {}, 0.5),
    ("BayesianGaussianMixture", "tol", {}, 0.5),
    ("BayesianGaussianMixture", "reg_covar", {}, 0.5),
    ("BayesianGaussianMixture", "weight_concentration_prior", {}, 0.5),
    ("BayesianGaussianMixture", "mean_precision_prior", {}, 0.5),
    # valid above n_features - 1
    ("BayesianGaussianMixture", "degrees_of_freedom_prior", {}, 5.0),
    # a number only for 'spherical' (for the others it is an array)
    ("BayesianGaussianMixture", "covariance_prior",
     {"covariance_type": "spherical"}, 0.5),
]
LIMITS = {
    "inf": float("inf"),
    "-inf": -float("inf"),
    "nan": float("nan"),
    "float64 inf": np.float64(np.inf),
    "float32 inf": np.float32(np.inf),
    "float32 nan": np.float32(np.nan),
    "0.0": 0.0,
    "-0.0": -0.0,
    "int 0": 0,
    "-1e-300": -1e-300,
}


def _estimators(name):
    from sklearn import mixture

    fastem = {"GaussianMixture": GaussianMixture,
              "BayesianGaussianMixture": BayesianGaussianMixture}[name]
    return fastem, getattr(mixture, name)


def test_real_parameters_are_scikit_learns():
    """Every parameter scikit-learn constrains by Interval(Real, ...) is tested."""
    from sklearn.utils._param_validation import Interval

    for name in ("GaussianMixture", "BayesianGaussianMixture"):
        _, sklearn_estimator = _estimators(name)
        constraints = sklearn_estimator._parameter_constraints
        constrained = {
            parameter
            for parameter, allowed in constraints.items()
            if any(isinstance(c, Interval) and c.type is numbers.Real for c in allowed)
        }
        assert constrained == {p for e, p, _, _ in REAL_PARAMETERS if e == name}


def _verdict(estimator, X):
    """'accepted' or 'refused: <message>' (a ValueError or a TypeError)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            estimator.fit(X)
        except (ValueError, TypeError) as error:
            return f"refused: {error}"
    return "accepted"


@pytest.mark.parametrize(
    ("name", "parameter", "others", "value"),
    [pytest.param(name, parameter, others, value, id=f"{name}.{parameter}={label}")
     for name, parameter, others, valid in REAL_PARAMETERS
     for label, value in [*LIMITS.items(), ("valid", valid)]],
)
def test_real_parameters_at_their_limits_as_scikit_learn(X, name, parameter, others,
                                                        value):
    """fastem refuses a value exactly when scikit-learn's parameter constraints do,
    as an InvalidParameterError (a ValueError and a TypeError, as scikit-learn's)
    naming the parameter; a value both accept gives finite fitted parameters."""
    from sklearn.utils._param_validation import (
        InvalidParameterError as SklearnInvalidParameterError,
    )

    fastem_estimator, sklearn_estimator = _estimators(name)
    params = dict(n_components=2, random_state=0, **others, **{parameter: value})
    theirs = _verdict(sklearn_estimator(**params), X)
    try:  # scikit-learn's refusal must come from its constraints, not from the fit
        sklearn_estimator(**params)._validate_params()
        sklearn_refuses = False
    except SklearnInvalidParameterError:
        sklearn_refuses = True
    assert theirs.startswith("refused") == sklearn_refuses, theirs
    model = fastem_estimator(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sklearn_refuses:
            with pytest.raises(InvalidParameterError, match=parameter):
                model.fit(X)
            return
        model.fit(X)
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(model, attribute))), attribute


@pytest.mark.parametrize("name", ["GaussianMixture", "BayesianGaussianMixture"])
def test_tol_inf_is_refused_as_scikit_learn_refuses_it(X, name):
    """The case that looked like a difference: scikit-learn 1.9 refuses tol=inf too
    (its message: "must be a float in the range [0.0, inf). Got inf instead.");
    fastem says that the value must be finite."""
    from sklearn.utils._param_validation import (
        InvalidParameterError as SklearnInvalidParameterError,
    )

    fastem_estimator, sklearn_estimator = _estimators(name)
    with pytest.raises(SklearnInvalidParameterError, match=r"\[0.0, inf\). Got inf"):
        sklearn_estimator(tol=float("inf")).fit(X)
    with pytest.raises(InvalidParameterError,
                       match=r"tol must be a finite number >= 0.0, got inf"):
        fastem_estimator(tol=float("inf")).fit(X)


@pytest.mark.parametrize("parameter", ["tol", "reg_covar"])
def test_booleans_are_refused_where_scikit_learn_takes_them_as_numbers(X, parameter):
    """A deliberate difference: scikit-learn's Interval(Real, ...) takes True as 1.0
    and False as 0.0 (bool is an int); fastem refuses a bool for a number, as for its
    integer parameters."""
    _, sklearn_estimator = _estimators("GaussianMixture")
    sklearn_model = sklearn_estimator(n_components=2, **{parameter: True})
    assert _verdict(sklearn_model, X) == "accepted"
    with pytest.raises(InvalidParameterError,
                       match=f"{parameter} must be a real number, got True"):
        GaussianMixture(n_components=2, **{parameter: True}).fit(X)
