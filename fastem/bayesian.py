"""The scikit-learn compatible estimator :class:`BayesianGaussianMixture`.

Variational inference for a Gaussian mixture, as scikit-learn's
``BayesianGaussianMixture`` does it. Its E-step is the ordinary Gaussian
E-step with other per-component constants, so each iteration is one pass of
fastem's fused kernels (:func:`fastem.em.driver.source_statistics` with
``log_weights``) over any source GaussianMixture takes (memory, streamed,
Dask); everything else works on K x D arrays in numpy here.

With ``nu_k`` the degrees of freedom, ``beta_k`` the mean precisions and
``covariances_`` the Wishart scale divided by ``nu_k`` (scikit-learn's
normalisation), the weighted log-probability of sample ``x`` under component k
is ``log N(x | means_k, covariances_k)`` plus the offset ::

    E[log pi_k] + 0.5 (D log 2 + sum_j digamma((nu_k - j) / 2) - D log nu_k - D / beta_k)

which :func:`_posterior_terms` computes and the kernels add where they would
add ``log weights_k``. ``fastem.reference.variational_*`` is the oracle.
"""

import math
import time
import warnings
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy.special import betaln, digamma, gammaln, logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from fastem import _validation
from fastem._estimator import SourcesMixin, check_fitted_shapes, is_source
from fastem.em import driver as _driver
from fastem.em import sources as _sources
from fastem.kernels.threads import thread_limit
from fastem.mixture import GaussianMixture

__all__ = ["BayesianGaussianMixture"]

# scikit-learn pads every component's count by 10 eps (``_estimate_gaussian_parameters``)
COUNT_FLOOR = 10.0 * np.finfo(np.float64).eps
LOG_2 = math.log(2.0)


@dataclass
class _Priors:
    """The priors, resolved against X (scikit-learn's ``*_prior_`` attributes)."""

    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: object  # (D, D), (D,) or float by covariance type


@dataclass
class _Posterior:
    """The variational posterior in scikit-learn's layouts (float64)."""

    weight_concentration: object  # (a, b) arrays for a Dirichlet process, else (K,)
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: object  # (K,), or a float for 'tied'
    covariances: np.ndarray
    precisions_chol: np.ndarray


@dataclass
class _Result:
    posterior: _Posterior
    lower_bound: float
    lower_bounds: list
    n_iter: int
    converged: bool


class _Breakdown(Exception):
    """A restart cannot go on (a covariance without a precision factor, or a
    non-finite lower bound)."""


# --------------------------------------------------------------------------
# The variational mathematics on K x D arrays


def _mixture_weights(weight_concentration, prior_type):
    """``weights_``: the posterior mean weights, as scikit-learn's ``_set_parameters``."""
    if prior_type == "dirichlet_process":
        a, b = weight_concentration
        total = a + b
        weights = a / total * np.hstack((1.0, np.cumprod(b / total)[:-1]))
    else:
        weights = np.array(weight_concentration, dtype=np.float64)
    return weights / np.sum(weights)


def _expected_log_weights(weight_concentration, prior_type):
    """E[log pi_k] (scikit-learn's ``_estimate_log_weights``), with one digamma call."""
    if prior_type == "dirichlet_process":
        a, b = weight_concentration
        n_components = len(a)
        values = digamma(np.concatenate((a, b, a + b)))
        digamma_sum = values[2 * n_components:]
        log_weights = values[:n_components] - digamma_sum
        # + (0, cumsum(digamma(b) - digamma_sum)[:-1]): the same sums, in place
        log_weights[1:] += np.cumsum(values[n_components:2 * n_components - 1]
                                     - digamma_sum[:-1])
        return log_weights
    values = digamma(np.append(weight_concentration, np.sum(weight_concentration)))
    return values[:-1] - values[-1]


def _features_column(n_features):
    """(n_features, 1) float64 column 0, 1, ..., D - 1: the j of the
    digamma((nu - j) / 2) and gammaln((nu - j) / 2) sums."""
    return np.arange(n_features, dtype=np.float64)[:, np.newaxis]


