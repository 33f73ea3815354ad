"""save_model / load_model: a JSON round trip gives back the same fitted model
(GaussianMixture and BayesianGaussianMixture)."""

import json
import warnings

import numpy as np
import pytest

from fastem import (
    BayesianGaussianMixture,
    GaussianMixture,
    load_faithful,
    load_model,
    save_model,
)

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()


def fitted_attributes(model):
    return {
        name: value
        for name, value in vars(model).items()
        if name.endswith("_") and not name.startswith("_")
    }


def assert_same_value(expected, actual, name):
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), name
        assert actual.dtype == expected.dtype, name
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), name
        assert actual.keys() == expected.keys(), name
        for key in expected:
            assert_same_value(expected[key], actual[key], f"{name}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), name
        for i, (left, right) in enumerate(zip(expected, actual, strict=True)):
            assert_same_value(left, right, f"{name}[{i}]")
    else:
        assert type(actual) is type(expected), name
        assert actual == expected, name


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_exact(tmp_path, faithful, covariance_type, dtype):
    X = faithful.astype(dtype)
    model = GaussianMixture(
        n_components=3, covariance_type=covariance_type, n_init=2, random_state=0
    ).fit(X)
    path = tmp_path / "model.json"
    save_model(model, path)
    loaded = load_model(path)

    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == model.get_params()
    expected = fitted_attributes(model)
    assert fitted_attributes(loaded).keys() == expected.keys()
    for name, value in expected.items():
        assert_same_value(value, getattr(loaded, name), name)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_round_trip_keeps_init_arrays_and_feature_names(tmp_path, faithful):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    means_init = np.array([[2.0, 55.0], [4.3, 80.0]])
    model = GaussianMixture(
        n_components=2, means_init=means_init, weights_init=[0.4, 0.6]
    ).fit(frame)
    save_model(model, tmp_path / "model.json")
    loaded = load_model(str(tmp_path / "model.json"))
    np.testing.assert_array_equal(loaded.means_init, means_init)
    assert list(loaded.weights_init) == [0.4, 0.6]
    np.testing.assert_array_equal(loaded.feature_names_in_, ["eruptions", "waiting"])
    np.testing.assert_array_equal(
        loaded.predict_proba(frame), model.predict_proba(frame)
    )


def test_round_trip_keeps_singular_events(tmp_path):
    # the original notebook's example: collapses without the fallback
    X = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(
            n_components=2, reg_covar=0.0, n_init=10, random_state=0
        ).fit(X)
    assert model.singular_events_
    save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    assert_same_value(model.singular_events_, loaded.singular_events_, "events")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_file_is_json_with_format_header(tmp_path, faithful):
    model = GaussianMixture(n_components=2, random_state=0).fit(faithful)
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["format"] == "fastem.GaussianMixture"
    assert document["format_version"] == 1
    assert document["params"]["n_components"] == 2
    assert document["params"]["random_state"] == 0
    weights = document["fitted"]["weights_"]
    assert weights["shape"] == [2]
    assert weights["data"] == model.weights_.tolist()  # exact, via repr


def test_save_unfitted_model_raises(tmp_path):
    with pytest.raises(ValueError, match=r"unfitted .* call fit"):
        save_model(GaussianMixture(), tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()


def test_generator_random_state_is_saved_as_none_with_warning(tmp_path, faithful):
    model = GaussianMixture(n_components=2, random_state=np.random.RandomState(0)).fit(
        faithful
    )
    with pytest.warns(UserWarning, match="random_state"):
        save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    assert loaded.random_state is None
    np.testing.assert_array_equal(
        loaded.predict_proba(faithful), model.predict_proba(faithful)
    )


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not a fastem model file"),
        ('{"format": "something else"}', "not a fastem model file"),
        ("[1, 2]", "not a fastem model file"),
        (
            '{"format": "fastem.GaussianMixture", "format_version": 99,'
            ' "params": {}, "fitted": {}}',
            "upgrade fastem",
        ),
        (
            '{"format": "fastem.GaussianMixture", "format_version": 1,'
            ' "params": {}, "fitted": {"weights_": [1.0]}}',
            "missing means_",
        ),
        ('{"format": "fastem.GaussianMixture", "format_version": 1}', "damaged"),
    ],
)
def test_load_rejects_other_files(tmp_path, content, match):
    path = tmp_path / "model.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def set_nan(array):
    array["data"][0] = float("nan")  # json writes NaN, and reads it back


def drop_row(array):
    array["data"], array["shape"][0] = array["data"][1:], array["shape"][0] - 1


