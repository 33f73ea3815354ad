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
from scipy.special import betaln, digamma, gammaln, logsumexp, xlogy
from scipy.stats import multivariate_normal

__all__ = [
    "COVARIANCE_TYPES", "FitResult", "VariationalParameters", "VariationalPriors",
    "dense_covariances", "e_step", "em", "estimate_log_prob",
    "estimate_weighted_log_prob", "expected_log_weights", "fit", "log_likelihood",
    "lower_bound", "m_step", "precisions_cholesky", "sufficient_statistics",
    "variational_e_step", "variational_em", "variational_log_prob",
    "variational_lower_bound", "variational_m_step", "variational_priors",
    "variational_update", "variational_weights",
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
    return _normalise_log_prob(weighted_log_prob)


def _normalise_log_prob(weighted_log_prob):
    """``(log_prob_norm, log_resp)`` of weighted log-probabilities, row by row.

    ``log_resp = (w - max) - log(sum(exp(w - max)))``: the row's largest term is
    taken out before anything is summed. ``w - logsumexp(w)`` would lose the
    normaliser's small part once ``|w|`` passes ~1e16 (two equal terms at -1e30:
    ``logsumexp`` is -1e30 + log 2 = -1e30, and each gets responsibility 1). A
    row whose largest term is -inf (no component has any density there) gets NaN
    responsibilities and ``log_prob_norm = -inf``.

    Parameters
    ----------
    weighted_log_prob : ndarray of shape (n_samples, n_components)

    Returns
    -------
    log_prob_norm : ndarray of shape (n_samples,)
    log_resp : ndarray of shape (n_samples, n_components)
    """
    largest = np.max(weighted_log_prob, axis=1, keepdims=True)
    shifted = weighted_log_prob - largest
    log_resp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return logsumexp(weighted_log_prob, axis=1), log_resp


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


# ------------------------------------------------ the variational (Bayesian) mixture
#
# scikit-learn's BayesianGaussianMixture, written out: the same priors, the same
# padded counts (nk + 10 eps) and the same normalisation of the Wishart scale
# (``covariances`` are W^-1 / nu, so that their inverse is the expected precision).
# Log-densities again come from scipy's ``multivariate_normal.logpdf``.

WEIGHT_CONCENTRATION_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")

_COUNT_FLOOR = 10.0 * np.finfo(np.float64).eps


class VariationalPriors(NamedTuple):
    """Priors of the variational mixture (scikit-learn's ``*_prior_`` attributes)."""

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray | float


class VariationalParameters(NamedTuple):
    """Variational posterior, in scikit-learn's layouts.

    ``weight_concentration`` is ``(a, b)`` (two arrays (K,)) for the Dirichlet
    process and an array (K,) for the Dirichlet distribution;
    ``degrees_of_freedom`` is (K,), or a float for "tied"; ``covariances`` are
    the Wishart scale matrices divided by the degrees of freedom.
    """

    weight_concentration: tuple | np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray | float
    covariances: np.ndarray


def _check_prior_type(weight_concentration_prior_type):
    if weight_concentration_prior_type not in WEIGHT_CONCENTRATION_PRIOR_TYPES:
        raise ValueError(f"weight_concentration_prior_type must be one of "
                         f"{WEIGHT_CONCENTRATION_PRIOR_TYPES}, "
                         f"got {weight_concentration_prior_type!r}.")


def variational_priors(X, n_components, covariance_type, weight_concentration_prior=None,
                       mean_precision_prior=None, mean_prior=None,
                       degrees_of_freedom_prior=None, covariance_prior=None,
                       sample_weight=None):
    """The priors with scikit-learn's defaults, weighted by ``sample_weight``.

    Defaults: weight concentration ``1 / n_components``, mean precision 1, mean
    the weighted mean of X, ``n_features`` degrees of freedom, and the weighted
    covariance of X with frequency weights (``sum w (x - m)(x - m)^T / (sum w - 1)``,
    ``np.cov(X.T)`` for unit weights), its diagonal for "diag" and the mean of
    that for "spherical".

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_concentration_prior, mean_precision_prior, degrees_of_freedom_prior : float or None
    mean_prior : array-like of shape (n_features,) or None
    covariance_prior : array-like, float or None
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    priors : VariationalPriors
    """
    _check_covariance_type(covariance_type)
    X = _check_X(X)
    n_samples, n_features = X.shape
    sample_weight = _check_sample_weight(sample_weight, n_samples)
    total = sample_weight.sum()
    data_mean = sample_weight @ X / total
    if mean_prior is None:
        mean_prior = data_mean
    if covariance_prior is None:
        diff = X - data_mean
        covariance = (sample_weight[:, np.newaxis] * diff).T @ diff / (total - 1.0)
        covariance_prior = {"full": covariance, "tied": covariance,
                            "diag": np.diag(covariance).copy(),
                            "spherical": float(np.mean(np.diag(covariance)))}[covariance_type]
    return VariationalPriors(
        float(1.0 / n_components if weight_concentration_prior is None
              else weight_concentration_prior),
        float(1.0 if mean_precision_prior is None else mean_precision_prior),
        _checked("mean_prior", mean_prior, (n_features,)).copy(),
        float(n_features if degrees_of_freedom_prior is None else degrees_of_freedom_prior),
        (float(covariance_prior) if covariance_type == "spherical"
         else np.array(covariance_prior, dtype=np.float64)),
    )


def _gaussian_statistics(X, resp, covariance_type, reg_covar, sample_weight):
    """scikit-learn's ``_estimate_gaussian_parameters`` with sample weights.

    Returns (nk + 10 eps, means, covariances + reg_covar); the covariances are
    the weighted scatter around the means divided by the padded counts
    ("tied": summed over components and divided by their sum).
    """
    weighted_resp = resp * sample_weight[:, np.newaxis]
    nk = weighted_resp.sum(axis=0) + _COUNT_FLOOR
    means = (weighted_resp.T @ X) / nk[:, np.newaxis]
    _, _, scatter = sufficient_statistics(X, resp, means, covariance_type, sample_weight)
    diagonal = np.arange(X.shape[1])
    if covariance_type == "full":
        covariances = scatter / nk[:, np.newaxis, np.newaxis]
        covariances[:, diagonal, diagonal] += reg_covar
    elif covariance_type == "tied":
        covariances = scatter / nk.sum()
        covariances[diagonal, diagonal] += reg_covar
    elif covariance_type == "diag":
        covariances = scatter / nk[:, np.newaxis] + reg_covar
    else:
        covariances = scatter / (nk * X.shape[1]) + reg_covar
    return nk, means, covariances


def variational_update(nk, xk, sk, priors, covariance_type,
                       weight_concentration_prior_type="dirichlet_process"):
    """The variational posterior from counts, means and covariances.

    scikit-learn's ``_estimate_weights``, ``_estimate_means`` and
    ``_estimate_wishart_*``: what its initialisation and its M-step do with
    the output of ``_estimate_gaussian_parameters``.

    Parameters
    ----------
    nk : array-like of shape (n_components,)
        Weighted counts (padded by 10 eps, as scikit-learn pads them).
    xk : array-like of shape (n_components, n_features)
        Weighted means of the components.
    sk : array-like
        Their covariances (``reg_covar`` included), in the layout of
        ``covariance_type``.
    priors : VariationalPriors
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}

    Returns
    -------
    parameters : VariationalParameters
    """
    _check_prior_type(weight_concentration_prior_type)
    nk = np.asarray(nk, dtype=np.float64)
    xk = np.asarray(xk, dtype=np.float64)
    n_components = len(nk)
    if weight_concentration_prior_type == "dirichlet_process":
        tail = np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0))
        weight_concentration = (1.0 + nk, priors.weight_concentration + tail)
    else:
        weight_concentration = priors.weight_concentration + nk
    mean_precision = priors.mean_precision + nk
    means = ((priors.mean_precision * priors.mean + nk[:, np.newaxis] * xk)
             / mean_precision[:, np.newaxis])
    diff = xk - priors.mean
    shrink = priors.mean_precision / mean_precision  # beta_0 / beta_k
    if covariance_type == "full":
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = (priors.covariance + nk[:, np.newaxis, np.newaxis] * sk
                       + (nk * shrink)[:, np.newaxis, np.newaxis]
                       * diff[:, :, np.newaxis] * diff[:, np.newaxis, :])
        covariances = covariances / degrees_of_freedom[:, np.newaxis, np.newaxis]
    elif covariance_type == "tied":
        degrees_of_freedom = priors.degrees_of_freedom + nk.sum() / n_components
        covariances = (priors.covariance + sk * nk.sum() / n_components
                       + ((nk * shrink)[:, np.newaxis] * diff).T @ diff / n_components)
        covariances = covariances / degrees_of_freedom
    elif covariance_type == "diag":
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = priors.covariance + nk[:, np.newaxis] * (
            sk + shrink[:, np.newaxis] * diff**2)
        covariances = covariances / degrees_of_freedom[:, np.newaxis]
    else:
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = priors.covariance + nk * (sk + shrink * np.mean(diff**2, axis=1))
        covariances = covariances / degrees_of_freedom
    return VariationalParameters(weight_concentration, mean_precision, means,
                                 degrees_of_freedom, covariances)