def _posterior_terms(posterior, prior_type, covariance_type, features, bound=True):
    """What one posterior contributes to the next E-step and to the lower bound.

    Returns ``(offsets, bound_terms)``: the per-component offsets that turn
    the Gaussian log-density into the variational weighted log-probability
    (see the module docstring), and ``(log_wishart, log_norm_weight,
    mean_precision_term)`` of scikit-learn's ``_compute_lower_bound`` (None
    with ``bound=False``). Both need digamma, gammaln and log of the degrees
    of freedom; computed here once per iteration instead of twice.
    ``features`` is :func:`_features_column`.
    """
    n_features = features.shape[0]
    degrees_of_freedom = posterior.degrees_of_freedom
    half_degrees = 0.5 * (degrees_of_freedom - features)  # (D, K); 'tied': (D, 1)
    half_d_log_nu = 0.5 * n_features * np.log(degrees_of_freedom)
    log_lambda = n_features * LOG_2 + np.sum(digamma(half_degrees), axis=0)
    offsets = (
        _expected_log_weights(posterior.weight_concentration, prior_type)
        - half_d_log_nu
        + 0.5 * (log_lambda - n_features / posterior.mean_precision)
    )
    if not bound:
        return offsets, None
    log_det_chol = _driver.log_det_cholesky(
        posterior.precisions_chol, covariance_type, n_features
    ) - half_d_log_nu
    # a prior near float64's largest number overflows here: the bound is then not
    # finite, which the fit reports as a breakdown (no RuntimeWarning on the way)
    with np.errstate(over="ignore", invalid="ignore"):
        log_wishart = -(
            degrees_of_freedom * log_det_chol
            + degrees_of_freedom * n_features * 0.5 * LOG_2
            + np.sum(gammaln(half_degrees), axis=0)
        )
    if covariance_type == "tied":
        log_wishart = len(offsets) * float(log_wishart[0])
    else:
        log_wishart = float(np.sum(log_wishart))
    if prior_type == "dirichlet_process":
        log_norm_weight = -float(np.sum(betaln(*posterior.weight_concentration)))
    else:
        concentration = posterior.weight_concentration
        values = gammaln(np.append(concentration, np.sum(concentration)))
        log_norm_weight = float(values[-1] - np.sum(values[:-1]))
    log_mean_precision = float(np.sum(np.log(posterior.mean_precision)))
    mean_precision_term = 0.5 * n_features * log_mean_precision
    return offsets, (log_wishart, log_norm_weight, mean_precision_term)


def _log_weight_offsets(posterior, prior_type, n_features):
    """The E-step offsets of a posterior (for inference; see _posterior_terms)."""
    return _posterior_terms(posterior, prior_type, None, _features_column(n_features),
                            bound=False)[0]


def _lower_bound(resp_log_resp, bound_terms):
    """scikit-learn's ``_compute_lower_bound`` (its constants left out, as there)
    from ``resp_log_resp``, sum_i w_i sum_k r_ik log r_ik of the E-step that
    preceded the posterior, and the posterior's ``bound_terms`` (_posterior_terms)."""
    log_wishart, log_norm_weight, mean_precision_term = bound_terms
    return -resp_log_resp - log_wishart - log_norm_weight - mean_precision_term


