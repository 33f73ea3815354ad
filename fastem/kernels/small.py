"""Row-at-a-time E-step kernels for small data: short to compile, exact, float64.

The tiled kernels of fastem.kernels.estep are fast on large data and slow to
compile (tens of seconds per dtype and covariance family, cold). A fit of
the bundled data or of the notebook's four points needs neither their speed
nor their compile time: these kernels take one row at a time, compute every
distance and sum in float64 whatever the data's dtype, and compile in a few
seconds. The compiled EM loop (fastem.kernels.loop) and the driver's inference on
small data use them (see fastem.em.driver.SMALL_WORK_LIMIT).

Conventions as in fastem.kernels.estep: ``precisions_chol`` is (n_factors, D, D)
for 'full'/'tied' (n_factors K or 1) and (K, D) for 'diag'/'spherical';
``log_norm[k] = log(weights[k]) + log_det_chol[k] - D/2 log(2 pi)``;
statistics are accumulated around the means passed in; ``sums`` receives
the weighted log-likelihood, sum w r log r and sum w log max r. A row no
component explains (every log-density -inf) adds nothing to the statistics,
-inf to the log-likelihood (if its weight is positive) and -log K to the
other two sums (uniform responsibilities).
"""

import math

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE, read_only

# No reassociation: the sums over rows are plain left folds in row order.
_FLAGS = dict(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
# The per-row helpers take arrays their callers hold and allocate none: compiled
# without reference counting (_nrt=False), as fastem.kernels.estep's helpers.


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False,
      **_FLAGS)
def _dense_row_log_prob(X, i, means, precisions_chol, log_norm, log_prob):
    """log_prob[k] = log_norm[k] - |(x_i - m_k) P_k|^2 / 2; returns max_k log_prob[k]."""
    n_components, n_features = means.shape
    shared = precisions_chol.shape[0] == 1
    peak = -np.inf
    for k in range(n_components):
        slot = 0 if shared else k
        mahalanobis = 0.0
        for j in range(n_features):
            projected = 0.0
            for m in range(j + 1):  # the factor is upper triangular
                projected += (np.float64(X[i, m]) - means[k, m]) * precisions_chol[slot, m, j]
            mahalanobis += projected * projected
        value = log_norm[k] - 0.5 * mahalanobis
        log_prob[k] = value
        peak = max(peak, value)
    return peak


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False,
      **_FLAGS)
def _diagonal_row_log_prob(X, i, means, precisions_chol, log_norm, log_prob):
    """log_prob[k] = log_norm[k] - sum_j ((x_ij - m_kj) p_kj)^2 / 2; returns the max."""
    n_components, n_features = means.shape
    peak = -np.inf
    for k in range(n_components):
        mahalanobis = 0.0
        for j in range(n_features):
            scaled = (np.float64(X[i, j]) - means[k, j]) * precisions_chol[k, j]
            mahalanobis += scaled * scaled
        value = log_norm[k] - 0.5 * mahalanobis
        log_prob[k] = value
        peak = max(peak, value)
    return peak


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False,
      **_FLAGS)
def _row_responsibilities(log_prob, peak, weight, sums):
    """log_prob -> w r_k in place (zeros for an unexplained row); adds the row's three
    sums (see the module docstring) to ``sums``."""
    n_components = log_prob.shape[0]
    if peak == -np.inf:
        for k in range(n_components):
            log_prob[k] = 0.0
        if weight > 0.0:
            sums[0] += weight * -np.inf
            sums[1] += weight * -math.log(n_components)
            sums[2] += weight * -math.log(n_components)
        return
    total = 0.0
    entropy = 0.0
    for k in range(n_components):
        shifted = log_prob[k] - peak
        value = math.exp(shifted)
        log_prob[k] = value
        total += value
        if value > 0.0:
            entropy += value * shifted
    log_total = math.log(total)
    if weight > 0.0:
        sums[0] += weight * (peak + log_total)
        sums[1] += weight * (entropy / total - log_total)
        sums[2] += weight * -log_total
    scale = weight / total
    for k in range(n_components):
        log_prob[k] *= scale


def dense_statistics_rows(X, sample_weight, means, precisions_chol, log_norm):
    """``(nk, sum_x, scatter, sums)`` of X for 'full'/'tied' (scatter (n_factors, D,
    D)). Python: numpy allocates, _dense_statistics_of_rows computes (numba compiles
    its np.empty once per array type: three times for the first small
    BayesianGaussianMixture fits, which use these statistics).
    """
    n_features = X.shape[1]
    n_components = means.shape[0]
    n_factors = precisions_chol.shape[0]
    nk = np.empty(n_components)
    sum_x = np.empty((n_components, n_features))
    scatter = np.empty((n_factors, n_features, n_features))
    sums = np.empty(3)
    _dense_statistics_of_rows(read_only(X), read_only(sample_weight), means,
                              precisions_chol, log_norm, nk, sum_x, scatter, sums,
                              np.empty(n_components), np.empty(n_features))
    return nk, sum_x, scatter, sums


# dense_statistics_rows_into with a Python wrapper, for dense_statistics_rows; the
# compiled EM loop (fastem.kernels.loop) inlines dense_statistics_rows_into itself,
# which has none (a GaussianMixture fit does not compile this one).
@njit(**_FLAGS)
def _dense_statistics_of_rows(X, sample_weight, means, precisions_chol, log_norm, nk,
                              sum_x, scatter, sums, log_prob, diff):
    dense_statistics_rows_into(X, sample_weight, means, precisions_chol, log_norm, nk,
                               sum_x, scatter, sums, log_prob, diff)


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False,
      **_FLAGS)
