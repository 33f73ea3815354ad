"""Input checks with messages that say what is wrong and what to do.

Every check raises ``ValueError`` (bad value or shape) or ``TypeError`` (bad
type) and never modifies the caller's arrays: anything that has to change is
copied first.
"""

import math
import numbers

import numpy as np
from scipy import sparse
from sklearn.utils.validation import validate_data

from fastem.em import sources as _sources
from fastem.em.driver import COVARIANCE_TYPES, INIT_PARAMS, ON_SINGULAR


# Rows checked at a time where a finiteness check needs a mask (its bools are
# this many rows' worth, not the data's size).
CHECK_ROWS = 1 << 16


def _first_bad_position(X):
    """((kind, row, column) of the first NaN or infinity in X, or None; how many
    there are), checked CHECK_ROWS rows at a time."""
    found, count = None, 0
    for start in range(0, X.shape[0], CHECK_ROWS):
        bad = ~np.isfinite(X[start:start + CHECK_ROWS])
        count += int(np.count_nonzero(bad))
        if found is None and count:
            flat = int(np.flatnonzero(bad.ravel(order="C"))[0])
            row, column = divmod(flat, X.shape[1])
            row += start
            value = X[row, column]
            kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
            found = (kind, row, column)
    return found, count


def check_finite(X, name="X"):
    """Raise a ValueError naming the first NaN/inf in a 2-D array and its position."""
    with np.errstate(over="ignore", invalid="ignore"):
        # The common case without a mask of X: a NaN or an infinity makes the sum
        # NaN or infinite, so a finite sum means finite data (a sum that overflows
        # is looked at row by row).
        if np.isfinite(np.sum(X, dtype=np.float64)):
            return
    position, count = _first_bad_position(X)
    if position is not None:
        kind, row, column = position
        raise ValueError(
            f"Input {name} contains {kind} at row {row}, column {column} "
            f"({count} non-finite value(s) in all). Remove or impute those "
            "entries before fitting."
        )


_SHAPE_HELP = "X must be a 2-D array of shape (n_samples, n_features)"


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter of the wrong type or value. Both a ValueError and a
    TypeError, as scikit-learn's own ``InvalidParameterError``, so code written for
    scikit-learn's estimators catches it whichever of the two it expects."""


def _first_non_number(array):
    """(index, value, reason) of the first element of an object array that is not a number.

    Strings are not numbers here, even when float() would parse them: a column
    of text is a data problem to fix before fitting, as for string dtypes.
    """
    try:
        np.asarray(array, dtype=np.float64)
        convertible = True
    except (TypeError, ValueError):
        convertible = False
    for index in np.ndindex(array.shape):
        value = array[index]
        if isinstance(value, (str, bytes)):
            return index, value, "a string"
        if not convertible:
            try:
                float(value)
            except (TypeError, ValueError) as error:
                return index, value, error
    return None


def check_object_numbers(array, first_row=0):
    """Raise a TypeError naming the first element of X (dtype object) that is not a
    number. ``first_row``: the row of X that is ``array``'s first (a chunk of
    streamed or Dask data), so that the message names the row of X."""
    bad = _first_non_number(array)
    if bad is None:
        return
    index, value, error = bad
    if len(index) == 2:
        index = (first_row + index[0], index[1])
    raise TypeError(
        f"X has dtype object and its element at {_where(index)} ({value!r:.50}) "
        f"is not a number ({error}). Convert X to a numeric array first."
    )


def _where(index):
    if len(index) == 2:
        return f"row {index[0]}, column {index[1]}"
    return f"index {index}"


