"""Whole EM iterations in one compiled, serial call, for small data.

For small data, returning to Python every iteration costs more than the
arithmetic. These functions run the iterations back to back on the calling
thread, with the row-at-a-time E-step of fastem.kernels.small (quick to compile:
a first fit of small data does not wait for the tiled kernels) and the
M-step of the block path, until the convergence test passes, ``max_iter``
is reached, or something needs the driver:

* a non-finite log-likelihood (the driver abandons the restart), or
* a component flagged by the M-step (the driver repairs it, then calls
  again for the remaining iterations).

Each returns ``(weights, means, covariances, precisions_chol, status,
lower_bounds, converged)`` where ``lower_bounds`` holds the mean
log-likelihood of every iteration run (its last entry may be non-finite).
"""

import math

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE
from fastem.kernels.small import (
    dense_statistics_rows_into,
    diagonal_statistics_rows_into,
)
from fastem.kernels.mstep import STATUS_OK, dense_mstep_into, diagonal_mstep_into

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _log_norm(weights, log_det, n_features, out):
    for k in range(weights.shape[0]):
        out[k] = math.log(weights[k]) + log_det[k] - n_features * HALF_LOG_2PI


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _iteration_arrays(X, n_components, n_features):
    """The arrays both loops reuse from one iteration to the next: (log_det,
    log_norm, rounded (one entry in X's dtype), centres, nk, sum_x, sums,
    log_prob)."""
    return (np.empty(n_components), np.empty(n_components), np.empty(1, dtype=X.dtype),
            np.empty((n_components, n_features)), np.empty(n_components),
            np.empty((n_components, n_features)), np.empty(3), np.empty(n_components))


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _all_ok(status):
    """True if every component's M-step status is STATUS_OK (a loop: numba compiles
    ``np.any(status != STATUS_OK)`` as two functions of its own, slower to compile)."""
    for k in range(status.shape[0]):
        if status[k] != STATUS_OK:
            return False
    return True


# The E-step (fastem.kernels.small) is inlined by LLVM (forceinline): no call is left
# to resolve at run time. The M-step and _log_norm are ordinary calls; like every
# kernel called from here they state fastmath=False, so they are compiled once,
# without reassociation, whoever calls them first (see FASTMATH in
# fastem.kernels.estep), and every copy of them rounds the same.
@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _rounded_centres(means, rounded, centres):
    """centres = the means rounded to X's dtype (``rounded``: one entry of it), as
    the block path works around them; no allocation."""
    for k in range(means.shape[0]):
        for i in range(means.shape[1]):
            rounded[0] = means[k, i]
            centres[k, i] = rounded[0]


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def dense_em(X, sample_weight, weights, means, precisions_chol, reg_covar, max_iter, tol,
             lower_bound):
    """Up to ``max_iter`` EM iterations of a 'full' (K factors) or 'tied' (1 factor) model."""
    n_components, n_features = means.shape
    n_factors = precisions_chol.shape[0]
    total_weight = sample_weight.sum()
    lower_bounds = np.empty(max_iter)
    # The iterations' arrays, allocated once: an allocation costs about as much as
    # the arithmetic of an iteration on a few rows (P4's 50 iterations, 4 rows:
    # 43 us with the arrays allocated in each iteration). The parameters are
    # copies, overwritten by each M-step (the caller's arrays are never written).
    weights = weights.copy()
    means = means.copy()
    precisions_chol = precisions_chol.copy()
    covariances = np.zeros_like(precisions_chol)
    status = np.full(n_components, STATUS_OK, dtype=np.int64)
    empty = np.empty(n_components, dtype=np.bool_)
    lower = np.empty((n_features, n_features))
    (log_det, log_norm, rounded, centres, nk, sum_x, sums,
     log_prob) = _iteration_arrays(X, n_components, n_features)
    scatter = np.empty((n_factors, n_features, n_features))
    diff = np.empty(n_features)
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        for k in range(n_components):
            slot = k if n_factors == n_components else 0
            log_det[k] = 0.0
            for i in range(n_features):
                log_det[k] += math.log(precisions_chol[slot, i, i])
        _log_norm(weights, log_det, n_features, log_norm)
        _rounded_centres(means, rounded, centres)
        dense_statistics_rows_into(X, sample_weight, centres, precisions_chol, log_norm,
                                   nk, sum_x, scatter, sums, log_prob, diff)
        log_likelihood = sums[0]
        previous = lower_bound
        lower_bound = log_likelihood / total_weight
        lower_bounds[n_iter] = lower_bound
        n_iter += 1
        if not math.isfinite(lower_bound):
            break
        dense_mstep_into(nk, sum_x, scatter, centres, reg_covar, weights, means,
                         covariances, precisions_chol, status, empty, lower)
        converged = abs(lower_bound - previous) < tol
        if converged or not _all_ok(status):
            break
    return weights, means, covariances, precisions_chol, status, lower_bounds[:n_iter], converged


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")  # see dense_em
def diagonal_em(X, sample_weight, weights, means, precisions_chol, reg_covar, max_iter, tol,
                lower_bound, spherical):
    """Up to ``max_iter`` EM iterations of a 'diag' or 'spherical' model (precisions (K, D))."""
    n_components, n_features = means.shape
    total_weight = sample_weight.sum()
    lower_bounds = np.empty(max_iter)
    weights = weights.copy()  # the arrays allocated once, as in dense_em
    means = means.copy()
    precisions_chol = precisions_chol.copy()
    variances = np.ones_like(precisions_chol)
    status = np.full(n_components, STATUS_OK, dtype=np.int64)
    (log_det, log_norm, rounded, centres, nk, sum_x, sums,
     log_prob) = _iteration_arrays(X, n_components, n_features)
    scatter = np.empty((n_components, n_features))
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        for k in range(n_components):
            log_det[k] = 0.0
            for i in range(n_features):
                log_det[k] += math.log(precisions_chol[k, i])
        _log_norm(weights, log_det, n_features, log_norm)
        _rounded_centres(means, rounded, centres)
        diagonal_statistics_rows_into(X, sample_weight, centres, precisions_chol,
                                      log_norm, nk, sum_x, scatter, sums, log_prob)
        log_likelihood = sums[0]
        previous = lower_bound
        lower_bound = log_likelihood / total_weight
        lower_bounds[n_iter] = lower_bound
        n_iter += 1
        if not math.isfinite(lower_bound):
            break
        diagonal_mstep_into(nk, sum_x, scatter, centres, reg_covar, spherical, weights,
                            means, variances, precisions_chol, status)
        converged = abs(lower_bound - previous) < tol
        if converged or not _all_ok(status):
            break
    return weights, means, variances, precisions_chol, status, lower_bounds[:n_iter], converged