def _gaussian_statistics(statistics, covariance_type, reg_covar):
    """(nk, xk, sk) of scikit-learn's ``_estimate_gaussian_parameters`` from the
    E-step's sums around the current means.

    nk is padded by 10 eps; xk = (sum_i w r x) / nk; sk the weighted scatter
    around xk divided by nk ('tied': summed, divided by sum nk) plus reg_covar.
    The scatter around ``centres`` c is moved to xk exactly:
    S(xk) = S(c) - s d^T - d s^T + n d d^T with s = sum w r (x - c), d = xk - c.
    (In-place arithmetic where it gives the same numbers: on P3's K x D x D
    arrays the temporaries cost more than the arithmetic.)
    """
    nk = statistics.nk
    padded = nk + COUNT_FLOOR
    centres = statistics.centres
    sum_x = statistics.sum_x
    shift = (sum_x - COUNT_FLOOR * centres) / padded[:, np.newaxis]  # xk - c
    xk = centres + shift
    scatter = statistics.scatter
    n_features = xk.shape[1]
    if covariance_type == "full":
        cross = sum_x[:, :, np.newaxis] * shift[:, np.newaxis, :]
        centred = scatter - cross
        centred -= np.swapaxes(cross, 1, 2)
        weighted_shift = nk[:, np.newaxis] * shift
        centred += weighted_shift[:, :, np.newaxis] * shift[:, np.newaxis, :]
        sk = centred + np.swapaxes(centred, 1, 2)
        sk *= 0.5
        sk /= padded[:, np.newaxis, np.newaxis]
        sk.reshape(len(nk), n_features * n_features)[:, ::n_features + 1] += reg_covar
    elif covariance_type == "tied":
        cross = sum_x.T @ shift
        centred = scatter[0] - cross - cross.T + (nk[:, np.newaxis] * shift).T @ shift
        centred = 0.5 * (centred + centred.T)
        sk = centred / padded.sum()
        sk.reshape(-1)[::n_features + 1] += reg_covar
    else:
        centred = scatter - 2.0 * sum_x * shift + nk[:, np.newaxis] * shift**2
        sk = centred / padded[:, np.newaxis] + reg_covar
        if covariance_type == "spherical":
            sk = sk.mean(axis=1)
    return padded, xk, sk


def _update(nk, xk, sk, priors, covariance_type, prior_type):
    """The posterior from (nk, xk, sk): scikit-learn's ``_estimate_weights``,
    ``_estimate_means`` and ``_estimate_wishart_*``. Raises _Breakdown when a
    covariance has no precision factor."""
    n_components = len(nk)
    if prior_type == "dirichlet_process":
        tail = np.zeros(n_components)
        tail[:-1] = np.cumsum(nk[::-1])[-2::-1]
        weight_concentration = (1.0 + nk, priors.weight_concentration + tail)
    else:
        weight_concentration = priors.weight_concentration + nk
    mean_precision = priors.mean_precision + nk
    means = priors.mean_precision * priors.mean + nk[:, np.newaxis] * xk
    means /= mean_precision[:, np.newaxis]
    diff = xk - priors.mean
    shrink = nk * priors.mean_precision / mean_precision
    if covariance_type == "full":
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = nk[:, np.newaxis, np.newaxis] * sk
        covariances += priors.covariance  # = prior + nk sk (one rounding, either order)
        covariances += (shrink[:, np.newaxis, np.newaxis] * diff[:, :, np.newaxis]
                        * diff[:, np.newaxis, :])
        covariances /= degrees_of_freedom[:, np.newaxis, np.newaxis]
        symmetric = covariances + np.swapaxes(covariances, 1, 2)
        symmetric *= 0.5
        covariances = symmetric
    elif covariance_type == "tied":
        degrees_of_freedom = priors.degrees_of_freedom + nk.sum() / n_components
        covariances = (
            priors.covariance
            + sk * nk.sum() / n_components
            + (shrink[:, np.newaxis] * diff).T @ diff / n_components
        )
        covariances /= degrees_of_freedom
        covariances = 0.5 * (covariances + covariances.T)
    elif covariance_type == "diag":
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = priors.covariance + nk[:, np.newaxis] * sk + shrink[:, np.newaxis] * diff**2
        covariances /= degrees_of_freedom[:, np.newaxis]
    else:
        degrees_of_freedom = priors.degrees_of_freedom + nk
        covariances = priors.covariance + nk * sk + shrink * np.mean(diff**2, axis=1)
        covariances /= degrees_of_freedom
    if covariance_type in ("full", "tied"):
        # the compiled factorisation reports a non-finite factor as a failure
        precisions_chol = _driver.precision_cholesky(covariances, covariance_type)
    else:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            precisions_chol = _driver.precision_cholesky(covariances, covariance_type)
        if precisions_chol is not None and not np.all(np.isfinite(precisions_chol)):
            precisions_chol = None
    if precisions_chol is None:
        raise _Breakdown(_singular_message(covariances, covariance_type))
    return _Posterior(weight_concentration, mean_precision, means, degrees_of_freedom,
                      covariances, precisions_chol)


