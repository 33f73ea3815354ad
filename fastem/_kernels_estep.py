"""Fused E-step kernels: data + parameters -> sufficient statistics.

Two families cover the four covariance types:

* ``dense``: 'full' (one (D, D) precision Cholesky factor per component) and
  'tied' (a single factor shared by all components). The precision factor is
  passed with shape (n_factors, D, D), n_factors being K or 1; the scatter
  output likewise has K or 1 slots.
* ``diagonal``: 'diag' and 'spherical' (the driver expands the spherical
  precisions to (K, D)). The scatter is the per-feature diagonal (K, D).

Conventions shared by every kernel here:

* ``X`` is C-contiguous float32 or float64; ``means`` and ``precisions_chol``
  have the dtype of ``X`` (distances are computed in the data's precision),
  everything accumulated is float64.
* ``log_norm[k] = log(weights[k]) + log_det_chol[k] - D/2 log(2 pi)`` is
  precomputed by the driver in float64.
* Samples are split into blocks of ``block_size`` rows. Each block writes its
  own partial statistics; blocks are reduced in order afterwards, so the
  result does not depend on the number of threads.
* Inside a block, samples are processed in tiles of ``TILE`` points stored
  transposed (feature-major), so that the inner loops run over points and
  vectorise.
* Statistics are accumulated around the means passed in (the current ones):
  ``sum_x[k] = sum w r (x - m_k)``, ``scatter[k] = sum w r (x - m_k)(x - m_k)^T``.
* Kernels never raise: a sample whose log-density is -inf under every
  component contributes nothing to the statistics and -inf to the
  log-likelihood, which the driver reads.
"""

import math

import numpy as np
from numba import njit, prange

# Points per tile. 128 float64 values of one feature fill two kilobytes, so a
# tile of a 32-feature problem stays in the L1/L2 caches.
TILE = 128

# Reassociation lets LLVM vectorise the float64 reductions over a tile; no
# nnan/ninf: log-densities legitimately reach -inf.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, fastmath=FASTMATH)
def _load_tile(X, start, n_points, X_tile):
    n_features = X.shape[1]
    for t in range(n_points):
        for i in range(n_features):
            X_tile[i, t] = X[start + t, i]


@njit(cache=True, fastmath=FASTMATH)
def _centre_tile(X_tile, n_points, mean, diff):
    for i in range(X_tile.shape[0]):
        centre = mean[i]
        for t in range(n_points):
            diff[i, t] = X_tile[i, t] - centre


@njit(cache=True, fastmath=FASTMATH)
def _dense_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                         diff, projection, log_prob):
    """log_prob[k, t] = log_norm[k] - |(x_t - m_k) P_k|^2 / 2 for one tile."""
    n_features = X_tile.shape[0]
    n_components = means.shape[0]
    shared = precisions_chol.shape[0] == 1
    for k in range(n_components):
        factor = precisions_chol[0] if shared else precisions_chol[k]
        _centre_tile(X_tile, n_points, means[k], diff)
        mahalanobis = log_prob[k]
        for t in range(n_points):
            mahalanobis[t] = 0.0
        for j in range(n_features):
            for t in range(n_points):
                projection[t] = 0.0
            for i in range(j + 1):
                entry = factor[i, j]
                for t in range(n_points):
                    projection[t] += diff[i, t] * entry
            for t in range(n_points):
                mahalanobis[t] += projection[t] * projection[t]
        offset = log_norm[k]
        for t in range(n_points):
            mahalanobis[t] = offset - 0.5 * mahalanobis[t]


@njit(cache=True, fastmath=FASTMATH)
def _diagonal_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                            diff, log_prob):
    """Diagonal precision factor: log_prob = log_norm - sum_i ((x_i - m_i) p_i)^2 / 2."""
    n_features = X_tile.shape[0]
    n_components = means.shape[0]
    for k in range(n_components):
        mahalanobis = log_prob[k]
        for t in range(n_points):
            mahalanobis[t] = 0.0
        for i in range(n_features):
            centre = means[k, i]
            entry = precisions_chol[k, i]
            for t in range(n_points):
                scaled = (X_tile[i, t] - centre) * entry
                mahalanobis[t] += scaled * scaled
        offset = log_norm[k]
        for t in range(n_points):
            mahalanobis[t] = offset - 0.5 * mahalanobis[t]


