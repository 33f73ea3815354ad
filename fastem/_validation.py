"""Input checks with messages that say what is wrong and what to do.

Every check raises ``ValueError`` (bad value or shape) or ``TypeError`` (bad
type) and never modifies the caller's arrays: anything that has to change is
copied first.
"""

import numbers

import numpy as np
from sklearn.utils.validation import validate_data

from fastem._driver import COVARIANCE_TYPES, INIT_PARAMS, ON_SINGULAR


def _first_bad_position(X):
    """(kind, row, column) of the first NaN or infinity in X, or None."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return None
    flat = int(np.flatnonzero(bad.ravel(order="C"))[0])
    row, column = divmod(flat, X.shape[1])
    value = X[row, column]
    kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
    return kind, row, column


def check_finite(X, name="X"):
    """Raise a ValueError naming the first NaN/inf in a 2-D array and its position."""
    position = _first_bad_position(X)
    if position is not None:
        kind, row, column = position
        count = int((~np.isfinite(X)).sum())
        raise ValueError(
            f"Input {name} contains {kind} at row {row}, column {column} "
            f"({count} non-finite value(s) in all). Remove or impute those "
            "entries before fitting."
        )


def check_data(estimator, X, *, reset, ensure_min_samples=1):
    """Validate X: a 2-D real array; returns a C-contiguous float32/float64 array.

    Integers are converted to float64; float32 stays float32. The returned
    array is a copy whenever the input was not already C-contiguous float.
    """
    X = validate_data(
        estimator,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        ensure_all_finite=False,
        ensure_min_samples=ensure_min_samples,
        accept_sparse=False,
    )
    check_finite(X)
    return np.ascontiguousarray(X)


def check_sample_weight(sample_weight, n_samples):
    """A float64 copy of the sample weights, or ones; checks length, sign and finiteness."""
    if sample_weight is None:
        return np.ones(n_samples)
    weights = np.asarray(sample_weight)
    if weights.dtype.kind not in "biuf":
        raise TypeError(
            f"sample_weight must be numeric, got an array of dtype {weights.dtype}."
        )
    weights = np.array(weights, dtype=np.float64, copy=True)
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X, got {weights.shape}."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(weights < 0):
        raise ValueError(
            f"sample_weight must be non-negative; found {weights.min()} at index "
            f"{int(np.argmin(weights))}."
        )
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one sample must have weight.")
    return weights


def _check_integer(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def _check_real(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}.")


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def check_hyperparameters(estimator):
    """Validate the constructor parameters (at fit time, as scikit-learn does)."""
    _check_integer(estimator.n_components, "n_components", 1)
    _check_choice(estimator.covariance_type, "covariance_type", COVARIANCE_TYPES)
    _check_real(estimator.tol, "tol", 0.0)
    _check_real(estimator.reg_covar, "reg_covar", 0.0)
    _check_integer(estimator.max_iter, "max_iter", 0)
    _check_integer(estimator.n_init, "n_init", 1)
    _check_choice(estimator.init_params, "init_params", INIT_PARAMS)
    _check_choice(estimator.on_singular, "on_singular", ON_SINGULAR)
    _check_integer(estimator.verbose, "verbose", 0)
    _check_integer(estimator.verbose_interval, "verbose_interval", 1)
    if estimator.n_threads is not None:
        _check_integer(estimator.n_threads, "n_threads", 1)
    if estimator.chunk_size is not None:
        _check_integer(estimator.chunk_size, "chunk_size", 1)


def _as_float_array(value, name, shape):
    array = np.array(value, dtype=np.float64, copy=True)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return array


def check_weights_init(weights, n_components):
    weights = _as_float_array(weights, "weights_init", (n_components,))
    if np.any(weights < 0) or np.any(weights > 1):
        raise ValueError(
            "weights_init must lie in [0, 1], got min "
            f"{weights.min():.5f} and max {weights.max():.5f}."
        )
    if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
        raise ValueError(
            f"weights_init must sum to 1 (normalise it), got sum {weights.sum():.10g}."
        )
    return weights


def check_means_init(means, n_components, n_features):
    return _as_float_array(means, "means_init", (n_components, n_features))


def check_precisions_init(precisions, covariance_type, n_components, n_features):
    shapes = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }
    precisions = _as_float_array(precisions, "precisions_init", shapes[covariance_type])
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0):
            raise ValueError(f"{covariance_type} precisions_init must be positive.")
        return precisions
    stack = precisions if covariance_type == "full" else precisions[np.newaxis]
    for k, matrix in enumerate(stack):
        where = f" (component {k})" if covariance_type == "full" else ""
        if not np.allclose(matrix, matrix.T):
            raise ValueError(f"{covariance_type} precisions_init{where} is not symmetric.")
        if not np.all(np.linalg.eigvalsh(matrix) > 0):
            raise ValueError(
                f"{covariance_type} precisions_init{where} is not positive definite."
            )
    return precisions