def variational_m_step(X, resp, priors, covariance_type,
                       weight_concentration_prior_type="dirichlet_process", reg_covar=0.0,
                       sample_weight=None):
    """Variational M-step: the posterior for given responsibilities.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    resp : array-like of shape (n_samples, n_components)
    priors : VariationalPriors
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
    reg_covar : float, default=0.0
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    parameters : VariationalParameters
    """
    _check_covariance_type(covariance_type)
    X = _check_X(X)
    resp = _checked("resp", resp, (len(X), None))
    sample_weight = _check_sample_weight(sample_weight, len(X))
    nk, xk, sk = _gaussian_statistics(X, resp, covariance_type, reg_covar, sample_weight)
    return variational_update(nk, xk, sk, priors, covariance_type,
                              weight_concentration_prior_type)


def expected_log_weights(weight_concentration, weight_concentration_prior_type):
    """``E[log pi_k]`` under the variational posterior of the weights.

    Parameters
    ----------
    weight_concentration : tuple of two arrays (K,) or array (K,)
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}

    Returns
    -------
    log_weights : ndarray of shape (n_components,)
    """
    _check_prior_type(weight_concentration_prior_type)
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = (np.asarray(c, dtype=np.float64) for c in weight_concentration)
        digamma_sum = digamma(a + b)
        log_stick = digamma(a) - digamma_sum  # E[log v_k]
        log_rest = digamma(b) - digamma_sum  # E[log (1 - v_k)]
        return log_stick + np.hstack((0.0, np.cumsum(log_rest)[:-1]))
    concentration = np.asarray(weight_concentration, dtype=np.float64)
    return digamma(concentration) - digamma(concentration.sum())


