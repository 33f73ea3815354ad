"""Plain numpy/scipy reference implementation of EM for Gaussian mixtures.

The test oracle of fastem: slow, vectorised over samples, obviously correct.
Log-densities come from :func:`scipy.stats.multivariate_normal.logpdf`, which is
independent of the library's Cholesky-based kernels, so agreement is evidence
about both. Nothing here imports numba, directly or indirectly.

Conventions are those of :class:`sklearn.mixture.GaussianMixture`. With ``K``
components and ``D`` features, ``covariances`` has shape ``(K, D, D)`` for
"full", ``(D, D)`` for "tied", ``(K, D)`` for "diag" and ``(K,)`` for
"spherical"; ``weights`` is ``(K,)`` and ``means`` is ``(K, D)``.
``sample_weight`` of shape ``(n_samples,)`` is optional (``None`` means ones):
an integer weight counts a row that many times, weight 0 removes it. Results
are float64 whatever the input dtype, and no input array is modified.
"""

from typing import NamedTuple

import numpy as np
from scipy import linalg
from scipy.special import logsumexp, xlogy
from scipy.stats import multivariate_normal

__all__ = [
    "COVARIANCE_TYPES", "FitResult", "dense_covariances", "e_step", "em",
    "estimate_log_prob", "estimate_weighted_log_prob", "fit", "log_likelihood",
    "lower_bound", "m_step", "precisions_cholesky", "sufficient_statistics",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class FitResult(NamedTuple):
    """Outcome of :func:`fit`; the arrays are ``None`` if every restart failed."""

    lower_bound: float
    weights: np.ndarray | None
    means: np.ndarray | None
    covariances: np.ndarray | None
    resp: np.ndarray | None
    lower_bounds: list
    n_failed_restarts: int


# ------------------------------------------------------------------ input checks


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                         f"got {covariance_type!r}.")


def _check_X(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_samples, n_features), "
                         f"got shape {X.shape}; use X.reshape(-1, 1) for one feature.")
    return X