@njit(cache=True, fastmath=FASTMATH)
def _tile_responsibilities(log_prob, n_points, log_prob_norm):
    """Turn weighted log-probabilities into responsibilities, in place.

    ``log_prob_norm[t]`` receives log sum_k exp(log_prob[k, t]). A point with
    every entry -inf gets zero responsibilities and -inf.
    """
    n_components = log_prob.shape[0]
    for t in range(n_points):
        log_prob_norm[t] = -np.inf
    for k in range(n_components):
        for t in range(n_points):
            log_prob_norm[t] = max(log_prob_norm[t], log_prob[k, t])
    # log_prob_norm holds the maxima; reuse it after computing the sums.
    totals = np.zeros(n_points)
    for k in range(n_components):
        for t in range(n_points):
            peak = log_prob_norm[t]
            if peak == -np.inf:
                log_prob[k, t] = 0.0
            else:
                log_prob[k, t] = math.exp(log_prob[k, t] - peak)
            totals[t] += log_prob[k, t]
    for t in range(n_points):
        scale = 1.0 / totals[t] if totals[t] > 0.0 else 0.0
        for k in range(n_components):
            log_prob[k, t] *= scale
        if totals[t] > 0.0:
            log_prob_norm[t] += math.log(totals[t])


@njit(cache=True, fastmath=FASTMATH)
def _n_blocks(n_samples, block_size):
    return (n_samples + block_size - 1) // block_size


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def dense_statistics(X, sample_weight, means, precisions_chol, log_norm, block_size):
    """Fused E-step and sufficient statistics for 'full' and 'tied'.

    Returns ``(nk, sum_x, scatter, log_likelihood)``: nk (K,), sum_x (K, D),
    scatter (n_factors, D, D) (for 'tied' the sum over components) and the
    weighted total log-likelihood sum_i w_i log p(x_i) under the parameters
    passed in.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    n_factors = precisions_chol.shape[0]
    shared = n_factors == 1
    n_blocks = _n_blocks(n_samples, block_size)
    nk_parts = np.zeros((n_blocks, n_components))
    sum_x_parts = np.zeros((n_blocks, n_components, n_features))
    scatter_parts = np.zeros((n_blocks, n_factors, n_features, n_features))
    log_likelihood_parts = np.zeros(n_blocks)
    for block in prange(n_blocks):
        X_tile = np.empty((n_features, TILE), dtype=X.dtype)
        diff = np.empty((n_features, TILE), dtype=X.dtype)
        projection = np.empty(TILE, dtype=X.dtype)
        resp = np.empty((n_components, TILE))
        log_prob_norm = np.empty(TILE)
        weighted_resp = np.empty(TILE)
        weighted_diff = np.empty((n_features, TILE))
        block_end = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, block_end, TILE):
            n_points = min(TILE, block_end - start)
            _load_tile(X, start, n_points, X_tile)
            _dense_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                                 diff, projection, resp)
            _tile_responsibilities(resp, n_points, log_prob_norm)
            for t in range(n_points):
                if sample_weight[start + t] > 0.0:
                    log_likelihood_parts[block] += sample_weight[start + t] * log_prob_norm[t]
            for k in range(n_components):
                total = 0.0
                for t in range(n_points):
                    weighted_resp[t] = sample_weight[start + t] * resp[k, t]
                    total += weighted_resp[t]
                nk_parts[block, k] += total
                if total == 0.0:
                    continue
                _centre_tile(X_tile, n_points, means[k], diff)
                slot = 0 if shared else k
                for i in range(n_features):
                    first = 0.0
                    for t in range(n_points):
                        weighted_diff[i, t] = weighted_resp[t] * diff[i, t]
                        first += weighted_diff[i, t]
                    sum_x_parts[block, k, i] += first
                for i in range(n_features):
                    for j in range(i, n_features):
                        second = 0.0
                        for t in range(n_points):
                            second += weighted_diff[i, t] * diff[j, t]
                        scatter_parts[block, slot, i, j] += second
    nk = np.zeros(n_components)
    sum_x = np.zeros((n_components, n_features))
    scatter = np.zeros((n_factors, n_features, n_features))
    log_likelihood = 0.0
    for block in range(n_blocks):
        nk += nk_parts[block]
        sum_x += sum_x_parts[block]
        scatter += scatter_parts[block]
        log_likelihood += log_likelihood_parts[block]
    for slot in range(n_factors):
        for i in range(n_features):
            for j in range(i):
                scatter[slot, i, j] = scatter[slot, j, i]
    return nk, sum_x, scatter, log_likelihood


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def diagonal_statistics(X, sample_weight, means, precisions_chol, log_norm, block_size):
    """Fused E-step and sufficient statistics for 'diag' and 'spherical'.

    Returns ``(nk, sum_x, scatter, log_likelihood)`` with scatter (K, D) the
    per-feature diagonal of the weighted scatter.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    n_blocks = _n_blocks(n_samples, block_size)
    nk_parts = np.zeros((n_blocks, n_components))
    sum_x_parts = np.zeros((n_blocks, n_components, n_features))
    scatter_parts = np.zeros((n_blocks, n_components, n_features))
    log_likelihood_parts = np.zeros(n_blocks)
    for block in prange(n_blocks):
        X_tile = np.empty((n_features, TILE), dtype=X.dtype)
        diff = np.empty((n_features, TILE), dtype=X.dtype)
        resp = np.empty((n_components, TILE))
        log_prob_norm = np.empty(TILE)
        weighted_resp = np.empty(TILE)
        block_end = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, block_end, TILE):
            n_points = min(TILE, block_end - start)
            _load_tile(X, start, n_points, X_tile)
            _diagonal_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                                    diff, resp)
            _tile_responsibilities(resp, n_points, log_prob_norm)
            for t in range(n_points):
                if sample_weight[start + t] > 0.0:
                    log_likelihood_parts[block] += sample_weight[start + t] * log_prob_norm[t]
            for k in range(n_components):
                total = 0.0
                for t in range(n_points):
                    weighted_resp[t] = sample_weight[start + t] * resp[k, t]
                    total += weighted_resp[t]
                nk_parts[block, k] += total
                if total == 0.0:
                    continue
                _centre_tile(X_tile, n_points, means[k], diff)
                for i in range(n_features):
                    first = 0.0
                    second = 0.0
                    for t in range(n_points):
                        weighted = weighted_resp[t] * diff[i, t]
                        first += weighted
                        second += weighted * diff[i, t]
                    sum_x_parts[block, k, i] += first
                    scatter_parts[block, k, i] += second
    nk = np.zeros(n_components)
    sum_x = np.zeros((n_components, n_features))
    scatter = np.zeros((n_components, n_features))
    log_likelihood = 0.0
    for block in range(n_blocks):
        nk += nk_parts[block]
        sum_x += sum_x_parts[block]
        scatter += scatter_parts[block]
        log_likelihood += log_likelihood_parts[block]
    return nk, sum_x, scatter, log_likelihood


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def dense_weighted_log_prob(X, means, precisions_chol, log_norm, block_size):
    """(n_samples, K) array of log weights_k + log N(x_i | m_k, Sigma_k), 'full'/'tied'."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    out = np.empty((n_samples, n_components))
    for block in prange(_n_blocks(n_samples, block_size)):
        X_tile = np.empty((n_features, TILE), dtype=X.dtype)
        diff = np.empty((n_features, TILE), dtype=X.dtype)
        projection = np.empty(TILE, dtype=X.dtype)
        log_prob = np.empty((n_components, TILE))
        block_end = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, block_end, TILE):
            n_points = min(TILE, block_end - start)
            _load_tile(X, start, n_points, X_tile)
            _dense_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                                 diff, projection, log_prob)
            for t in range(n_points):
                for k in range(n_components):
                    out[start + t, k] = log_prob[k, t]
    return out


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def diagonal_weighted_log_prob(X, means, precisions_chol, log_norm, block_size):
    """(n_samples, K) array of log weights_k + log N(x_i | m_k, Sigma_k), 'diag'/'spherical'."""
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    out = np.empty((n_samples, n_components))
    for block in prange(_n_blocks(n_samples, block_size)):
        X_tile = np.empty((n_features, TILE), dtype=X.dtype)
        diff = np.empty((n_features, TILE), dtype=X.dtype)
        log_prob = np.empty((n_components, TILE))
        block_end = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, block_end, TILE):
            n_points = min(TILE, block_end - start)
            _load_tile(X, start, n_points, X_tile)
            _diagonal_tile_log_prob(X_tile, n_points, means, precisions_chol, log_norm,
                                    diff, log_prob)
            for t in range(n_points):
                for k in range(n_components):
                    out[start + t, k] = log_prob[k, t]
    return out


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def log_resp_from_weighted(weighted_log_prob, block_size):
    """Log-sum-exp normalisation: returns ``(log_prob_norm, log_resp)``.

    A row whose entries are all -inf gets log_prob_norm -inf and a uniform
    log_resp, so that responsibilities are always finite and sum to one.
    """
    n_samples, n_components = weighted_log_prob.shape
    log_prob_norm = np.empty(n_samples)
    log_resp = np.empty((n_samples, n_components))
    uniform = -math.log(n_components)
    for block in prange(_n_blocks(n_samples, block_size)):
        block_end = min(n_samples, (block + 1) * block_size)
        for i in range(block * block_size, block_end):
            row = weighted_log_prob[i]
            peak = -np.inf
            for k in range(n_components):
                peak = max(peak, row[k])
            if peak == -np.inf:
                log_prob_norm[i] = -np.inf
                for k in range(n_components):
                    log_resp[i, k] = uniform
                continue
            total = 0.0
            for k in range(n_components):
                total += math.exp(row[k] - peak)
            norm = peak + math.log(total)
            log_prob_norm[i] = norm
            for k in range(n_components):
                log_resp[i, k] = row[k] - norm
    return log_prob_norm, log_resp