def variational_weights(weight_concentration, weight_concentration_prior_type):
    """The mixture weights scikit-learn reports (``weights_``): posterior means.

    Parameters
    ----------
    weight_concentration : tuple of two arrays (K,) or array (K,)
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}

    Returns
    -------
    weights : ndarray of shape (n_components,), summing to one
    """
    _check_prior_type(weight_concentration_prior_type)
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = (np.asarray(c, dtype=np.float64) for c in weight_concentration)
        stick = a / (a + b)
        weights = stick * np.hstack((1.0, np.cumprod(1.0 - stick)[:-1]))
    else:
        weights = np.asarray(weight_concentration, dtype=np.float64).copy()
    return weights / weights.sum()


def variational_log_prob(X, parameters, covariance_type):
    """``E[log N(x_i | mu_k, Lambda_k^-1)]`` for every sample and component.

    ``log N(x | means_k, covariances_k)`` plus the terms of the posterior's
    spread: ``0.5 (sum_j digamma((nu_k - j) / 2) + D log 2 - D log nu_k - D / beta_k)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    parameters : VariationalParameters
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    X = _check_X(X)
    n_features = X.shape[1]
    degrees_of_freedom = np.asarray(parameters.degrees_of_freedom, dtype=np.float64)
    log_gauss = estimate_log_prob(X, parameters.means, parameters.covariances,
                                  covariance_type)
    features = np.arange(n_features)[:, np.newaxis]
    log_lambda = (n_features * np.log(2.0)
                  + np.sum(digamma(0.5 * (degrees_of_freedom - features)), axis=0)
                  - n_features * np.log(degrees_of_freedom))
    return log_gauss + 0.5 * (log_lambda - n_features / parameters.mean_precision)


def variational_e_step(X, parameters, covariance_type,
                       weight_concentration_prior_type="dirichlet_process"):
    """Variational E-step.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    parameters : VariationalParameters
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}

    Returns
    -------
    log_prob_norm : ndarray of shape (n_samples,)
        logsumexp over components of the weighted log-probabilities.
    log_resp : ndarray of shape (n_samples, n_components)
    """
    weighted = (variational_log_prob(X, parameters, covariance_type)
                + expected_log_weights(parameters.weight_concentration,
                                       weight_concentration_prior_type))
    return _normalise_log_prob(weighted)


def _log_det(covariances, covariance_type):
    """log det of each covariance (slogdet: independent of any Cholesky factor)."""
    if covariance_type in ("full", "tied"):
        sign, log_det = np.linalg.slogdet(covariances)
        if np.any(sign <= 0):
            raise np.linalg.LinAlgError("A covariance is not positive definite.")
        return log_det
    if covariance_type == "diag":
        return np.sum(np.log(covariances), axis=1)
    return covariances  # the caller multiplies the log by n_features


def variational_lower_bound(resp, parameters, covariance_type, n_features,
                            weight_concentration_prior_type="dirichlet_process",
                            sample_weight=None):
    """scikit-learn's variational lower bound (up to its constant terms).

    ``-sum_i w_i sum_k r_ik log r_ik - sum_k log B(W_k, nu_k) - log C(alpha)
    - D/2 sum_k log beta_k``, with the Wishart normaliser log B written with the
    normalised covariances as scikit-learn writes it (``tied``: K times the
    shared one) and log C the Dirichlet (or, for the Dirichlet process, minus the
    sum of the Beta functions') normaliser.

    Parameters
    ----------
    resp : array-like of shape (n_samples, n_components)
        The responsibilities of the E-step that preceded the M-step.
    parameters : VariationalParameters
        The posterior of that M-step.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_features : int
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    lower_bound : float
    """
    _check_covariance_type(covariance_type)
    _check_prior_type(weight_concentration_prior_type)
    resp = _checked("resp", resp, (None, None))
    sample_weight = _check_sample_weight(sample_weight, len(resp))
    n_components = resp.shape[1]
    entropy_term = _weighted_sum(np.sum(xlogy(resp, resp), axis=1), sample_weight)
    degrees_of_freedom = np.asarray(parameters.degrees_of_freedom, dtype=np.float64)
    covariances = np.asarray(parameters.covariances, dtype=np.float64)
    log_det = _log_det(covariances, covariance_type)
    if covariance_type == "spherical":
        log_det = n_features * np.log(log_det)
    # log det of the precision's Cholesky factor of W_k (not W_k / nu_k)
    log_det_chol = -0.5 * log_det - 0.5 * n_features * np.log(degrees_of_freedom)
    features = np.arange(n_features)[:, np.newaxis]
    log_wishart = -(degrees_of_freedom * log_det_chol
                    + degrees_of_freedom * n_features * 0.5 * np.log(2.0)
                    + np.sum(gammaln(0.5 * (degrees_of_freedom - features)), axis=0))
    log_wishart = (n_components * float(np.squeeze(log_wishart))
                   if covariance_type == "tied" else float(np.sum(log_wishart)))
    if weight_concentration_prior_type == "dirichlet_process":
        a, b = parameters.weight_concentration
        log_norm_weight = -float(np.sum(betaln(a, b)))
    else:
        concentration = np.asarray(parameters.weight_concentration, dtype=np.float64)
        log_norm_weight = float(gammaln(concentration.sum()) - np.sum(gammaln(concentration)))
    return (-entropy_term - log_wishart - log_norm_weight
            - 0.5 * n_features * float(np.sum(np.log(parameters.mean_precision))))


def variational_em(X, resp, n_iter, priors, covariance_type,
                   weight_concentration_prior_type="dirichlet_process", reg_covar=0.0,
                   sample_weight=None):
    """Run exactly ``n_iter`` iterations of scikit-learn's variational loop.

    The start is the M-step of ``resp`` (scikit-learn's ``_initialize``); each
    iteration is a variational E-step, an M-step, and the lower bound from the
    E-step's responsibilities and the M-step's posterior.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    resp : array-like of shape (n_samples, n_components)
        Initial responsibilities (e.g. one-hot k-means labels).
    n_iter : int
    priors : VariationalPriors
    covariance_type : {"full", "tied", "diag", "spherical"}
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}
    reg_covar : float, default=0.0
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    parameters : VariationalParameters
        After the last M-step.
    lower_bounds : list of float
        One per iteration.
    """
    X = _check_X(X)
    sample_weight = _check_sample_weight(sample_weight, len(X))
    parameters = variational_m_step(X, resp, priors, covariance_type,
                                    weight_concentration_prior_type, reg_covar,
                                    sample_weight)
    lower_bounds = []
    for _ in range(n_iter):
        _, log_resp = variational_e_step(X, parameters, covariance_type,
                                         weight_concentration_prior_type)
        resp = np.exp(log_resp)
        parameters = variational_m_step(X, resp, priors, covariance_type,
                                        weight_concentration_prior_type, reg_covar,
                                        sample_weight)
        lower_bounds.append(variational_lower_bound(
            resp, parameters, covariance_type, X.shape[1],
            weight_concentration_prior_type, sample_weight))
    return parameters, lower_bounds
