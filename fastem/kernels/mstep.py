"""M-step kernels: sufficient statistics -> parameters.

Statistics come from :mod:`fastem.kernels.estep`, accumulated around the
``centres`` (the means the E-step used). With d_k = sum_x[k] / nk[k] the new
means are ``centres + d`` and the centred scatter is
``scatter - nk d d^T``: a correction that stays small because the centres are
the previous means, never the cancelling E[x x^T] - mu mu^T.

Components are flagged, not raised on, through ``status``:
``STATUS_OK``, ``STATUS_EMPTY`` (no mass left: its mean stays where it was)
and ``STATUS_SINGULAR`` (covariance not positive definite after
``reg_covar``). The driver decides what to do with flagged components.
"""

import math

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE
from fastem.kernels.linalg import precision_cholesky_into

STATUS_OK = 0
STATUS_EMPTY = 1
STATUS_SINGULAR = 2

# scikit-learn adds 10 * eps to every component's mass before normalising the
# weights; doing the same keeps log(weights) finite and the weights identical.
WEIGHT_FLOOR = 10.0 * np.finfo(np.float64).eps


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def sum_in_order(values):
    """The sum of the 1-d ``values``, a left fold from zero: the bits of numba's
    ``values.sum()``, which numba compiled as three functions of its own."""
    total = 0.0
    for i in range(values.shape[0]):
        total += values[i]
    return total


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _mixture_weights_into(nk, weights):
    """weights_k = (nk + 10 eps) / sum(nk + 10 eps), as scikit-learn (the sum a left
    fold in component order, as numba's ``sum`` of an array)."""
    total = 0.0
    for k in range(nk.shape[0]):
        total += nk[k] + WEIGHT_FLOOR
    for k in range(nk.shape[0]):
        weights[k] = (nk[k] + WEIGHT_FLOOR) / total


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _component_is_empty(mass, total_mass):
    # A component has lost its mass when what is left is below rounding level
    # of the total: its mean would be a ratio of round-off.
    return not mass > 1e-13 * total_mass


def dense_mstep(nk, sum_x, scatter, centres, reg_covar):
    """Parameters of a 'full' (scatter (K, D, D)) or 'tied' (scatter (1, D, D)) model.

    Returns ``(weights, means, covariances, precisions_chol, status)``, where
    covariances and precisions_chol have the scatter's shape and status has
    one entry per component (for 'tied', a singular shared covariance flags
    every component that is not empty).

    Python: numpy allocates, dense_mstep_into computes (compiled as a numba
    function of its own, this wrapper cost 0.6 s of a cold compile).
    """
    n_components, n_features = sum_x.shape
    n_factors = scatter.shape[0]
    weights = np.empty(n_components)
    means = np.empty((n_components, n_features))
    covariances = np.empty((n_factors, n_features, n_features))
    precisions_chol = np.empty((n_factors, n_features, n_features))
    status = np.empty(n_components, dtype=np.int64)
    empty = np.empty(n_components, dtype=np.bool_)
    dense_mstep_into(nk, sum_x, scatter, centres, reg_covar, weights, means,
                     covariances, precisions_chol, status, empty,
                     np.empty((n_features, n_features)))
    return weights, means, covariances, precisions_chol, status


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def dense_mstep_into(nk, sum_x, scatter, centres, reg_covar, weights, means,
                     covariances, precisions_chol, status, empty, lower):
    """dense_mstep into arrays the caller holds (every entry overwritten; ``empty``
    (K,) bool and ``lower`` (D, D) are scratch): no allocation, for the compiled
    EM loop, where the arrays of an iteration cost as much as its arithmetic."""
    n_components, n_features = sum_x.shape
    n_factors = scatter.shape[0]
    total_mass = sum_in_order(nk)
    _mixture_weights_into(nk, weights)
    for k in range(n_components):
        empty[k] = False
        status[k] = STATUS_OK
        for i in range(n_features):
            means[k, i] = centres[k, i]
    for slot in range(n_factors):
        for i in range(n_features):
            for j in range(n_features):
                covariances[slot, i, j] = 0.0
                precisions_chol[slot, i, j] = 0.0
    for k in range(n_components):
        if _component_is_empty(nk[k], total_mass):
            empty[k] = True
        else:
            for i in range(n_features):
                means[k, i] += sum_x[k, i] / nk[k]
    for k in range(n_components):
        if empty[k]:
            status[k] = STATUS_EMPTY
    if n_factors == n_components:
        for k in range(n_components):
            if empty[k]:
                for i in range(n_features):
                    covariances[k, i, i] = 1.0
                continue
            for i in range(n_features):
                for j in range(n_features):
                    covariances[k, i, j] = (
                        scatter[k, i, j] - sum_x[k, i] * sum_x[k, j] / nk[k]
                    ) / nk[k]
    else:
        mass = 0.0
        for k in range(n_components):
            if empty[k]:
                continue
            mass += nk[k]
            for i in range(n_features):
                for j in range(n_features):
                    covariances[0, i, j] -= sum_x[k, i] * sum_x[k, j] / nk[k]
        for i in range(n_features):
            for j in range(n_features):
                covariances[0, i, j] = (covariances[0, i, j] + scatter[0, i, j]) / mass
    for slot in range(n_factors):
        if n_factors == n_components and status[slot] != STATUS_OK:
            continue
        for i in range(n_features):
            covariances[slot, i, i] += reg_covar
        if not precision_cholesky_into(covariances[slot], lower, precisions_chol[slot]):
            if n_factors == n_components:
                status[slot] = STATUS_SINGULAR
            else:
                for k in range(n_components):
                    if not empty[k]:
                        status[k] = STATUS_SINGULAR
    if n_factors == n_components:
        for k in range(n_components):
            if status[k] == STATUS_EMPTY:
                for i in range(n_features):
                    precisions_chol[k, i, i] = 1.0