def dense_statistics_rows_into(X, sample_weight, means, precisions_chol, log_norm, nk,
                               sum_x, scatter, sums, log_prob, diff):
    """dense_statistics_rows into arrays the caller holds (overwritten; ``log_prob``
    (K,) and ``diff`` (D,) are scratch): no allocation, for the compiled EM loop."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    n_factors = precisions_chol.shape[0]
    shared = n_factors == 1
    sums[0] = sums[1] = sums[2] = 0.0
    for k in range(n_components):
        nk[k] = 0.0
        for j in range(n_features):
            sum_x[k, j] = 0.0
    for slot in range(n_factors):
        for j in range(n_features):
            for m in range(n_features):
                scatter[slot, j, m] = 0.0
    for i in range(n_samples):
        peak = _dense_row_log_prob(X, i, means, precisions_chol, log_norm, log_prob)
        _row_responsibilities(log_prob, peak, sample_weight[i], sums)
        for k in range(n_components):
            weighted = log_prob[k]
            if weighted == 0.0:
                continue
            nk[k] += weighted
            slot = 0 if shared else k
            for j in range(n_features):
                diff[j] = np.float64(X[i, j]) - means[k, j]
                sum_x[k, j] += weighted * diff[j]
            for j in range(n_features):
                weighted_diff = weighted * diff[j]
                for m in range(j, n_features):
                    scatter[slot, j, m] += weighted_diff * diff[m]
    for slot in range(n_factors):
        for j in range(n_features):
            for m in range(j):
                scatter[slot, j, m] = scatter[slot, m, j]


def diagonal_statistics_rows(X, sample_weight, means, precisions_chol, log_norm):
    """``(nk, sum_x, scatter, sums)`` of X for 'diag'/'spherical' (scatter (K, D));
    Python, as dense_statistics_rows."""
    n_features = X.shape[1]
    n_components = means.shape[0]
    nk = np.empty(n_components)
    sum_x = np.empty((n_components, n_features))
    scatter = np.empty((n_components, n_features))
    sums = np.empty(3)
    _diagonal_statistics_of_rows(read_only(X), read_only(sample_weight), means,
                                 precisions_chol, log_norm, nk, sum_x, scatter, sums,
                                 np.empty(n_components))
    return nk, sum_x, scatter, sums


@njit(**_FLAGS)  # as _dense_statistics_of_rows
def _diagonal_statistics_of_rows(X, sample_weight, means, precisions_chol, log_norm,
                                 nk, sum_x, scatter, sums, log_prob):
    diagonal_statistics_rows_into(X, sample_weight, means, precisions_chol, log_norm,
                                  nk, sum_x, scatter, sums, log_prob)


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False,
      **_FLAGS)
def diagonal_statistics_rows_into(X, sample_weight, means, precisions_chol, log_norm,
                                  nk, sum_x, scatter, sums, log_prob):
    """diagonal_statistics_rows into arrays the caller holds (see
    dense_statistics_rows_into)."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    sums[0] = sums[1] = sums[2] = 0.0
    for k in range(n_components):
        nk[k] = 0.0
        for j in range(n_features):
            sum_x[k, j] = 0.0
            scatter[k, j] = 0.0
    for i in range(n_samples):
        peak = _diagonal_row_log_prob(X, i, means, precisions_chol, log_norm, log_prob)
        _row_responsibilities(log_prob, peak, sample_weight[i], sums)
        for k in range(n_components):
            weighted = log_prob[k]
            if weighted == 0.0:
                continue
            nk[k] += weighted
            for j in range(n_features):
                deviation = np.float64(X[i, j]) - means[k, j]
                weighted_deviation = weighted * deviation
                sum_x[k, j] += weighted_deviation
                scatter[k, j] += weighted_deviation * deviation


def dense_weighted_log_prob_rows(X, means, precisions_chol, log_norm):
    """(n_samples, K) log weights_k + log N(x_i | m_k, Sigma_k), 'full'/'tied'.

    Python: numpy allocates (numba's np.empty is compiled per array type), the
    ``_into`` kernel computes.
    """
    out = np.empty((X.shape[0], means.shape[0]))
    dense_weighted_log_prob_rows_into(read_only(X), means, precisions_chol, log_norm,
                                      out)
    return out


@njit(**_FLAGS)
def dense_weighted_log_prob_rows_into(X, means, precisions_chol, log_norm, out):
    for i in range(X.shape[0]):
        _dense_row_log_prob(X, i, means, precisions_chol, log_norm, out[i])


def diagonal_weighted_log_prob_rows(X, means, precisions_chol, log_norm):
    """(n_samples, K) log weights_k + log N(x_i | m_k, Sigma_k), 'diag'/'spherical'
    (see dense_weighted_log_prob_rows)."""
    out = np.empty((X.shape[0], means.shape[0]))
    diagonal_weighted_log_prob_rows_into(read_only(X), means, precisions_chol,
                                         log_norm, out)
    return out


@njit(**_FLAGS)
def diagonal_weighted_log_prob_rows_into(X, means, precisions_chol, log_norm, out):
    for i in range(X.shape[0]):
        _diagonal_row_log_prob(X, i, means, precisions_chol, log_norm, out[i])
