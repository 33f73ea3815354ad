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

dense_em and diagonal_em return ``(weights, means, covariances, precisions_chol,
status, lower_bounds, converged)`` where ``lower_bounds`` holds the mean
log-likelihood of every iteration run (its last entry may be non-finite). They are
Python: numpy allocates every array, and the compiled ``_into`` functions iterate in
them, so that no numpy allocation function is compiled for them.
"""

import math

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE, read_only
from fastem.kernels.mstep import (
    STATUS_OK,
    dense_mstep_into,
    diagonal_mstep_into,
    sum_in_order,
)
from fastem.kernels.small import (
    dense_statistics_rows_into,
    diagonal_statistics_rows_into,
)

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _log_norm(weights, log_det, n_features, out):
    for k in range(weights.shape[0]):
        out[k] = math.log(weights[k]) + log_det[k] - n_features * HALF_LOG_2PI


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


def _iteration_arrays(X, weights, means, precisions_chol, max_iter, n_scratch):
    """What dense_em_into / diagonal_em_into work in, allocated by numpy (numba's
    np.empty, np.full and zeros_like were compiled once per array type, 0.3-0.5 s
    of a first fit's compile): copies of the parameters (overwritten by each M-step;
    the caller's arrays are never written), the status, one lower bound per iteration,
    one entry in X's dtype (``rounded``) and ``n_scratch`` float64 entries of scratch,
    which the compiled loop cuts into the arrays its iterations reuse (_cut_scratch).
    One scratch array, not ten: each array allocated and passed cost about 0.25 us
    (P4's whole fit, 50 iterations on 4 rows, takes about 130 us); an allocation in
    each iteration cost as much as its arithmetic (43 us more on P4)."""
    status = np.empty(means.shape[0], dtype=np.int64)
    status.fill(STATUS_OK)
    return (weights.astype(np.float64, order="C"), means.astype(np.float64, order="C"),
            precisions_chol.astype(np.float64, order="C"), status, np.empty(max_iter),
            np.empty(1, dtype=X.dtype), np.empty(n_scratch))


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _cut_scratch(scratch, n_components, n_features):
    """(log_det, log_norm, nk, log_prob (K,), sums (3,), centres, sum_x (K, D), the
    rest): views of the front of ``scratch`` and what is left after them."""
    vectors = scratch[: 4 * n_components + 3]
    n_means = n_components * n_features
    centres = scratch[vectors.shape[0]: vectors.shape[0] + n_means]
    sum_x = scratch[vectors.shape[0] + n_means: vectors.shape[0] + 2 * n_means]
    return (vectors[:n_components], vectors[n_components: 2 * n_components],
            vectors[2 * n_components: 3 * n_components],
            vectors[3 * n_components: 4 * n_components], vectors[4 * n_components:],
            centres.reshape((n_components, n_features)),
            sum_x.reshape((n_components, n_features)),
            scratch[vectors.shape[0] + 2 * n_means:])


def _front_size(n_components, n_features):
    """Entries of scratch that _cut_scratch cuts."""
    return 4 * n_components + 3 + 2 * n_components * n_features


def _compiled_em(em_into, X, sample_weight, weights, means, precisions_chol, reg_covar,
                 max_iter, tol, lower_bound, covariances, n_scratch, last):
    """dense_em / diagonal_em: numpy allocates (_iteration_arrays), ``em_into``
    iterates; ``covariances`` (zeros or ones, the shape of precisions_chol) and
    ``last`` (em_into's last argument) are the callers'."""
    weights, means, precisions_chol, status, lower_bounds, rounded, scratch = (
        _iteration_arrays(X, weights, means, precisions_chol, max_iter, n_scratch))
    n_iter, converged = em_into(read_only(X), read_only(sample_weight), reg_covar,
                                tol, lower_bound,
                                weights, means, covariances, precisions_chol, status,
                                lower_bounds, rounded, scratch, last)
    return (weights, means, covariances, precisions_chol, status, lower_bounds[:n_iter],
            converged)


def dense_em(X, sample_weight, weights, means, precisions_chol, reg_covar, max_iter,
             tol, lower_bound):
    """Up to ``max_iter`` EM iterations of a 'full' (K factors) or 'tied' (1 factor)
    model. Python: numpy allocates, dense_em_into iterates.
    """
    n_components, n_features = means.shape
    n_factors = precisions_chol.shape[0]
    n_scratch = (_front_size(n_components, n_features) + n_features
                 + (1 + n_factors) * n_features * n_features)
    return _compiled_em(dense_em_into, X, sample_weight, weights, means,
                        precisions_chol, reg_covar, max_iter, tol, lower_bound,
                        np.zeros(precisions_chol.shape), n_scratch,
                        np.empty(n_components, dtype=np.bool_))


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def dense_em_into(X, sample_weight, reg_covar, tol, lower_bound, weights, means,
                  covariances, precisions_chol, status, lower_bounds, rounded, scratch,
                  empty):
    """dense_em's iterations in arrays the caller holds: the parameters (updated in
    place), ``status`` and ``lower_bounds`` (one entry per iteration allowed); the
    rest scratch (``empty`` (K,) bool; see _iteration_arrays). Returns ``(n_iter,
    converged)``."""
    n_components, n_features = means.shape
    n_factors = precisions_chol.shape[0]
    (log_det, log_norm, nk, log_prob, sums, centres, sum_x,
     rest) = _cut_scratch(scratch, n_components, n_features)
    diff = rest[:n_features]
    lower = rest[n_features: n_features + n_features * n_features].reshape(
        (n_features, n_features))
    scatter = rest[n_features + n_features * n_features:].reshape(
        (n_factors, n_features, n_features))
    total_weight = sum_in_order(sample_weight)
    max_iter = lower_bounds.shape[0]
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
    return n_iter, converged


def diagonal_em(X, sample_weight, weights, means, precisions_chol, reg_covar, max_iter,
                tol, lower_bound, spherical):
    """Up to ``max_iter`` EM iterations of a 'diag' or 'spherical' model (precisions
    (K, D)). Python: numpy allocates, diagonal_em_into iterates.
    """
    n_components, n_features = means.shape
    n_scratch = _front_size(n_components, n_features) + n_components * n_features
    return _compiled_em(diagonal_em_into, X, sample_weight, weights, means,
                        precisions_chol, reg_covar, max_iter, tol, lower_bound,
                        np.ones(precisions_chol.shape), n_scratch, bool(spherical))


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def diagonal_em_into(X, sample_weight, reg_covar, tol, lower_bound, weights, means,
                     variances, precisions_chol, status, lower_bounds, rounded, scratch,
                     spherical):
    """diagonal_em's iterations in arrays the caller holds (see dense_em_into).
    Returns ``(n_iter, converged)``."""
    n_components, n_features = means.shape
    (log_det, log_norm, nk, log_prob, sums, centres, sum_x,
     rest) = _cut_scratch(scratch, n_components, n_features)
    scatter = rest.reshape((n_components, n_features))
    total_weight = sum_in_order(sample_weight)
    max_iter = lower_bounds.shape[0]
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
    return n_iter, converged
