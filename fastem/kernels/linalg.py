"""Small dense linear algebra for the M-step, compiled with numba.

The M-step needs, per component, the Cholesky factor of a (D, D) covariance and
the inverse of that factor. These are tiny matrices, so a plain loop is as fast
as a LAPACK call and, unlike one, reports failure as data (a flag) instead of
raising, and can run inside other compiled functions.
"""

import math

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def cholesky_lower(matrix, out):
    """Write the lower Cholesky factor of ``matrix`` into ``out``.

    Returns True on success and False when ``matrix`` is not (numerically)
    positive definite, in which case ``out`` holds garbage.
    """
    n_features = matrix.shape[0]
    for j in range(n_features):
        diagonal = matrix[j, j]
        for p in range(j):
            diagonal -= out[j, p] * out[j, p]
        if not diagonal > 0.0:  # also catches NaN
            return False
        root = math.sqrt(diagonal)
        out[j, j] = root
        for i in range(j + 1, n_features):
            value = matrix[i, j]
            for p in range(j):
                value -= out[i, p] * out[j, p]
            out[i, j] = value / root
        for i in range(j):
            out[i, j] = 0.0
    return True


def precision_cholesky_from_covariance(covariance, out):
    """Upper-triangular P with P P^T = inv(covariance), as scikit-learn's.

    P = inv(L)^T where L is the lower Cholesky factor of ``covariance``.
    Returns False (leaving ``out`` undefined) when the covariance is not
    positive definite. Python (see precision_cholesky_into).
    """
    n_features = covariance.shape[0]
    return precision_cholesky_into(covariance, np.empty((n_features, n_features)), out)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def precision_cholesky_into(covariance, lower, out):
    """precision_cholesky_from_covariance with the (D, D) scratch array ``lower`` (the
    lower Cholesky factor) given: no allocation, for the compiled EM loop."""
    n_features = covariance.shape[0]
    if not cholesky_lower(covariance, lower):
        return False
    # Solve L Z = I column by column (forward substitution); out = Z^T.
    for col in range(n_features):
        for i in range(n_features):
            value = 1.0 if i == col else 0.0
            for p in range(col, i):
                value -= lower[i, p] * out[col, p]
            out[col, i] = value / lower[i, i] if i >= col else 0.0
    # A loop, not np.all(np.isfinite(out)): numba compiles each numpy function
    # and array expression it meets as code of its own (with the loop of
    # kernels/loop.py's _all_ok, a first fit's compile went from 11.0 to 10.0 s).
    for i in range(n_features):
        for j in range(n_features):
            if not math.isfinite(out[i, j]):
                return False
    return True
