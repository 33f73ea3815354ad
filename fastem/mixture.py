"""The scikit-learn compatible estimator :class:`GaussianMixture`."""

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastem import _validation
from fastem._estimator import SourcesMixin, check_fitted_shapes, is_source
from fastem.em import driver as _driver
from fastem.em import sources as _sources
from fastem.em.driver import SingularCovarianceError, SingularCovarianceWarning
from fastem.kernels.threads import thread_limit

__all__ = ["GaussianMixture", "SingularCovarianceError", "SingularCovarianceWarning"]


class GaussianMixture(SourcesMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture model fitted by expectation-maximisation.

    A drop-in for :class:`sklearn.mixture.GaussianMixture` (same constructor
    parameters, methods and fitted attributes) whose per-sample work runs in
    parallel numba kernels. It adds per-sample weights, a singular-covariance
    fallback, and control of threads and chunking.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        'full': each component has its own covariance matrix; 'tied': one
        shared matrix; 'diag': each component a diagonal matrix; 'spherical':
        each component a single variance.
    tol : float, default=1e-3
        Convergence threshold: EM stops when the change of the mean per-sample
        log-likelihood between iterations is below ``tol``.
    reg_covar : float, default=1e-6
        Non-negative value added to the diagonal of every covariance.
    max_iter : int, default=100
        Maximum number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the one with the largest final
        log-likelihood is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How the initial responsibilities are chosen, as in scikit-learn.
    weights_init : array-like of shape (n_components,), default=None
        Initial weights (overrides ``init_params`` for the weights).
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped by ``covariance_type``
        as in scikit-learn: (n_components,), (n_features, n_features),
        (n_components, n_features) or (n_components, n_features, n_features).
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation and of ``sample``.
    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous solution (``n_init`` is
        then ignored after the first fit).
    verbose : int or bool, default=0
        1 prints the initialisation and every ``verbose_interval``-th
        iteration; 2 also prints the log-likelihood change.
    verbose_interval : int, default=10
        Iterations between two progress messages.
    on_singular : {'recover', 'raise'}, default='recover'
        What to do when a component's covariance is not positive definite
        after ``reg_covar`` (or a component loses all its mass). 'recover'
        raises that component's diagonal loading tenfold at a time (to the first
        loading above 1e-3 times the data's mean variance), then, if that is
        not enough, re-seeds it at a data point with the data's covariance; one
        :class:`SingularCovarianceWarning` per fit says so, and
        ``singular_events_`` lists every repair. 'raise' stops with a
        ``ValueError`` as scikit-learn does.
    n_threads : int or None, default=None
        Threads used by the kernels during this estimator's calls; None uses
        ``NUMBA_NUM_THREADS`` (by default the number of CPUs). Results do not
        depend on it.
    chunk_size : int or None, default=None
        Rows per block. None picks it from the data's shape (up to
        64 blocks, partial statistics kept under 1/16 of the data's size, at
        most 8 MiB of X per block). Results depend on it only through
        floating-point summation order.
    init_sample_size : int or None, default=None
        'kmeans' and 'k-means++' starts computed from a seeded uniform sample
        of this many rows (k-means on the sample, then one pass over all the
        data to give every row to its nearest centre). None: scikit-learn's
        start from all the data when X is in memory, and a sample of 100,000
        rows for data streamed from disk or held by Dask (which always start
        from a sample). The same value gives the same start, bit for bit,
        from every kind of X.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        Shaped by ``covariance_type`` as in scikit-learn.
    precisions_ : ndarray
        Inverses of the covariances, same shape.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions (upper triangular for 'full' and
        'tied'), same shape.
    converged_ : bool
    n_iter_ : int
        Iterations of the best initialisation.
    lower_bound_ : float
        Mean per-sample log-likelihood of the best initialisation (its last
        iteration), as scikit-learn reports it.
    lower_bounds_ : list of float
        The same, at every iteration of the best initialisation.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.
    singular_events_ : list of dict
        One dict per repair of a singular or empty component (restart,
        iteration, component, action, and the loading or the reason).
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        on_singular="recover",
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
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.on_singular = on_singular
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.init_sample_size = init_sample_size

    # ------------------------------------------------------------------
    # fitting

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with the EM algorithm.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, float32 or float64 (integers are converted to
            float64). Never modified. Besides arrays in memory: an
            ``np.memmap`` (e.g. ``np.load(path, mmap_mode="r")``), an
            ``h5py.Dataset``, a ``zarr.Array`` or any object with ``shape``,
            ``dtype``, ``ndim`` and row slicing is read block by block (memory
            independent of n_samples), and a ``dask.array.Array`` is fitted on
            its scheduler (the active ``distributed.Client``, else dask's
            default), one graph per EM iteration.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights. An integer weight is equivalent to repeating
            the row that many times; a zero weight to leaving it out. With a
            streamed or Dask X, an array-like (or Dask array) read the same way.

        Returns
        -------
        self : GaussianMixture
        """
        self._fit_or_restore(X, sample_weight, labels=False)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model and return the most probable component of each sample.

        Equivalent to ``fit(X).predict(X)`` (a final E-step is run with the
        chosen parameters).

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
        """Fit; with ``labels`` also run the final labelling pass and return its result.

        ``fit`` skips that pass: it only serves the returned labels (the fitted
        parameters are the same either way).
        """
        _validation.check_hyperparameters(self)
        if is_source(X):
            return self._fit_source(X, sample_weight, labels)
        X = _validation.check_data(self, X, reset=True, ensure_min_samples=2)
        n_samples, n_features = X.shape
        sample_weight = _validation.check_sample_weight(sample_weight, n_samples)
        n_present = _sources.count_positive(sample_weight)
        _validation.check_n_present(n_present, n_samples, self.n_components)
        return self._fit_data(_driver.as_source(X, sample_weight), labels)

    def _fit_chunked(self, source, labels):
        block_size = self._scan(source)
        return self._fit_data(source.with_weight_exponent(source.weight_exponent(block_size)),
                              labels)

    def _fit_data(self, source, labels):
        """The fit proper, from a checked source; the final labels with ``labels``.

        (The final labelling pass, as scikit-learn's, so that the labels agree
        with fit().predict(): one pass, no (n_samples, K) arrays.)
        """
        settings = self._settings(source)
        warm = self.warm_start and hasattr(self, "converged_")
        if warm:
            self._check_warm_start(source.shape[1])
        random_state = _driver.LazyRandomState(self.random_state)
        with thread_limit(self.n_threads):
            result = _driver.fit(
                source, None, settings, random_state,
                warm_parameters=self._parameters() if warm else None,
                warm_lower_bound=self.lower_bound_ if warm else None,
            )
            self._set_result(result)
            if not labels:
                return None
            return self._labels(source, settings.block_size)

    def _settings(self, X):
        n_features = X.shape[1]
        k = self.n_components
        weights_init = means_init = precisions_init = None
        if self.weights_init is not None:
            weights_init = _validation.check_weights_init(self.weights_init, k)
        if self.means_init is not None:
            means_init = _validation.check_means_init(self.means_init, k, n_features)
        if self.precisions_init is not None:
            precisions_init = _validation.check_precisions_init(
                self.precisions_init, self.covariance_type, k, n_features
            )
        return _driver.FitSettings(
            n_components=k,
            covariance_type=self.covariance_type,
            tol=float(self.tol),
            reg_covar=float(self.reg_covar),
            max_iter=self.max_iter,
            n_init=self.n_init,
            init_params=self.init_params,
            weights_init=weights_init,
            means_init=means_init,
            precisions_init=precisions_init,
            on_singular=self.on_singular,
            verbose=self.verbose,
            verbose_interval=self.verbose_interval,
            block_size=self._block_size(X),
            init_sample_size=self.init_sample_size,
            # per-iteration callback (n_iter, lower_bound, change, seconds), set by
            # the command line's progress line; not a constructor parameter
            progress=getattr(self, "_progress", None),
        )

    def _set_result(self, result):
        parameters = result.parameters
        self.weights_ = parameters.weights
        self.means_ = parameters.means
        self.covariances_ = parameters.covariances
        self.precisions_cholesky_ = parameters.precisions_chol
        self.precisions_ = result.precisions
        if self.precisions_ is None:
            self.precisions_ = _driver.precisions_from_cholesky(
                parameters.precisions_chol, self.covariance_type
            )
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = result.lower_bounds
        self.singular_events_ = result.singular_events
        self._fitted_covariance_type = self.covariance_type

    def _parameters(self):
        """The fitted parameters as the driver takes them (their shapes checked)."""
        check_fitted_shapes(self)
        return _driver.Parameters(
            np.array(self.weights_, dtype=np.float64),
            np.array(self.means_, dtype=np.float64),
            np.array(self.covariances_, dtype=np.float64),
            np.array(self.precisions_cholesky_, dtype=np.float64),
        )

    # ------------------------------------------------------------------
    # inference

    def _estimate(self, X, function):
        """Validate X and apply a driver function (X, parameters, type, block size)."""
        check_is_fitted(self)
        X = _validation.check_data(self, X, reset=False)
        with thread_limit(self.n_threads):
            return function(X, self._parameters(), self.covariance_type, self._block_size(X))

    def _weighted_log_prob(self, X):
        return self._estimate(X, _driver.estimate_weighted_log_prob)

    def _inference_model(self):
        return self._parameters(), self.covariance_type, None

    def score_samples(self, X):
        """Log-likelihood of each sample, log p(x).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            A lazy Dask array when X is a Dask array.
        """
        result, X = self._estimate_source(X, "log_prob")
        if result is not None:
            return result
        return logsumexp(self._weighted_log_prob(X), axis=1)

    def score(self, X, y=None):
        """Mean per-sample log-likelihood of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        return self._mean_score(X)

    def predict_proba(self, X):
        """Posterior probability of each component for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

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

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy Dask array when X is a Dask array.
        """
        result, X = self._estimate_source(X, "labels")
        if result is not None:
            return result
        return self._estimate(X, _driver.estimate_labels)

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each sample.
        """
        check_is_fitted(self)
        check_fitted_shapes(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires "
                "at least one sample."
            )
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        n_features = self.means_.shape[1]
        if self.covariance_type in ("full", "tied"):
            covariances = (
                self.covariances_
                if self.covariance_type == "full"
                else [self.covariances_] * len(self.weights_)
            )
            # The covariances are positive definite by construction; numpy's check
            # (absolute and relative tolerances of 1e-8 on the entries) would warn
            # about ill-conditioned ones at large scales. Same draws as with it.
            blocks = [
                rng.multivariate_normal(mean, covariance, int(count), check_valid="ignore")
                for mean, covariance, count in zip(self.means_, covariances, counts)
            ]
        else:
            blocks = [
                mean + rng.standard_normal(size=(int(count), n_features)) * np.sqrt(variance)
                for mean, variance, count in zip(self.means_, self.covariances_, counts)
            ]
        labels = np.concatenate(
            [np.full(int(count), k, dtype=np.int64) for k, count in enumerate(counts)]
        )
        return np.vstack(blocks).astype(np.float64), labels

    # ------------------------------------------------------------------
    # model selection

    def _n_parameters(self):
        n_features = self.means_.shape[1]
        k = self.n_components
        if self.covariance_type == "full":
            covariance_params = k * n_features * (n_features + 1) / 2.0
        elif self.covariance_type == "diag":
            covariance_params = k * n_features
        elif self.covariance_type == "tied":
            covariance_params = n_features * (n_features + 1) / 2.0
        else:
            covariance_params = k
        return int(covariance_params + k * n_features + k - 1)

    def bic(self, X):
        """Bayesian information criterion of the model on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        n_samples = np.shape(X)[0]
        return -2 * self.score(X) * n_samples + self._n_parameters() * np.log(n_samples)

    def aic(self, X):
        """Akaike information criterion of the model on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        return -2 * self.score(X) * np.shape(X)[0] + 2 * self._n_parameters()