def _checked(name, value, shape):
    """``value`` as float64; ValueError unless it has ``shape`` (None: any size)."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != len(shape) or any(
        size is not None and size != got for size, got in zip(shape, array.shape)
    ):
        wanted = tuple("any" if size is None else size for size in shape)
        raise ValueError(f"{name} must have shape {wanted}, got {array.shape}.")
    return array


def _covariance_shape(covariance_type, n_components, n_features):
    _check_covariance_type(covariance_type)
    return {"full": (n_components, n_features, n_features),
            "tied": (n_features, n_features),
            "diag": (n_components, n_features),
            "spherical": (n_components,)}[covariance_type]


def _check_sample_weight(sample_weight, n_samples):
    if sample_weight is None:
        return np.ones(n_samples)
    sample_weight = _checked("sample_weight", sample_weight, (n_samples,))
    if not np.all(np.isfinite(sample_weight) & (sample_weight >= 0)):
        raise ValueError("sample_weight must be finite and non-negative.")
    return sample_weight


# ------------------------------------------------------------- covariance layouts


def dense_covariances(covariances, covariance_type, n_components, n_features):
    """Expand covariances of any layout to one full matrix per component.

    Parameters
    ----------
    covariances : array-like
        In the layout of ``covariance_type`` (see the module docstring).
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    dense : ndarray of shape (n_components, n_features, n_features)
        A new array.
    """
    shape = _covariance_shape(covariance_type, n_components, n_features)
    covariances = _checked("covariances", covariances, shape)
    if covariance_type == "full":
        return covariances.copy()
    if covariance_type == "tied":
        return np.repeat(covariances[np.newaxis], n_components, axis=0)
    dense = np.zeros((n_components, n_features, n_features))
    diagonal = np.arange(n_features)
    variances = covariances if covariance_type == "diag" else covariances[:, None]
    dense[:, diagonal, diagonal] = variances
    return dense


def precisions_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions, in scikit-learn's layout.

    For a covariance ``S = L L^T`` (``L`` lower triangular) the factor is the
    upper-triangular ``P = inv(L)^T``, so that ``P P^T = inv(S)``.

    Parameters
    ----------
    covariances : array-like
        In the layout of ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    precisions_chol : ndarray of the same shape as ``covariances``
        ``1 / sqrt(covariances)`` for "diag" and "spherical".

    Raises
    ------
    numpy.linalg.LinAlgError
        If a covariance is not positive definite.
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        if np.any(covariances <= 0):
            raise np.linalg.LinAlgError("A variance is not positive; raise reg_covar.")
        return 1.0 / np.sqrt(covariances)
    stacked = covariances[np.newaxis] if covariance_type == "tied" else covariances
    identity = np.eye(stacked.shape[-1])
    factors = np.empty_like(stacked)
    for k, covariance in enumerate(stacked):
        cov_chol = linalg.cholesky(covariance, lower=True)
        factors[k] = linalg.solve_triangular(cov_chol, identity, lower=True).T
    return factors[0] if covariance_type == "tied" else factors


# ------------------------------------------------------- E-step and likelihoods


def estimate_log_prob(X, means, covariances, covariance_type):
    """Log-density ``log N(X[i] | means[k], covariance_k)`` for every pair.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    means : array-like of shape (n_components, n_features)
    covariances : array-like
        In the layout of ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)

    Raises
    ------
    numpy.linalg.LinAlgError or ValueError
        From scipy, if a covariance is singular or not positive semidefinite.
    """
    X = _check_X(X)
    n_samples, n_features = X.shape
    means = _checked("means", means, (None, n_features))
    dense = dense_covariances(covariances, covariance_type, len(means), n_features)
    log_prob = np.empty((n_samples, len(means)))
    for k, (mean, covariance) in enumerate(zip(means, dense)):
        column = multivariate_normal.logpdf(X, mean=mean, cov=covariance)
        log_prob[:, k] = np.reshape(column, n_samples)  # logpdf squeezes n_samples=1
    return log_prob


def estimate_weighted_log_prob(X, weights, means, covariances, covariance_type):
    """:func:`estimate_log_prob` plus ``log(weights)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    weights : array-like of shape (n_components,)
    means : array-like of shape (n_components, n_features)
    covariances : array-like
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    weighted_log_prob : ndarray of shape (n_samples, n_components)
    """
    log_prob = estimate_log_prob(X, means, covariances, covariance_type)
    weights = _checked("weights", weights, (log_prob.shape[1],))
    with np.errstate(divide="ignore"):  # a zero weight is a legitimate -inf
        return log_prob + np.log(weights)


def e_step(X, weights, means, covariances, covariance_type):
    """Log-responsibilities of the components for every sample.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    weights, means, covariances : array-like
        Mixture parameters (see the module docstring).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(X[i])``, a logsumexp over components: a sample far from every
        component still gets finite responsibilities.
    log_resp : ndarray of shape (n_samples, n_components)
        ``log p(k | X[i])``.
    """
    weighted_log_prob = estimate_weighted_log_prob(
        X, weights, means, covariances, covariance_type)
    log_prob_norm = logsumexp(weighted_log_prob, axis=1)
    return log_prob_norm, weighted_log_prob - log_prob_norm[:, np.newaxis]


def _weighted_sum(values, sample_weight):
    present = sample_weight > 0  # an absent row adds nothing, even if -inf
    return float(np.sum(sample_weight[present] * values[present]))


def log_likelihood(X, weights, means, covariances, covariance_type,
                   sample_weight=None):
    """Total log-likelihood ``sum_i sample_weight[i] * log p(X[i])`` (not a mean).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    weights, means, covariances : array-like
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    log_likelihood : float
    """
    log_prob_norm, _ = e_step(X, weights, means, covariances, covariance_type)
    sample_weight = _check_sample_weight(sample_weight, len(log_prob_norm))
    return _weighted_sum(log_prob_norm, sample_weight)


# ---------------------------------------------------------------------- M-step


def sufficient_statistics(X, resp, means, covariance_type, sample_weight=None):
    """Weighted zeroth, first and second moments around the given means.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    resp : array-like of shape (n_samples, n_components)
    means : array-like of shape (n_components, n_features)
        The centres ``m_k`` the moments are taken around; not re-estimated.
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    nk : ndarray of shape (n_components,)
        ``sum_i w_i r_ik``.
    sum_x : ndarray of shape (n_components, n_features)
        ``sum_i w_i r_ik (x_i - m_k)``.
    scatter : ndarray
        With ``S_k = sum_i w_i r_ik (x_i - m_k)(x_i - m_k)^T``: ``S`` of shape
        (K, D, D) for "full", ``sum_k S_k`` (D, D) for "tied", the diagonals
        (K, D) for "diag", the traces (K,) for "spherical".
    """
    _check_covariance_type(covariance_type)
    X = _check_X(X)
    n_samples, n_features = X.shape
    resp = _checked("resp", resp, (n_samples, None))
    means = _checked("means", means, (resp.shape[1], n_features))
    sample_weight = _check_sample_weight(sample_weight, n_samples)
    weighted_resp = resp * sample_weight[:, np.newaxis]
    sum_x = np.empty_like(means)
    full = np.empty((len(means), n_features, n_features))
    for k, mean in enumerate(means):
        diff = X - mean
        sum_x[k] = weighted_resp[:, k] @ diff
        full[k] = (weighted_resp[:, k, np.newaxis] * diff).T @ diff
    scatter = {"full": lambda: full,
               "tied": lambda: full.sum(axis=0),
               "diag": lambda: np.diagonal(full, axis1=1, axis2=2).copy(),
               "spherical": lambda: np.trace(full, axis1=1, axis2=2)}[covariance_type]
    return weighted_resp.sum(axis=0), sum_x, scatter()


def m_step(X, resp, covariance_type, reg_covar=0.0, sample_weight=None):
    """Maximum-likelihood parameters for given responsibilities.

    Two passes: the weighted means first, then the scatter around them.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    resp : array-like of shape (n_samples, n_components)
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float, default=0.0
        Added to the diagonal of every covariance.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    weights : ndarray of shape (n_components,)
        ``nk / sum(sample_weight)``.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        In the layout of ``covariance_type``: scatter / nk for "full" and
        "diag"; summed scatter / sum(sample_weight) for "tied"; the "diag"
        variances averaged over features for "spherical". An empty component
        (nk == 0) gives non-finite means and covariances.
    """
    X = _check_X(X)
    resp = _checked("resp", resp, (len(X), None))
    sample_weight = _check_sample_weight(sample_weight, len(X))
    weighted_resp = resp * sample_weight[:, np.newaxis]
    nk = weighted_resp.sum(axis=0)
    total_weight = sample_weight.sum()
    means = (weighted_resp.T @ X) / nk[:, np.newaxis]
    _, _, scatter = sufficient_statistics(X, resp, means, covariance_type,
                                          sample_weight)
    diagonal = np.arange(X.shape[1])
    if covariance_type == "full":
        covariances = scatter / nk[:, np.newaxis, np.newaxis]
        covariances[:, diagonal, diagonal] += reg_covar
    elif covariance_type == "tied":
        covariances = scatter / total_weight
        covariances[diagonal, diagonal] += reg_covar
    elif covariance_type == "diag":
        covariances = scatter / nk[:, np.newaxis] + reg_covar
    else:
        covariances = scatter / (nk * X.shape[1]) + reg_covar
    return nk / total_weight, means, covariances


# -------------------------------------------------------- objective and drivers


def lower_bound(X, resp, weights, means, covariances, covariance_type,
                sample_weight=None):
    """Evidence lower bound ``E_q[log p(x, z)] - E_q[log q(z)]``.

    ``sum_i w_i sum_k r_ik (log weights_k + log N(x_i | means_k, cov_k) - log r_ik)``
    with ``0 log 0 = 0``. Equal to :func:`log_likelihood` when ``resp`` is the
    exact posterior of the same parameters, below it otherwise.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    resp : array-like of shape (n_samples, n_components)
    weights, means, covariances : array-like
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    lower_bound : float
    """
    weighted_log_prob = estimate_weighted_log_prob(
        X, weights, means, covariances, covariance_type)
    resp = _checked("resp", resp, weighted_log_prob.shape)
    sample_weight = _check_sample_weight(sample_weight, len(resp))
    # A component without responsibility adds nothing, even where its log is -inf.
    log_joint = resp * np.where(resp > 0, weighted_log_prob, 0.0)
    per_sample = np.sum(log_joint - xlogy(resp, resp), axis=1)
    return _weighted_sum(per_sample, sample_weight)


def em(X, weights, means, covariances, covariance_type, n_iter, reg_covar=0.0,
       sample_weight=None):
    """Run exactly ``n_iter`` scikit-learn-style EM iterations from given parameters.

    Each iteration runs :func:`e_step`, records the weighted mean log-likelihood
    of the parameters before the M-step (what scikit-learn stores in
    ``lower_bounds_``), then runs :func:`m_step`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    weights, means, covariances : array-like
        Starting parameters.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_iter : int
    reg_covar : float, default=0.0
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    weights, means, covariances : ndarray
        Parameters after the last M-step.
    log_likelihoods : list of float
        ``n_iter`` values of ``sum_i w_i log p(x_i) / sum_i w_i``.
    """
    X = _check_X(X)
    sample_weight = _check_sample_weight(sample_weight, len(X))
    means = _checked("means", means, (None, X.shape[1]))
    weights = _checked("weights", weights, (len(means),))
    shape = _covariance_shape(covariance_type, *means.shape)
    covariances = _checked("covariances", covariances, shape)
    log_likelihoods = []
    for _ in range(n_iter):
        log_prob_norm, log_resp = e_step(X, weights, means, covariances,
                                         covariance_type)
        total = _weighted_sum(log_prob_norm, sample_weight)
        log_likelihoods.append(total / sample_weight.sum())
        weights, means, covariances = m_step(X, np.exp(log_resp), covariance_type,
                                             reg_covar, sample_weight)
    return weights, means, covariances, log_likelihoods


def _identity_covariances(covariance_type, n_components, n_features):
    if covariance_type == "full":
        return np.tile(np.eye(n_features), (n_components, 1, 1))
    if covariance_type == "tied":
        return np.eye(n_features)
    return np.ones(_covariance_shape(covariance_type, n_components, n_features))


class _Breakdown(Exception):
    """A restart produced non-finite parameters or a non-finite lower bound."""


def fit(X, n_components, covariance_type="full", tol=1e-3, max_iter=50, n_init=10,
        reg_covar=0.0, random_state=None):
    """Fit a mixture by EM with restarts, like the original notebook's ``train_loop``.

    Each restart starts from ``weights = 1/K``, ``means ~ U[0, 1)^D`` drawn from
    ``np.random.default_rng(random_state)`` (one generator for all restarts)
    and identity covariances, then repeats E-step, M-step and the lower bound
    (with the responsibilities of that E-step and the parameters of the
    following M-step) until ``|change / previous| < tol`` or ``max_iter``. The
    best lower bound of any iteration of any restart is kept. A restart that
    breaks down (a covariance that is not positive definite, or non-finite
    values) is abandoned and counted.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        Relative change of the lower bound that ends a restart.
    max_iter : int, default=50
    n_init : int, default=10
    reg_covar : float, default=0.0
    random_state : None, int or numpy.random.Generator, default=None

    Returns
    -------
    result : FitResult
        ``(lower_bound, weights, means, covariances, resp, lower_bounds,
        n_failed_restarts)``; ``lower_bounds`` lists the lower bounds of the
        restart that produced the best. If every restart failed,
        ``lower_bound`` is ``-inf`` and the arrays are ``None``.
    """
    X = _check_X(X)
    n_features = X.shape[1]
    if int(n_components) != n_components or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, "
                         f"got {n_components!r}.")
    start_covariances = _identity_covariances(covariance_type, n_components,
                                              n_features)
    rng = np.random.default_rng(random_state)
    best = FitResult(-np.inf, None, None, None, None, [], 0)
    n_failed = 0
    for _ in range(n_init):
        weights = np.full(n_components, 1.0 / n_components)
        means = rng.random((n_components, n_features))
        covariances = start_covariances
        elbos = []
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                for _ in range(max_iter):
                    _, log_resp = e_step(X, weights, means, covariances,
                                         covariance_type)
                    resp = np.exp(log_resp)
                    weights, means, covariances = m_step(X, resp, covariance_type,
                                                         reg_covar)
                    elbo = lower_bound(X, resp, weights, means, covariances,
                                       covariance_type)
                    if not (np.isfinite(elbo) and np.all(np.isfinite(means))
                            and np.all(np.isfinite(covariances))):
                        raise _Breakdown
                    elbos.append(elbo)
                    if elbo > best.lower_bound:
                        best = FitResult(elbo, weights, means, covariances, resp,
                                         elbos, 0)
                    if len(elbos) > 1 and abs(elbo - elbos[-2]) < tol * abs(elbos[-2]):
                        break
        except (np.linalg.LinAlgError, ValueError, _Breakdown):
            n_failed += 1
    return best._replace(lower_bounds=list(best.lower_bounds),
                         n_failed_restarts=n_failed)