def _singular_message(covariances, covariance_type):
    """Which covariance has no precision factor (an ill-defined empirical covariance)."""
    if covariance_type == "tied":
        return "the tied covariance is not positive definite"
    for k, covariance in enumerate(covariances):
        kind = "tied" if covariance_type == "full" else "diag"
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            factor = _driver.precision_cholesky(np.atleast_1d(covariance), kind)
        if factor is None or not np.all(np.isfinite(factor)):
            return f"the covariance of component {k} is not positive definite"
    return "a covariance is not positive definite"


class _Scaling:
    """Fitting X * 2**-exponent instead of X (exponent 0: X itself).

    The responsibilities are the same; the means scale by 2**-exponent, the
    covariances by 4**-exponent, and the lower bound moves by the Wishart
    normalisers' log-determinants: L(X) = L(X') - D exponent log 2 sum_k nu_k
    ('tied': K nu).
    """

    def __init__(self, exponent, n_features, covariance_type, reg_covar):
        self.exponent = exponent
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar  # for the rescaled X
        self._per_degree = n_features * exponent * LOG_2

    def bound_offset(self, posterior):
        if not self.exponent:
            return 0.0
        degrees = posterior.degrees_of_freedom
        if self.covariance_type == "tied":
            return self._per_degree * len(posterior.mean_precision) * float(degrees)
        return self._per_degree * float(np.sum(degrees))

    def _scaled(self, posterior, shift):
        if not shift:
            return posterior
        with np.errstate(over="ignore", under="ignore"):
            return _Posterior(
                posterior.weight_concentration,
                posterior.mean_precision,
                np.ldexp(posterior.means, shift),
                posterior.degrees_of_freedom,
                np.ldexp(posterior.covariances, 2 * shift),
                np.ldexp(posterior.precisions_chol, -shift),
            )

    def to_unit(self, posterior):
        return self._scaled(posterior, -self.exponent)

    def to_data(self, posterior):
        """Back to the data's units; a ValueError if that leaves float64's range."""
        posterior = self._scaled(posterior, self.exponent)
        _driver._check_representable(
            _driver.Parameters(None, posterior.means, posterior.covariances,
                               posterior.precisions_chol),
            self.covariance_type,
        )
        return posterior