def diagonal_mstep(nk, sum_x, scatter, centres, reg_covar, spherical):
    """Parameters of a 'diag' or (``spherical=True``) 'spherical' model.

    Returns ``(weights, means, variances, precisions_chol, status)`` with
    variances and precisions_chol of shape (K, D); for a spherical model every
    feature holds the component's single variance. Python, as dense_mstep.
    """
    n_components, n_features = sum_x.shape
    weights = np.empty(n_components)
    means = np.empty((n_components, n_features))
    variances = np.empty((n_components, n_features))
    precisions_chol = np.empty((n_components, n_features))
    status = np.empty(n_components, dtype=np.int64)
    diagonal_mstep_into(nk, sum_x, scatter, centres, reg_covar, spherical, weights,
                        means, variances, precisions_chol, status)
    return weights, means, variances, precisions_chol, status


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def diagonal_mstep_into(nk, sum_x, scatter, centres, reg_covar, spherical, weights,
                        means, variances, precisions_chol, status):
    """diagonal_mstep into arrays the caller holds (every entry overwritten; see
    dense_mstep_into)."""
    n_components, n_features = sum_x.shape
    total_mass = sum_in_order(nk)
    _mixture_weights_into(nk, weights)
    for k in range(n_components):
        status[k] = STATUS_OK
        for i in range(n_features):
            means[k, i] = centres[k, i]
            variances[k, i] = 1.0
            precisions_chol[k, i] = 1.0
    for k in range(n_components):
        if _component_is_empty(nk[k], total_mass):
            status[k] = STATUS_EMPTY
            continue
        for i in range(n_features):
            shift = sum_x[k, i] / nk[k]
            means[k, i] += shift
            variances[k, i] = (scatter[k, i] - sum_x[k, i] * shift) / nk[k]
        if spherical:  # the mean in numba's order (a left fold, then / D)
            average = sum_in_order(variances[k]) / n_features
            for i in range(n_features):
                variances[k, i] = average
        for i in range(n_features):
            variances[k, i] += reg_covar
            if not variances[k, i] > 0.0 or not math.isfinite(variances[k, i]):
                status[k] = STATUS_SINGULAR
        if status[k] == STATUS_OK:
            for i in range(n_features):
                precisions_chol[k, i] = 1.0 / math.sqrt(variances[k, i])