def as_integers(array):
    array["dtype"], array["data"] = "<i8", [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("bayesian", "name", "edit", "match"),
    [
        (False, "weights_", set_nan, "weights_ holds NaN or infinite values"),
        (False, "means_", drop_row,
         r"means_ is a float64 array of shape \(1, 2\); 2 components of 2 features "
         r"with covariance_type='full' need float values of shape \(2, 2\)"),
        (False, "means_", as_integers, "means_ is a int64 array"),
        (False, "precisions_cholesky_", drop_row, r"precisions_cholesky_ .* \(2, 2, 2\)"),
        (False, "n_features_in_", lambda _: None, "n_features_in_ is 0"),
        (True, "mean_precision_", set_nan, "mean_precision_ holds NaN"),
        (True, "weight_concentration_", None, r"weight_concentration_\[1\] .* \(2,\)"),
    ],
)
def test_load_rejects_parameters_that_do_not_fit(tmp_path, faithful, bayesian, name,
                                                 edit, match):
    """A file edited by hand or mixed up: load_model must not return a model that
    predicts NaN, or whose arrays are not the shapes its parameters say."""
    model = (BayesianGaussianMixture if bayesian else GaussianMixture)(
        n_components=2, random_state=0, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(faithful)
    path = tmp_path / "model.json"
    save_model(model, path)
    document = json.loads(path.read_text())
    fitted = document["fitted"]
    if name == "n_features_in_":
        fitted[name] = 0
    elif name == "weight_concentration_":  # the Dirichlet process's second array
        drop_row(fitted[name][1])
    else:
        edit(fitted[name])
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="is a damaged fastem model file: " + match):
        load_model(path)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "prior_type", ["dirichlet_process", "dirichlet_distribution"]
)
def test_bayesian_round_trip_is_exact(tmp_path, faithful, covariance_type, prior_type):
    model = BayesianGaussianMixture(
        n_components=4,
        covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type,
        random_state=0,
    ).fit(faithful)
    path = tmp_path / "model.json"
    save_model(model, path)
    loaded = load_model(path)

    assert type(loaded) is BayesianGaussianMixture
    assert loaded.get_params() == model.get_params()
    expected = fitted_attributes(model)
    assert fitted_attributes(loaded).keys() == expected.keys()
    for name, value in expected.items():
        assert_same_value(value, getattr(loaded, name), name)
    assert type(loaded.weight_concentration_) is type(model.weight_concentration_)
    np.testing.assert_array_equal(loaded.predict_proba(faithful),
                                  model.predict_proba(faithful))
    np.testing.assert_array_equal(loaded.score_samples(faithful),
                                  model.score_samples(faithful))
    np.testing.assert_array_equal(loaded.predict(faithful), model.predict(faithful))


def test_bayesian_round_trip_float32_given_priors_and_warm_start(tmp_path, faithful):
    X = faithful.astype(np.float32)
    model = BayesianGaussianMixture(
        n_components=3,
        covariance_type="full",
        mean_prior=[3.0, 70.0],
        covariance_prior=np.diag([1.0, 30.0]),
        degrees_of_freedom_prior=3.5,
        weight_concentration_prior=0.01,
        max_iter=5,
        warm_start=True,
        random_state=1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 5 iterations: not converged
        model.fit(X)
    save_model(model, tmp_path / "model.json")
    loaded = load_model(tmp_path / "model.json")
    np.testing.assert_array_equal(loaded.mean_prior, [3.0, 70.0])
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # the loaded model continues the fit exactly as the saved one does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        loaded.fit(X)
    assert loaded.lower_bounds_ == model.lower_bounds_
    np.testing.assert_array_equal(loaded.means_, model.means_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_bayesian_file_header_and_sklearn_model(tmp_path, faithful):
    from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian

    theirs = SklearnBayesian(n_components=3, random_state=0).fit(faithful)
    save_model(theirs, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["format"] == "fastem.BayesianGaussianMixture"
    assert len(document["fitted"]["weight_concentration_"]) == 2  # the (a, b) pair
    loaded = load_model(tmp_path / "model.json")
    assert type(loaded) is BayesianGaussianMixture
    np.testing.assert_allclose(
        loaded.predict_proba(faithful), theirs.predict_proba(faithful),
        rtol=1e-10, atol=1e-14,
    )


def test_bayesian_save_unfitted_and_load_incomplete(tmp_path, faithful):
    with pytest.raises(ValueError, match=r"unfitted BayesianGaussianMixture .* fit"):
        save_model(BayesianGaussianMixture(), tmp_path / "model.json")
    model = BayesianGaussianMixture(n_components=2, random_state=0).fit(faithful)
    save_model(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    del document["fitted"]["degrees_of_freedom_"]
    (tmp_path / "model.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="missing degrees_of_freedom_"):
        load_model(tmp_path / "model.json")


def test_load_missing_file_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.json")