def _check_kind(dtype, what):
    """Reject booleans, complex numbers, strings, dates and records with a clear error."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        raise TypeError(
            f"{what} is boolean (dtype {dtype}); a Gaussian mixture models real-valued "
            "data. Convert it explicitly (X.astype(float)) if 0/1 values are meant."
        )
    if kind == "c":
        # "Complex data not supported" is the phrase scikit-learn's checks expect.
        raise ValueError(
            f"Complex data not supported: {what} has dtype {dtype}. Fit the real part "
            "(X.real), or the real and imaginary parts as separate features."
        )
    if kind in "US":
        raise TypeError(
            f"{what} holds strings (dtype {dtype}); fastem needs numbers. Convert the "
            "data to a numeric array first."
        )
    if kind in "MmV":
        raise TypeError(
            f"{what} has dtype {dtype}, which is not numeric; fastem needs a real-valued "
            "float or integer array."
        )


def _as_numeric_array(X):
    """Array-likes other than DataFrames and sparse matrices, checked before conversion.

    Returns the input itself when it is already a numeric ndarray (never a
    copy), a new float64 array for object arrays of numbers, or the result of
    ``np.asarray`` for lists and other array-likes.
    """
    try:
        array = X if isinstance(X, np.ndarray) else np.asarray(X)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{_SHAPE_HELP}; could not make an array of X: {error}") from None
    if array.ndim != 2:
        got = "a scalar" if array.ndim == 0 else f"a {array.ndim}-D array of shape {array.shape}"
        advice = (
            " Reshape your data: X.reshape(-1, 1) if it holds one feature, or "
            "X.reshape(1, -1) if it holds one sample."
            if array.ndim == 1
            else ""
        )
        raise ValueError(f"{_SHAPE_HELP}; got {got}.{advice}")
    if array.dtype.kind == "O":
        check_object_numbers(array)
        return np.asarray(array, dtype=np.float64)
    _check_kind(array.dtype, "X")
    return array


def _check_dataframe(X):
    """Column-wise dtype checks for a pandas DataFrame (converted later by scikit-learn)."""
    for name, dtype in X.dtypes.items():
        what = f"column {name!r} of X"
        if getattr(dtype, "kind", "O") in "OUS":
            column = np.asarray(X[name], dtype=object)
            bad = _first_non_number(column.reshape(-1, 1))
            if bad is not None:
                (row, _), value, error = bad
                raise TypeError(
                    f"{what} holds a value that is not a number at row {row} "
                    f"({value!r:.50}: {error}). Convert the column to numbers first."
                )
        else:
            _check_kind(dtype, what)


_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def _validated_in_place(estimator, X, reset, ensure_min_samples):
    """Do what ``validate_data`` would do for an X it returns unchanged; False otherwise.

    That X is a plain 2-D C-contiguous ndarray of native float64 or float32
    with at least ``ensure_min_samples`` rows and one column: then
    ``validate_data`` returns X itself, finds no feature names, and only
    records (reset) or checks ``n_features_in_``. This does the same in a few
    attribute look-ups (``validate_data`` costs ~0.2 ms). Anything else,
    including every input that ``validate_data`` would reject or warn about,
    takes the full path.
    """
    if not (
        type(X) is np.ndarray
        and X.ndim == 2
        and X.dtype in _FLOAT_DTYPES
        and X.flags.c_contiguous
        and X.shape[0] >= ensure_min_samples
        and X.shape[1] >= 1
    ):
        return False
    if reset:
        if hasattr(estimator, "feature_names_in_"):  # fitted before on a DataFrame
            del estimator.feature_names_in_
        estimator.n_features_in_ = X.shape[1]
        return True
    if hasattr(estimator, "feature_names_in_"):
        return False  # validate_data warns that X has no feature names
    expected = getattr(estimator, "n_features_in_", None)
    return expected is None or expected == X.shape[1]


def check_data(estimator, X, *, reset, ensure_min_samples=1):
    """Validate X: a 2-D real array; returns a C-contiguous float32/float64 array.

    Integers are converted to float64; float32 stays float32. The returned
    array is a copy whenever the input was not already C-contiguous float.
    Booleans, strings, complex numbers and object arrays holding anything but
    numbers are rejected with an error naming the problem.
    """
    if _validated_in_place(estimator, X, reset, ensure_min_samples):
        check_finite(X)
        return X
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        _check_dataframe(X)
    elif not sparse.issparse(X):  # scikit-learn rejects sparse input with a TypeError
        X = _as_numeric_array(X)
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


def check_sample_weight(sample_weight, n_samples, normalise=True):
    """A float64 copy of the sample weights, or unit weights (``_sources.unit_weights``:
    a read-only view of one 1.0, not an array of ones) when none are given; checks
    length, sign and finiteness.

    With ``normalise`` the weights are scaled by a power of two (see
    :func:`_normalise_weights`); without it they keep their values (the
    variational mixture's posterior depends on the total weight).
    """
    if sample_weight is None:
        return _sources.unit_weights(n_samples)
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
        index = int(np.flatnonzero(~np.isfinite(weights))[0])
        raise ValueError(
            f"sample_weight contains {weights[index]} at index {index}; weights must be "
            "finite."
        )
    if np.any(weights < 0):
        raise ValueError(
            f"sample_weight must be non-negative; found {weights.min()} at index "
            f"{int(np.argmin(weights))}."
        )
    largest = weights.max()
    if not largest > 0:
        raise ValueError("sample_weight sums to zero: at least one sample must have weight.")
    if not normalise:
        return weights
    return _normalise_weights(weights, largest)


def _normalise_weights(weights, largest):
    """Scale weights by a power of two (exact) so that their mean lies in [1, 2).

    Only relative weights matter to the fit, but the mixture weights are
    padded by an absolute 10 * eps (as scikit-learn pads counts); weights in
    sample units keep that padding negligible, and keep sums finite for
    weights near the float64 limits.
    """
    top = math.frexp(largest)[1]
    mean = np.ldexp(weights, -top).sum() / weights.shape[0]  # in (0, 1]: no overflow
    exponent = top + math.frexp(mean)[1] - 1
    return np.ldexp(weights, -exponent) if exponent else weights


def _check_integer(value, name, minimum):
    # type(...) is int: the common case, without the ABC look-ups
    if type(value) is not int and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral)
    ):
        raise InvalidParameterError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value}.")


def _check_real(value, name, minimum):
    if type(value) is float:  # the common case: no ABC look-ups, no numpy call
        finite = math.isfinite(value)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {value!r}.")
    else:
        finite = np.isfinite(value)
    if not finite or value < minimum:
        raise InvalidParameterError(
            f"{name} must be a finite number >= {minimum}, got {value}.")


def _check_choice(value, name, choices):
    if value not in choices:
        raise InvalidParameterError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def _check_common_hyperparameters(estimator):
    """The constructor parameters GaussianMixture and BayesianGaussianMixture share."""
    _check_integer(estimator.n_components, "n_components", 1)
    _check_choice(estimator.covariance_type, "covariance_type", COVARIANCE_TYPES)
    _check_real(estimator.tol, "tol", 0.0)
    _check_real(estimator.reg_covar, "reg_covar", 0.0)
    _check_integer(estimator.max_iter, "max_iter", 0)
    _check_integer(estimator.n_init, "n_init", 1)
    _check_choice(estimator.init_params, "init_params", INIT_PARAMS)
    check_verbose(estimator.verbose)
    _check_integer(estimator.verbose_interval, "verbose_interval", 1)
    if estimator.n_threads is not None:
        _check_integer(estimator.n_threads, "n_threads", 1)
    if estimator.chunk_size is not None:
        _check_integer(estimator.chunk_size, "chunk_size", 1)
    check_init_sample_size(estimator.init_sample_size)
    if not isinstance(estimator.warm_start, (bool, np.bool_)):
        raise InvalidParameterError(
            f"warm_start must be True or False, got {estimator.warm_start!r}.")


def check_init_sample_size(value):
    """init_sample_size: None or a positive int."""
    if value is None:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(
            f"init_sample_size must be an int or None, got {type(value).__name__}."
        )
    if value < 1:
        raise InvalidParameterError(
            f"init_sample_size must be a positive int, got {value}.")


def check_verbose(value):
    """verbose: an int >= 0, or a bool (scikit-learn's "verbose" constraint)."""
    if not isinstance(value, (bool, np.bool_)):
        _check_integer(value, "verbose", 0)


def check_n_present(n_present, n_samples, n_components):
    """At least n_components rows of positive weight (n_present of the n_samples)."""
    if n_present < n_components:
        raise ValueError(
            "Expected n_samples >= n_components but got "
            f"n_components = {n_components}, n_samples = {n_present}"
            + (" (rows with positive sample_weight)" if n_present < n_samples else "")
            + ". Use fewer components or more data."
        )


def check_hyperparameters(estimator):
    """Validate the constructor parameters (at fit time, as scikit-learn does)."""
    _check_common_hyperparameters(estimator)
    _check_choice(estimator.on_singular, "on_singular", ON_SINGULAR)


WEIGHT_CONCENTRATION_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def _check_positive_or_none(value, name):
    if value is None:
        return
    _check_real(value, name, 0.0)
    if not value > 0:
        raise InvalidParameterError(
            f"{name} must be None or a finite number > 0, got {value}.")


def check_bayesian_hyperparameters(estimator):
    """Validate BayesianGaussianMixture's constructor parameters (the priors' values
    that depend on X are checked by :func:`check_mean_prior`,
    :func:`check_degrees_of_freedom_prior` and :func:`check_covariance_prior`)."""
    _check_common_hyperparameters(estimator)
    _check_choice(estimator.weight_concentration_prior_type,
                  "weight_concentration_prior_type", WEIGHT_CONCENTRATION_PRIOR_TYPES)
    _check_positive_or_none(estimator.weight_concentration_prior, "weight_concentration_prior")
    _check_positive_or_none(estimator.mean_precision_prior, "mean_precision_prior")
    _check_positive_or_none(estimator.degrees_of_freedom_prior, "degrees_of_freedom_prior")


def check_mean_prior(mean_prior, n_features):
    """mean_prior as a float64 (n_features,) copy."""
    return _as_float_array(mean_prior, "mean_prior", (n_features,), "means")


def check_degrees_of_freedom_prior(degrees_of_freedom_prior, n_features):
    """The Wishart prior needs more than n_features - 1 degrees of freedom."""
    if not degrees_of_freedom_prior > n_features - 1.0:
        raise ValueError(
            f"degrees_of_freedom_prior must be greater than n_features - 1 = "
            f"{n_features - 1} for the Wishart prior to exist; raise it or leave it None "
            f"(n_features). The parameter 'degrees_of_freedom_prior' should be greater "
            f"than {n_features - 1}, but got {degrees_of_freedom_prior:.3f}."
        )


def check_covariance_prior(covariance_prior, covariance_type, n_features):
    """covariance_prior as a float64 copy: (D, D) symmetric positive definite for
    'full' and 'tied', (D,) positive for 'diag', a positive number for 'spherical'."""
    if covariance_type == "spherical":
        value = np.asarray(covariance_prior)
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            raise ValueError(
                "spherical covariance_prior must be a single positive number, got "
                f"{covariance_prior!r:.80}."
            )
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            # outside scikit-learn's Interval(Real, 0, None, closed="neither"): its
            # InvalidParameterError, as for the other priors
            raise InvalidParameterError(
                f"spherical covariance_prior must be a finite number > 0, got {value}."
            )
        return value
    if covariance_type == "diag":
        prior = _as_float_array(
            covariance_prior, "covariance_prior", (n_features,), "diag covariance_prior"
        )
        if np.any(prior <= 0):
            raise ValueError(
                "diag covariance_prior must be positive (one variance per feature). "
                "'diag precision' should be positive"
            )
        return prior
    prior = _as_float_array(
        covariance_prior, "covariance_prior", (n_features, n_features),
        f"{covariance_type} covariance_prior",
    )
    symmetric = np.allclose(prior, prior.T)
    if not (symmetric and np.all(np.linalg.eigvalsh(prior) > 0)):
        problem = "positive definite" if symmetric else "symmetric"
        raise ValueError(
            f"{covariance_type} covariance_prior is not {problem}. "
            f"'{covariance_type} precision' should be symmetric, positive-definite"
        )
    return prior


def _as_float_array(value, name, shape, sklearn_name=None):
    """A float64 C-ordered copy of the right shape, finite.

    ``sklearn_name``: the name scikit-learn's own shape message uses ("The
    parameter 'weights' should have the shape of ..."), appended to fastem's
    so that code matching scikit-learn's wording keeps working.
    """
    # A C-ordered copy: the kernels then see one memory layout (a Fortran-ordered
    # means_init used to compile, and cache, a second specialisation of them).
    array = np.array(value, dtype=np.float64, order="C", copy=True)
    if array.shape != shape:
        message = f"{name} must have shape {shape}, got {array.shape}."
        if sklearn_name is not None:
            message += (
                f" The parameter '{sklearn_name}' should have the shape of {shape}, "
                f"but got {array.shape}"
            )
        raise ValueError(message)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return array


def check_weights_init(weights, n_components):
    weights = _as_float_array(weights, "weights_init", (n_components,), "weights")
    smallest, largest = weights.min(), weights.max()
    if smallest < 0 or largest > 1:
        # scikit-learn's wording follows fastem's, its labels as scikit-learn has them
        raise ValueError(
            "weights_init must lie in [0, 1], got min "
            f"{smallest:.5f} and max {largest:.5f}. The parameter 'weights' should be "
            f"in the range [0, 1], but got max value {smallest:.5f}, min value "
            f"{largest:.5f}"
        )
    # np.isclose(total, 1.0, rtol=0, atol=1e-8), in Python floats
    total = weights.sum()
    if not abs(float(total) - 1.0) <= 1e-8:
        raise ValueError(
            f"weights_init must sum to 1 (normalise it), got sum {total:.10g}. The "
            f"parameter 'weights' should be normalized, but got sum(weights) = {total:.5f}"
        )
    return weights


def check_means_init(means, n_components, n_features):
    return _as_float_array(means, "means_init", (n_components, n_features), "means")


def check_precisions_init(precisions, covariance_type, n_components, n_features):
    shapes = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }
    precisions = _as_float_array(
        precisions, "precisions_init", shapes[covariance_type], f"{covariance_type} precision"
    )
    if covariance_type in ("diag", "spherical"):
        if np.any(precisions <= 0):
            raise ValueError(
                f"{covariance_type} precisions_init must be positive. "
                f"'{covariance_type} precision' should be positive"
            )
        return precisions
    stack = precisions if covariance_type == "full" else precisions[np.newaxis]
    # All matrices at once (a few numpy calls, not a few per matrix); the first
    # failing matrix is reported, symmetry before definiteness, as a loop would.
    # Symmetry is np.allclose(matrix, matrix.T) (the entries are finite here);
    # eigvalsh reads one triangle only, as it does for a single matrix.
    transposed = np.swapaxes(stack, 1, 2)
    eigenvalues = np.linalg.eigvalsh(stack)
    exactly_symmetric = bool((stack == transposed).all())
    if exactly_symmetric and eigenvalues.min() > 0:  # the usual case, in few calls
        return precisions
    if exactly_symmetric:  # so also np.allclose-symmetric
        symmetric = np.ones(len(stack), dtype=bool)
    else:
        symmetric = (
            (np.abs(stack - transposed) <= 1e-8 + 1e-5 * np.abs(transposed)).all(axis=(1, 2))
        )
    definite = (eigenvalues > 0).all(axis=1)
    if not (symmetric.all() and definite.all()):
        k = int(np.argmin(symmetric & definite))
        where = f" (component {k})" if covariance_type == "full" else ""
        problem = "symmetric" if not symmetric[k] else "positive definite"
        raise ValueError(
            f"{covariance_type} precisions_init{where} is not {problem}. "
            f"'{covariance_type} precision' should be symmetric, positive-definite"
        )
    return precisions
