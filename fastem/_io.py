"""Save and load fitted GaussianMixture and BayesianGaussianMixture models as JSON.

The file holds the constructor parameters and every public fitted attribute
(the names ending in ``_``). Floats are written with ``repr`` precision, so they
read back bit for bit; arrays keep their dtype and shape. Its ``format`` names
the estimator: ``fastem.GaussianMixture`` or ``fastem.BayesianGaussianMixture``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["load_model", "save_model"]

FORMAT_NAME = "fastem.GaussianMixture"
BAYESIAN_FORMAT_NAME = "fastem.BayesianGaussianMixture"
FORMAT_NAMES = (FORMAT_NAME, BAYESIAN_FORMAT_NAME)
FORMAT_VERSION = 1

# Attributes a fitted model must have to be saved, and that a file must provide.
REQUIRED_FITTED = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
    "converged_",
    "n_iter_",
    "lower_bound_",
    "n_features_in_",
)
# ... and a variational mixture's posterior besides
REQUIRED_BAYESIAN_FITTED = (
    *REQUIRED_FITTED,
    "weight_concentration_",
    "mean_precision_",
    "degrees_of_freedom_",
)


def _is_bayesian(model):
    """fastem's or scikit-learn's BayesianGaussianMixture."""
    from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian

    from fastem.bayesian import BayesianGaussianMixture

    return isinstance(model, (BayesianGaussianMixture, SklearnBayesian))


def _estimator_of(format_name):
    if format_name == BAYESIAN_FORMAT_NAME:
        from fastem.bayesian import BayesianGaussianMixture

        return BayesianGaussianMixture()
    from fastem.mixture import GaussianMixture

    return GaussianMixture()

_ARRAY_TAG = "__ndarray__"
_SCALAR_TAG = "__numpy_scalar__"


def _encode(value, where):
    """Turn ``value`` into plain JSON types; arrays become tagged objects."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):  # numpy scalar: keep its type
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot save {where}: unsupported dtype {value.dtype}")
        return {_SCALAR_TAG: value.dtype.str, "value": value.item()}
    if isinstance(value, (int, float)):
        return value  # json writes floats with repr: exact round trip
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise TypeError(f"cannot save {where}: unsupported dtype {value.dtype}")
        data = value.tolist()
        if value.dtype.kind == "O":
            data = _encode(data, where)
        return {
            _ARRAY_TAG: True,
            "dtype": value.dtype.str if value.dtype.kind != "O" else "object",
            "shape": list(value.shape),
            "data": data,
        }
    if isinstance(value, dict):
        return {
            str(key): _encode(item, f"{where}[{key!r}]") for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode(dataclasses.asdict(value), where)
    raise TypeError(
        f"cannot save {where}: values of type {type(value).__name__} are not "
        "JSON-serialisable"
    )


def _decode(value):
    """Inverse of :func:`_encode` (tagged objects become arrays again)."""
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if value.get(_ARRAY_TAG) is True:
            dtype = object if value["dtype"] == "object" else np.dtype(value["dtype"])
            data = _decode(value["data"]) if dtype is object else value["data"]
            array = np.array(data, dtype=dtype)
            return array.reshape(value["shape"])
        if _SCALAR_TAG in value:
            return np.dtype(value[_SCALAR_TAG]).type(value["value"])
        return {key: _decode(item) for key, item in value.items()}
    return value


def _dumps(document):
    """JSON text with one line per parameter / attribute (arrays stay compact)."""
    lines = []
    for key, value in document.items():
        if isinstance(value, dict):
            items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
            body = ",\n".join(items)
            lines.append(f" {json.dumps(key)}: {{\n{body}\n }}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


def save_model(model, path):
    """Write a fitted GaussianMixture or BayesianGaussianMixture to a JSON file.

    Parameters
    ----------
    model : fastem.GaussianMixture or fastem.BayesianGaussianMixture
        A fitted model (scikit-learn's ``GaussianMixture`` and
        ``BayesianGaussianMixture`` work as well; they load as fastem's).
    path : str or os.PathLike
        File to write; it is replaced if it exists.

    Raises
    ------
    ValueError
        If ``model`` is not fitted.
    TypeError
        If a parameter or fitted attribute cannot be represented in JSON.

    Notes
    -----
    The file holds ``model.get_params()`` and every public fitted attribute
    (``weights_``, ``means_``, ``covariances_``, ``precisions_``,
    ``precisions_cholesky_``, ``converged_``, ``n_iter_``, ``lower_bound_``,
    ``n_features_in_``, ...; for a BayesianGaussianMixture also the posterior,
    ``weight_concentration_``, ``mean_precision_``, ``degrees_of_freedom_``,
    the resolved priors and ``lower_bounds_``). Floats round-trip exactly. A
    ``random_state``
    that is a generator rather than an int is stored as None, with a warning.

    See Also
    --------
    load_model : read the file back into a fitted model.
    """
    bayesian = _is_bayesian(model)
    required = REQUIRED_BAYESIAN_FITTED if bayesian else REQUIRED_FITTED
    missing = [name for name in required if not hasattr(model, name)]
    if missing:
        raise ValueError(
            f"cannot save an unfitted {type(model).__name__} (missing "
            f"{', '.join(missing)}); call fit(X) first"
        )
    # a covariance_type switched after the fit would be saved as the model's type
    # (with K == D, 'tied' and 'diag' parameters have the same shapes)
    from fastem._estimator import check_fitted_shapes

    check_fitted_shapes(model)
    params = model.get_params(deep=False)
    if not (
        params.get("random_state") is None
        or isinstance(params["random_state"], (int, np.integer))
    ):
        warnings.warn(
            f"random_state={params['random_state']!r} is not an int or None and "
            "cannot be saved; the file stores random_state=None",
            UserWarning,
            stacklevel=2,
        )
        params["random_state"] = None
    encoded_params = {
        name: _encode(value, f"parameter {name}") for name, value in params.items()
    }
    fitted = {
        name: _encode(value, f"attribute {name}")
        for name, value in vars(model).items()
        if name.endswith("_") and not name.startswith("_")
    }
    from fastem import __version__

    document = {
        "format": BAYESIAN_FORMAT_NAME if bayesian else FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "fastem_version": __version__,
        "params": encoded_params,
        "fitted": fitted,
    }
    text = _dumps(document)
    Path(os.fspath(path)).write_text(text + "\n", encoding="utf-8")


def load_model(path):
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        JSON file written by :func:`save_model`.

    Returns
    -------
    model : fastem.GaussianMixture or fastem.BayesianGaussianMixture
        A fitted model of the saved kind, with the saved parameters and
        attributes; its ``predict_proba``, ``score_samples`` etc. equal the
        saved model's.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If the file is not a fastem model file, or is damaged.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as handle:
        try:
            document = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a fastem model file: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") not in FORMAT_NAMES:
        raise ValueError(
            f'{path} is not a fastem model file (expected "format": '
            f'"{FORMAT_NAME}" or "{BAYESIAN_FORMAT_NAME}"); write one with '
            "fastem.save_model"
        )
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version!r}; this fastem reads versions up "
            f"to {FORMAT_VERSION}: upgrade fastem"
        )
    try:
        params = _decode(document["params"])
        fitted = _decode(document["fitted"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} is a damaged fastem model file: {exc!r}") from exc
    bayesian = document["format"] == BAYESIAN_FORMAT_NAME
    required = REQUIRED_BAYESIAN_FITTED if bayesian else REQUIRED_FITTED
    if not isinstance(fitted, dict):
        raise ValueError(f"{path} is a damaged fastem model file: no fitted attributes")
    if not isinstance(params, dict):
        raise ValueError(f"{path} is a damaged fastem model file: no parameters")
    missing = [name for name in required if name not in fitted]
    if missing:
        raise ValueError(
            f"{path} is a damaged fastem model file: missing {', '.join(missing)}"
        )
    if bayesian and isinstance(fitted["weight_concentration_"], list):
        # the Dirichlet process's pair of arrays (JSON has no tuples)
        fitted["weight_concentration_"] = tuple(fitted["weight_concentration_"])

    model = _estimator_of(document["format"])
    known = model.get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"{path} has parameters this fastem does not know: {', '.join(unknown)}; "
            "upgrade fastem"
        )
    model.set_params(**params)
    from fastem import _validation

    check = (_validation.check_bayesian_hyperparameters if bayesian
             else _validation.check_hyperparameters)
    try:
        check(model)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is a damaged fastem model file: {exc}") from exc
    for name, value in fitted.items():
        setattr(model, name, value)
    model._fitted_covariance_type = model.covariance_type  # (check_fitted_shapes)
    _check_loaded_parameters(path, model)
    return model


def _check_loaded_parameters(path, model):
    """The parameters' shapes fit n_components, n_features_in_ and covariance_type,
    and their values are finite: a file edited by hand (JSON reads NaN and Infinity)
    or mixed up must not give a model that predicts NaN, or hand the kernels
    arrays of other shapes than they are told."""
    n_features = model.n_features_in_
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) \
            or n_features < 1:
        raise ValueError(f"{path} is a damaged fastem model file: n_features_in_ is "
                         f"{n_features!r}, not a positive integer")
    from fastem._estimator import fitted_arrays

    k, d = model.n_components, int(n_features)
    for name, value, shape in fitted_arrays(model, k, d):
        value = np.asarray(value)
        if value.shape != shape or value.dtype.kind != "f":
            raise ValueError(
                f"{path} is a damaged fastem model file: {name} is a {value.dtype} "
                f"array of shape {value.shape}; {k} components of {d} features with "
                f"covariance_type={model.covariance_type!r} need float values of "
                f"shape {shape}"
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{path} is a damaged fastem model file: {name} holds "
                             "NaN or infinite values")