class BayesianGaussianMixture(SourcesMixin, DensityMixin, BaseEstimator):
    """Variational Bayesian estimation of a Gaussian mixture.

    A drop-in for :class:`sklearn.mixture.BayesianGaussianMixture` (same
    constructor parameters, methods and fitted attributes, the same answers
    from the same start) whose per-sample work runs in fastem's parallel
    numba kernels, one pass over the data per iteration. It adds per-sample
    weights, control of threads and chunking, and data streamed from disk or
    held by Dask, as :class:`fastem.GaussianMixture` takes them. Components
    the data do not need get weights near zero (more readily with the
    Dirichlet-process prior), so ``n_components`` is an upper bound on the
    components used.

    Parameters
    ----------
    n_components : int, default=1
        The (maximum) number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        As in :class:`fastem.GaussianMixture`.
    tol : float, default=1e-3
        Convergence threshold: iterations stop when the change of the lower
        bound (a total over the samples, not a mean) is below ``tol``.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every component's
        empirical covariance.
    max_iter : int, default=100
        Maximum number of iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the largest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are chosen, as in scikit-learn.
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
        The prior of the weights: a stick-breaking (truncated Dirichlet
        process) or a finite Dirichlet distribution.
    weight_concentration_prior : float or None, default=None
        Concentration of the weight prior (gamma); smaller values leave more
        components empty. None: ``1 / n_components``.
    mean_precision_prior : float or None, default=None
        Precision of the prior on the means (beta_0). None: 1.
    mean_prior : array-like of shape (n_features,), default=None
        Prior mean of the means (m_0). None: the (weighted) mean of X.
    degrees_of_freedom_prior : float or None, default=None
        Degrees of freedom of the Wishart prior (nu_0), greater than
        ``n_features - 1``. None: ``n_features``.
    covariance_prior : float or array-like, default=None
        Covariance of the Wishart prior: (n_features, n_features) for 'full'
        and 'tied', (n_features,) for 'diag', a float for 'spherical'. None:
        the (weighted) covariance of X, divided by ``sum(sample_weight) - 1``.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of ``sample``.
    warm_start : bool, default=False
        If True, each ``fit`` continues from the previous solution (then one
        initialisation).
    verbose : int or bool, default=0
        1 prints the initialisation and every ``verbose_interval``-th
        iteration; 2 also the time and the change of the lower bound.
    verbose_interval : int, default=10
        Iterations between two progress messages.
    n_threads : int or None, default=None
        Threads used by the kernels during this estimator's calls; None uses
        ``NUMBA_NUM_THREADS`` (by default the number of CPUs). Results do not
        depend on it.
    chunk_size : int or None, default=None
        Rows per parallel block; None picks it from the data's shape. Results
        depend on it only through floating-point summation order.
    init_sample_size : int or None, default=None
        'kmeans' and 'k-means++' starts computed from a seeded uniform sample
        of this many rows, as in :class:`fastem.GaussianMixture`. None:
        scikit-learn's start from all the data when X is in memory, and a
        sample of 100,000 rows for data streamed from disk or held by Dask.
        The same value gives the same start, bit for bit, from every kind of X.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Posterior mean of the weights.
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Wishart scale matrices divided by the degrees of freedom (the inverse
        of the expected precision), shaped by ``covariance_type``.
    precisions_ : ndarray
    precisions_cholesky_ : ndarray
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Variational lower bound of the best initialisation (a total over the
        samples, up to constants, as scikit-learn reports it).
    lower_bounds_ : list of float
        The lower bound at every iteration of the best initialisation.
    weight_concentration_prior_ : float
    weight_concentration_ : tuple of two ndarrays or ndarray of shape (n_components,)
        The Beta parameters of the sticks (Dirichlet process) or the
        Dirichlet parameters.
    mean_precision_prior_ : float
    mean_precision_ : ndarray of shape (n_components,)
    mean_prior_ : ndarray of shape (n_features,)
    degrees_of_freedom_prior_ : float
    degrees_of_freedom_ : ndarray of shape (n_components,), or float for 'tied'
    covariance_prior_ : float or ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    """

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        chunk_size=None,
        init_sample_size=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.init_sample_size = init_sample_size

    # ------------------------------------------------------------------
    # fitting

    def fit(self, X, y=None, sample_weight=None):
        """Fit the variational posterior by coordinate ascent on the lower bound.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, float32 or float64 (integers are converted to
            float64). Never modified. As in :meth:`fastem.GaussianMixture.fit`:
            an ``np.memmap``, ``h5py.Dataset``, ``zarr.Array`` or any object
            with ``shape``, ``dtype``, ``ndim`` and row slicing is read block by
            block, and a ``dask.array.Array`` is fitted on its scheduler, one
            graph per iteration.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: an integer weight is equivalent to
            repeating the row that many times, a zero weight to leaving it
            out. Unlike in a maximum-likelihood fit their scale matters (the
            posterior counts samples). With a streamed or Dask X, an
            array-like (or Dask array) read the same way.

        Returns
        -------
        self : BayesianGaussianMixture
        """
        self._fit_or_restore(X, sample_weight, labels=False)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most probable component of each sample.

        Equivalent to ``fit(X).predict(X)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A Dask array when X is a Dask array: lazy, or for small data (read
            into memory to be fitted, and labelled there) those labels in X's row
            chunks.
        """
        return self._fit_or_restore(X, sample_weight, labels=True)

    def _fit(self, X, sample_weight, labels):
        _validation.check_bayesian_hyperparameters(self)
        if is_source(X):
            return self._fit_source(X, sample_weight, labels)
        X = _validation.check_data(self, X, reset=True, ensure_min_samples=2)
        n_samples = X.shape[0]
        sample_weight = _validation.check_sample_weight(sample_weight, n_samples,
                                                        normalise=False)
        n_present = _sources.count_positive(sample_weight)
        _validation.check_n_present(n_present, n_samples, self.n_components)
        return self._fit_data(_driver.as_source(X, sample_weight), labels)

    def _fit_chunked(self, source, labels):
        self._scan(source)
        # the weights as given: their scale matters here (no normalisation)
        return self._fit_data(source, labels)

    def _fit_data(self, source, labels):
        """The fit proper, from a checked source (in memory, streamed or Dask)."""
        n_features = source.shape[1]
        # Data whose spread is beyond 2**+-400 (float32: 2**+-40) is fitted as
        # X * 2**-exponent, as fastem.GaussianMixture does (exact: a power of two).
        exponent = _driver.scale_exponent(source, float(self.reg_covar))
        fitted = source.scaled(-exponent) if exponent else source
        block_size = self._block_size(source)
        priors = self._resolve_priors(fitted, block_size, exponent)
        warm = self.warm_start and hasattr(self, "converged_")
        if warm:
            self._check_warm_start(n_features)
        scaling = _Scaling(exponent, n_features, self.covariance_type,
                           math.ldexp(float(self.reg_covar), -2 * exponent))
        random_state = _driver.LazyRandomState(self.random_state)
        with thread_limit(self._threads(source, block_size)):
            best = self._fit_restarts(fitted, priors, warm, random_state, block_size,
                                      scaling)
            best.posterior = scaling.to_data(best.posterior)
            self._set_result(best)
            if not labels:
                return None
            return self._labels(source, block_size)

    def _resolve_priors(self, source, block_size, exponent=0):
        """Check the priors, set the ``*_prior_`` attributes (in the data's units),
        and return the priors for the source, which is the data * 2**-exponent.

        The default mean and covariance priors are the weighted mean and the
        frequency-weighted covariance (divided by sum w - 1: ``np.cov(X.T)``
        for unit weights), summed per block in block order."""
        n_features = source.shape[1]
        covariance_type = self.covariance_type
        if self.mean_prior is None or self.covariance_prior is None:
            data_mean, scatter, total = _driver.weighted_mean_and_scatter(source,
                                                                          block_size)
            if self.covariance_prior is None and not total > 1.0:
                raise ValueError(
                    f"sample_weight sums to {total:.6g}, but the default "
                    "covariance_prior (the data's covariance, divided by the total "
                    "weight - 1) needs a total weight above 1. Scale sample_weight "
                    "(an integer weight counts a row that many times) or give "
                    "covariance_prior."
                )
            data_covariance = scatter / (total - 1.0)
        if self.mean_prior is None:
            mean = data_mean
        else:
            mean = np.ldexp(_validation.check_mean_prior(self.mean_prior, n_features),
                            -exponent)
        if self.covariance_prior is None:
            covariance = {
                "full": data_covariance,
                "tied": data_covariance,
                "diag": np.diag(data_covariance).copy(),
                "spherical": np.float64(np.diag(data_covariance).mean()),
            }[covariance_type]
        else:
            covariance = np.ldexp(
                _validation.check_covariance_prior(self.covariance_prior, covariance_type,
                                                   n_features),
                -2 * exponent,
            )
        if self.degrees_of_freedom_prior is not None:
            _validation.check_degrees_of_freedom_prior(self.degrees_of_freedom_prior,
                                                       n_features)
        self.weight_concentration_prior_ = (
            1.0 / self.n_components if self.weight_concentration_prior is None
            else self.weight_concentration_prior
        )
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else self.mean_precision_prior
        )
        self.degrees_of_freedom_prior_ = (
            n_features if self.degrees_of_freedom_prior is None
            else self.degrees_of_freedom_prior
        )
        with np.errstate(over="ignore", under="ignore"):  # then the fit reports it
            self.mean_prior_ = np.ldexp(mean, exponent)
            self.covariance_prior_ = np.ldexp(covariance, 2 * exponent)
        return _Priors(
            float(self.weight_concentration_prior_),
            float(self.mean_precision_prior_),
            mean,
            float(self.degrees_of_freedom_prior_),
            covariance,
        )

    def _fit_restarts(self, source, priors, warm, random_state, block_size, scaling):
        """Run the initialisations (one when warm); return the best _Result (its
        posterior for X, its lower bounds in the data's units)."""
        best = None
        failures = []
        n_init = 1 if warm else self.n_init
        for init in range(n_init):
            if self.verbose:
                print(f"Initialization {init}")
                self._init_start = self._iteration_start = time.time()
            try:
                if warm:
                    posterior = scaling.to_unit(self._posterior())
                    lower_bound = self.lower_bound_
                else:
                    posterior = self._initial_posterior(source, priors, random_state,
                                                        scaling.reg_covar, block_size)
                    lower_bound = -np.inf
                if self.max_iter == 0:
                    result = _Result(posterior, -np.inf, [], 0, False)
                else:
                    result = self._iterate(source, priors, posterior, lower_bound,
                                           block_size, scaling)
            except _Breakdown as error:
                failures.append(f"initialization {init}: {error}")
                continue
            if self.max_iter == 0:
                best = result  # scikit-learn keeps the last start
                continue
            if best is None or result.lower_bound > best.lower_bound or (
                best.lower_bound == -np.inf
            ):
                best = result
        if best is None:
            raise ValueError(
                "Every initialization of the variational fit broke down ("
                + "; ".join(failures)
                + "). Check the data for extreme values or constant features, increase "
                "reg_covar, give a positive definite covariance_prior, or take priors "
                "of ordinary size (a lower bound that is not finite: a prior such as "
                "degrees_of_freedom_prior near float64's largest number)."
            )
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        return best

    def _initial_posterior(self, source, priors, random_state, reg_covar, block_size):
        """The posterior of the start (scikit-learn's in memory; the sampled k-means
        start on streamed and Dask data or with init_sample_size: see
        ``_driver.start_parameters``, whose flags of empty components are not
        needed here: the prior gives such a component a proper posterior)."""
        settings = SimpleNamespace(
            n_components=self.n_components, covariance_type=self.covariance_type,
            init_params=self.init_params, init_sample_size=self.init_sample_size,
            reg_covar=reg_covar, block_size=block_size,
        )
        weights, xk, sk, _ = _driver.start_parameters(source, settings, random_state)
        nk = weights * source.total_weight(block_size)  # the padded counts
        return _update(nk, xk, sk, priors, self.covariance_type,
                       self.weight_concentration_prior_type)

    def _iterate(self, source, priors, posterior, lower_bound, block_size, scaling):
        """Variational E- and M-steps until the lower bound (in the data's units)
        changes by less than tol."""
        covariance_type = self.covariance_type
        prior_type = self.weight_concentration_prior_type
        features = _features_column(source.shape[1])
        reg_covar = scaling.reg_covar
        tol = self.tol
        lower_bounds = []
        converged = False
        # the offsets of the posterior the E-step starts from; afterwards each
        # posterior's offsets come with its lower bound terms (_posterior_terms)
        offsets, _ = _posterior_terms(posterior, prior_type, covariance_type, features,
                                      bound=False)
        for n_iter in range(1, self.max_iter + 1):
            previous = lower_bound
            statistics = _driver.source_statistics(
                source, self._parameters_of(posterior), covariance_type, block_size,
                log_weights=offsets, with_entropy=True,
            )
            posterior = _update(*_gaussian_statistics(statistics, covariance_type, reg_covar),
                                priors, covariance_type, prior_type)
            offsets, bound_terms = _posterior_terms(posterior, prior_type,
                                                    covariance_type, features)
            lower_bound = (_lower_bound(statistics.resp_log_resp, bound_terms)
                           - scaling.bound_offset(posterior))
            if not math.isfinite(lower_bound):
                raise _Breakdown(f"the lower bound is {lower_bound} at iteration {n_iter}")
            lower_bounds.append(lower_bound)
            self._print_iteration(n_iter, lower_bound - previous)
            if abs(lower_bound - previous) < tol:
                converged = True
                break
        self._print_init_end(converged, lower_bound)
        return _Result(posterior, lower_bound, lower_bounds, len(lower_bounds), converged)

    def _print_iteration(self, n_iter, change):
        if not self.verbose or n_iter % self.verbose_interval:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
            return
        now = time.time()
        print(f"  Iteration {n_iter}\t time lapse {now - self._iteration_start:.5f}s\t "
              f"ll change {change:.5f}")
        self._iteration_start = now

    def _print_init_end(self, converged, lower_bound):
        if not self.verbose:
            return
        message = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {message}.")
        else:
            print(f"Initialization {message}. time lapse "
                  f"{time.time() - self._init_start:.5f}s\t lower bound {lower_bound:.5f}.")

    def _threads(self, X, block_size):
        """n_threads, or 1 when X is one block: a parallel launch of a single
        block only wakes threads that have nothing to do (per iteration, that
        cost more than the work on small data)."""
        return 1 if block_size >= X.shape[0] else self.n_threads

    def _set_result(self, result):
        posterior = result.posterior
        prior_type = self.weight_concentration_prior_type
        self.weight_concentration_ = posterior.weight_concentration
        self.mean_precision_ = posterior.mean_precision
        self.means_ = posterior.means
        self.degrees_of_freedom_ = posterior.degrees_of_freedom
        self.covariances_ = posterior.covariances
        self.precisions_cholesky_ = posterior.precisions_chol
        self.weights_ = _mixture_weights(posterior.weight_concentration, prior_type)
        self.precisions_ = _driver.precisions_from_cholesky(
            posterior.precisions_chol, self.covariance_type
        )
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = result.lower_bounds
        self._fitted_covariance_type = self.covariance_type

    def _posterior(self):
        """The fitted posterior (for a warm start and inference; shapes checked)."""
        check_fitted_shapes(self)
        return _Posterior(
            self.weight_concentration_,
            np.asarray(self.mean_precision_, dtype=np.float64),
            np.array(self.means_, dtype=np.float64),
            self.degrees_of_freedom_,
            np.array(self.covariances_, dtype=np.float64),
            np.array(self.precisions_cholesky_, dtype=np.float64),
        )

    @staticmethod
    def _parameters_of(posterior):
        """The kernels' Parameters (the weights are replaced by the offsets)."""
        n_components = len(posterior.mean_precision)
        return _driver.Parameters(
            np.full(n_components, 1.0 / n_components),
            posterior.means,
            posterior.covariances,
            posterior.precisions_chol,
        )

    def __sklearn_is_fitted__(self):
        # not merely any attribute ending in "_": a fit that failed its checks
        # has set n_features_in_ and the priors, but no posterior
        return hasattr(self, "converged_")

    # ------------------------------------------------------------------
    # inference

    def _inference_model(self):
        """(Parameters, covariance_type, offsets) of the inference kernels: the
        posterior's means and precision factors, and its E-step offsets in place
        of the log weights."""
        posterior = self._posterior()
        offsets = _log_weight_offsets(posterior, self.weight_concentration_prior_type,
                                      self.means_.shape[1])
        return self._parameters_of(posterior), self.covariance_type, offsets

    def _estimate(self, X, function):
        """Validate X and apply a driver function with the variational offsets."""
        check_is_fitted(self)
        X = _validation.check_data(self, X, reset=False)
        parameters, covariance_type, log_weights = self._inference_model()
        block_size = self._block_size(X)
        with thread_limit(self._threads(X, block_size)):
            return function(X, parameters, covariance_type, block_size, log_weights)

    def score_samples(self, X):
        """Per-sample log of the variational weighted probabilities' sum.

        As scikit-learn's: ``logsumexp_k`` of the expected log weights plus
        the expected log-densities (a lower bound of log p(x), not log p(x)
        itself).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, streamed or a Dask array, as in :meth:`fit`.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            A lazy Dask array when X is a Dask array.
        """
        result, X = self._estimate_source(X, "log_prob")
        if result is not None:
            return result
        return logsumexp(self._estimate(X, _driver.estimate_weighted_log_prob), axis=1)

    def score(self, X, y=None):
        """Mean of :meth:`score_samples` over X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        return self._mean_score(X)

    def predict_proba(self, X):
        """Posterior probability (responsibility) of each component for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, streamed or a Dask array, as in :meth:`fit`.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Rows sum to one. A lazy Dask array when X is a Dask array.
        """
        result, X = self._estimate_source(X, "resp")
        if result is not None:
            return result
        _, log_resp = self._estimate(X, _driver.estimate_log_prob_resp)
        return np.exp(log_resp)

    def predict(self, X):
        """Most probable component of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            In memory, streamed or a Dask array, as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy Dask array when X is a Dask array.
        """
        result, X = self._estimate_source(X, "labels")
        if result is not None:
            return result
        return self._estimate(X, _driver.estimate_labels)

    sample = GaussianMixture.sample
