"""Model selection: :class:`GaussianMixtureIC` fits a grid of mixtures, keeps the best.

The grid is n_components x covariance type, as R's ``mclust::Mclust`` fits it;
the best cell is chosen by BIC, AIC or ICL, in scikit-learn's sign (lower is
better).
"""

from __future__ import annotations

import math
import numbers
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from fastem import _validation
from fastem._estimator import fit_or_restore
from fastem.em import driver as _driver
from fastem.em import sources as _sources
from fastem.em.driver import COVARIANCE_TYPES, SingularCovarianceWarning
from fastem.mixture import GaussianMixture

__all__ = ["CRITERIA", "GaussianMixtureIC", "SelectionResults", "hc_labels"]

CRITERIA = ("bic", "aic", "icl")
INIT_PARAMS = ("hc", "kmeans", "k-means++", "random", "random_from_data")
#: Rows of the subsample the hierarchical start is built on (mclust's default subset).
HC_MAX_SAMPLES = 2000
#: Columns of :meth:`SelectionResults.to_frame`, in order.
RESULT_FIELDS = (
    "n_components",
    "covariance_type",
    "status",
    "reason",
    "bic",
    "aic",
    "icl",
    "log_likelihood",
    "n_parameters",
    "converged",
    "n_iter",
    "n_repairs",
    "fit_seconds",
)
_CELL_STATUSES = ("ok", "degenerate", "failed", "skipped")


class SelectionResults(list):
    """One record (a dict) per grid cell, in grid order; a list with extras.

    Every record has the keys of ``RESULT_FIELDS``:

    - ``n_components``, ``covariance_type``: the cell;
    - ``status``: 'ok'; 'degenerate' (every restart needed a singular-covariance
      repair; not eligible for the choice while an 'ok' cell exists);
      'failed' (the fit raised; ``reason`` holds its message) or 'skipped'
      (more free parameters than data values, n_samples x n_features, or more
      components than samples);
    - ``reason``: why a cell is not 'ok' ('' when it is);
    - ``bic``, ``aic``, ``icl``, ``log_likelihood`` (total, weighted by
      ``sample_weight``): NaN for skipped cells and for cells whose fit raised;
      a cell failed for a non-finite log-likelihood keeps its values;
    - ``n_parameters``, ``converged``, ``n_iter``, ``n_repairs`` (repairs of
      the kept restart), ``fit_seconds`` (all restarts of the cell).
    """

    def to_frame(self):
        """The records as a :class:`pandas.DataFrame` (needs pandas).

        Returns
        -------
        frame : pandas.DataFrame
            One row per cell, columns ``RESULT_FIELDS``.
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "SelectionResults.to_frame() needs pandas; install it with "
                "`pip install pandas`, or read the records as dicts"
            ) from exc
        return pd.DataFrame(
            [dict(record) for record in self], columns=list(RESULT_FIELDS)
        )

    def table(self, criterion="bic"):
        """The criterion as a grid: rows n_components, columns covariance types.

        Parameters
        ----------
        criterion : {'bic', 'aic', 'icl', 'log_likelihood'}, default='bic'

        Returns
        -------
        n_components : list of int
            Row labels, increasing.
        covariance_types : list of str
            Column labels, in the order of the grid.
        values : ndarray of shape (len(n_components), len(covariance_types))
            NaN where the cell was skipped or its fit raised.
        """
        rows = sorted({record["n_components"] for record in self})
        columns = list(dict.fromkeys(record["covariance_type"] for record in self))
        values = np.full((len(rows), len(columns)), np.nan)
        for record in self:
            values[
                rows.index(record["n_components"]),
                columns.index(record["covariance_type"]),
            ] = record[criterion]
        return rows, columns, values


def _usable_cpus():
    """CPUs this process may run on (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _as_n_components(value):
    """The tuple of distinct component counts, in increasing order."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = [value]
    else:
        try:
            values = list(value)
        except TypeError:
            raise _validation.InvalidParameterError(
                "n_components must be an integer or an iterable of integers such as "
                f"range(1, 10), got {value!r}."
            ) from None
    if not values:
        raise _validation.InvalidParameterError(
            "n_components is empty; give at least one component count.")
    for count in values:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral):
            raise _validation.InvalidParameterError(
                f"n_components must hold integers, got {count!r}.")
        if count < 1:
            raise _validation.InvalidParameterError(
                f"n_components must be >= 1, got {count}.")
    return tuple(sorted({int(count) for count in values}))


def _as_covariance_types(value):
    if isinstance(value, str):
        value = (value,)
    try:
        values = list(value)
    except TypeError:
        raise _validation.InvalidParameterError(
            f"covariance_types must be a sequence of strings, got {value!r}."
        ) from None
    if not values:
        raise _validation.InvalidParameterError(
            "covariance_types is empty; give one or more of "
            + ", ".join(COVARIANCE_TYPES)
        )
    for covariance_type in values:
        if covariance_type not in COVARIANCE_TYPES:
            raise _validation.InvalidParameterError(
                f"covariance_types holds {covariance_type!r}; each must be one of "
                + ", ".join(map(repr, COVARIANCE_TYPES))
                + "."
            )
    return tuple(dict.fromkeys(values))


def n_parameters(n_components, covariance_type, n_features):
    """Free parameters of a mixture, as :meth:`GaussianMixture.bic` counts them."""
    k, d = n_components, n_features
    covariance = {
        "full": k * d * (d + 1) / 2.0,
        "diag": k * d,
        "tied": d * (d + 1) / 2.0,
        "spherical": k,
    }[covariance_type]
    return int(covariance + k * d + k - 1)


# --------------------------------------------------------------------------
# the hierarchical (mclust-style) start


def _svd_transform(X):
    """mclust's default 'SVD' transformation for its hierarchical start.

    Columns centred and scaled to unit variance (constant ones dropped), rotated
    onto their principal axes, and each axis divided by the square root of its
    singular value (``hcUse = "SVD"``, mclust's default since 5.4).
    """
    magnitude = np.max(np.abs(X)) if X.size else 0.0
    if magnitude > 0:
        X = X / magnitude  # no overflow in the squares below, whatever the scale
    centred = X - X.mean(axis=0)
    spread = centred.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    varying = spread > 0
    if not np.any(varying):
        return centred
    scaled = centred[:, varying] / spread[varying]
    _, singular_values, vt = np.linalg.svd(scaled, full_matrices=False)
    keep = singular_values > singular_values[0] * 1e-12
    return (scaled @ vt[keep].T) / np.sqrt(singular_values[keep])


def hc_labels(X, n_components, random_state=None, max_samples=HC_MAX_SAMPLES):
    """Partitions from model-based agglomerative clustering, cut at each count.

    The merge criterion is the classification likelihood of the spherical,
    equal-volume model (mclust's 'EII' hierarchical clustering, which is Ward's
    criterion), applied to the data after mclust's default 'SVD'
    transformation; on more than ``max_samples`` rows, to a random subsample of
    that many rows (mclust's default subset is also 2000 rows).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : sequence of int
    random_state : int, RandomState instance or None
        Draws the subsample (unused when ``n_samples <= max_samples``).
    max_samples : int, default=2000

    Returns
    -------
    rows : ndarray of int
        Indices of the rows the tree was built on.
    labels : dict
        ``labels[k]``: ndarray of shape (len(rows),) with values in [0, k).
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n_samples = X.shape[0]
    if n_samples > max_samples:
        rows = np.sort(
            check_random_state(random_state).choice(
                n_samples, max_samples, replace=False
            )
        )
    else:
        rows = np.arange(n_samples)
    data = _svd_transform(np.asarray(X[rows], dtype=np.float64))
    labels = {}
    if len(rows) < 2:
        return rows, {k: np.zeros(len(rows), dtype=np.intp) for k in n_components}
    tree = linkage(data, method="ward")
    for k in n_components:
        cut = fcluster(tree, t=min(k, len(rows)), criterion="maxclust") - 1
        labels[k] = _complete_labels(cut, k, data)
    return rows, labels


def _complete_labels(labels, n_components, data):
    """Labels in [0, k) using every label (ties in the tree can merge more)."""
    labels = np.unique(labels, return_inverse=True)[1].astype(np.intp)
    n_found = labels.max() + 1
    while n_found < min(n_components, len(labels)):
        # split the largest cluster by its point farthest from its mean
        largest = np.bincount(labels).argmax()
        members = np.flatnonzero(labels == largest)
        distance = ((data[members] - data[members].mean(axis=0)) ** 2).sum(axis=1)
        labels[members[int(np.argmax(distance))]] = n_found
        n_found += 1
    return labels


def _hc_start(X, sample_weight, rows, labels, n_components, covariance_type, reg_covar):
    """weights, means and precisions of the M-step from a hierarchical partition.

    Clusters too small to estimate their own covariance (fewer than
    n_features + 1 rows for 'full', fewer than 2 otherwise) get the pooled
    within-cluster covariance of the partition instead (its diagonal for 'diag',
    the mean of that for 'spherical'), or the data's covariance when every
    cluster is that small.
    """
    subset = X[rows]
    weight = sample_weight[rows]
    resp_of = _driver._one_hot(labels, n_components)
    weights, means, covariances = _driver.parameters_from_resp(
        subset, weight, resp_of, n_components, covariance_type, reg_covar
    )
    n_features = X.shape[1]
    sizes = np.bincount(labels, minlength=n_components)
    small = sizes < (n_features + 1 if covariance_type == "full" else 2)
    if covariance_type != "tied" and np.any(small):
        if np.all(small):  # no cluster to pool from: the data's own covariance
            labels, n_groups = np.zeros_like(labels), 1
        else:
            n_groups = n_components
        _, _, pooled = _driver.parameters_from_resp(
            subset,
            weight,
            _driver._one_hot(labels, n_groups),
            n_groups,
            "tied",
            reg_covar,
        )
        if covariance_type == "diag":
            pooled = np.diag(pooled).copy()
        elif covariance_type == "spherical":
            pooled = float(np.mean(np.diag(pooled)))
        for k in np.flatnonzero(small):
            covariances[k] = pooled
    precisions_chol = _driver.precision_cholesky(covariances, covariance_type)
    if precisions_chol is None:
        raise ValueError("a starting covariance is not positive definite")
    precisions = _driver.precisions_from_cholesky(precisions_chol, covariance_type)
    if not all(np.all(np.isfinite(a)) for a in (weights, means, precisions)):
        raise ValueError("the starting parameters are not finite in float64")
    return weights, means, precisions


# --------------------------------------------------------------------------
# the estimator


class GaussianMixtureIC(DensityMixin, BaseEstimator):
    """Gaussian mixtures over a grid of component counts and covariance types.

    Fits one :class:`fastem.GaussianMixture` per cell (n_components x
    covariance type), records every cell's information criteria in
    ``results_`` and keeps the best cell, by ``criterion``, as
    ``best_estimator_``: R's ``mclust::Mclust`` for scikit-learn.

    Sign conventions are scikit-learn's: lower BIC, AIC and ICL are better.
    mclust reports BIC and ICL with the opposite sign (higher is better):
    ``BIC_mclust = -BIC_fastem`` and ``ICL_mclust = -ICL_fastem``. The
    covariance types correspond to mclust's models as 'spherical' = VII,
    'diag' = VVI, 'tied' = EEE, 'full' = VVV.

    Parameters
    ----------
    n_components : int or iterable of int, default=(1, 2, ..., 9)
        Component counts to try (``range(1, 10)`` works as well; the default is
        a tuple because scikit-learn's checks want immutable defaults).
    covariance_types : str or sequence of str, \
            default=('spherical', 'diag', 'tied', 'full')
        Covariance types to try.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        How cells are compared. ICL is BIC plus the entropy of the hard
        classification, mclust's definition in scikit-learn's sign:
        ``ICL = BIC - 2 * sum_i w_i log max_k r_ik``.
    n_init : int, default=2
        EM runs per cell; the one with the largest log-likelihood among those
        that needed no singular-covariance repair is kept.
    init_params : {'hc', 'kmeans', 'k-means++', 'random', 'random_from_data'}, \
            default='hc'
        Start of the first run of every cell. 'hc' is mclust's start: the
        partition at k clusters of one model-based agglomerative clustering of
        the data (spherical merge criterion, i.e. Ward's, after mclust's 'SVD'
        transformation; on a subsample of 2000 rows for larger data), whose
        M-step gives the cell's starting parameters. The other values are
        :class:`GaussianMixture`'s. With 'hc', runs after the first
        (``n_init > 1``) start from k-means, and so does the first where the
        partition gives no usable start (e.g. covariances that overflow float64).

        The defaults (one hierarchical and one k-means start per cell) reached
        mclust's choice, or a model with a criterion within 0.1% of mclust's
        best or better, by BIC and by ICL on the six data sets of
        ``benchmarks/selection_quality.py``; one k-means start per cell (the
        hand-written scikit-learn loop, ``init_params='kmeans', n_init=1``)
        missed on Old Faithful and wine, one hierarchical start alone on
        banknote's ICL.
    tol, reg_covar, max_iter, on_singular, n_threads, chunk_size
        As in :class:`GaussianMixture`, for every cell.
    random_state : int, RandomState instance or None, default=None
        With an int ``s`` and a start other than 'hc', the first run of every
        cell is ``GaussianMixture(k, covariance_type=t, random_state=s, ...)``:
        exactly what a hand-written loop with that seed fits. Run ``r > 0`` uses a seed
        derived from ``(s, r)``. A RandomState or None draws ``s`` once per fit.
    n_jobs : int or None, default=None
        Cells fitted at the same time, in threads (the kernels release the
        GIL). None means 1; -1 means the number of CPUs, -2 all but one, and so
        on (joblib's convention). The result does not depend on it, to the bit.
    verbose : int or bool, default=0
        1 prints one line per cell as it finishes.

    Attributes
    ----------
    best_estimator_ : GaussianMixture
        The fitted model of the best cell.
    n_components_ : int
    covariance_type_ : str
    criterion_ : float
        The best cell's criterion value.
    results_ : SelectionResults
        One record per cell (see :class:`SelectionResults`), in the order
        n_components, then covariance type; ``results_.to_frame()`` gives a
        pandas DataFrame, ``results_.table('bic')`` the mclust-style grid.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when X had string column names.

    Notes
    -----
    A cell is skipped (with its reason) when it has more free parameters than
    data values (n_samples x n_features, where n_samples is the number of rows
    with positive weight or the sum of the weights if larger), or more
    components than rows with positive weight.
    A cell whose fit raises is recorded as 'failed' with the error message; one
    whose every run needed a singular-covariance repair as 'degenerate' (mclust
    would report NA there). Neither stops the grid; ``fit`` raises only when no
    cell could be fitted at all.

    Examples
    --------
    >>> import fastem
    >>> X = fastem.load_faithful()
    >>> search = fastem.GaussianMixtureIC(range(1, 5), random_state=0).fit(X)
    >>> search.n_components_, search.covariance_type_
    (3, 'tied')
    """

    def __init__(
        self,
        n_components=(1, 2, 3, 4, 5, 6, 7, 8, 9),
        covariance_types=("spherical", "diag", "tied", "full"),
        criterion="bic",
        *,
        n_init=2,
        init_params="hc",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        random_state=None,
        on_singular="recover",
        n_threads=None,
        chunk_size=None,
        n_jobs=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance_types = covariance_types
        self.criterion = criterion
        self.n_init = n_init
        self.init_params = init_params
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.random_state = random_state
        self.on_singular = on_singular
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------
    # checks

    def _check_parameters(self):
        counts = _as_n_components(self.n_components)
        types = _as_covariance_types(self.covariance_types)
        _validation._check_choice(self.criterion, "criterion", CRITERIA)
        _validation._check_choice(self.init_params, "init_params", INIT_PARAMS)
        _validation._check_integer(self.n_init, "n_init", 1)
        _validation.check_verbose(self.verbose)
        if self.n_jobs is not None:
            _validation._check_integer(self.n_jobs, "n_jobs", -math.inf)  # 0: below
            if self.n_jobs == 0:
                raise _validation.InvalidParameterError(
                    "n_jobs must be a positive integer, a negative one (-1: every "
                    "CPU, -2: all but one, ...) or None, got 0."
                )
        # the remaining GaussianMixture parameters, checked once here
        _validation.check_hyperparameters(self._cell_estimator(1, types[0], None))
        return counts, types

    def _n_workers(self, n_cells):
        if self.n_jobs is None:
            return 1
        n_jobs = int(self.n_jobs)
        if n_jobs < 0:  # joblib's convention: -1 every CPU, -2 all but one, ...
            n_jobs = _usable_cpus() + 1 + n_jobs
        return max(1, min(n_jobs, n_cells))

    def _cell_estimator(self, n_components, covariance_type, random_state, start=None):
        init = {}
        if start is not None:
            weights, means, precisions = start
            init = dict(
                weights_init=weights, means_init=means, precisions_init=precisions
            )
        init_params = "kmeans" if self.init_params == "hc" else self.init_params
        return GaussianMixture(
            n_components=n_components,
            covariance_type=covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=1,
            init_params=init_params,
            random_state=random_state,
            on_singular=self.on_singular,
            n_threads=self.n_threads,
            chunk_size=self.chunk_size,
            **init,
        )

    # ------------------------------------------------------------------
    # fitting

    def fit(self, X, y=None, sample_weight=None):
        """Fit every cell of the grid and keep the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, as :meth:`GaussianMixture.fit` accepts it.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, counts of rows: the log-likelihood is the
            weighted sum and the sample size in the BIC penalty is the sum of
            the weights, which must be above 1.

        Returns
        -------
        self : GaussianMixtureIC

        Raises
        ------
        ValueError
            If no cell of the grid could be fitted (the message gives each cell's
            reason), or if ``sample_weight`` sums to 1 or less. A fit that raises
            leaves the search as it was.
        """
        return self._fit(X, sample_weight)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the grid, then label X with the best model (``fit(X).predict(X)``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._fit(X, sample_weight).predict(X)

    def _fit(self, X, sample_weight, on_cell=None):
        """Fit; ``on_cell(done, total, record, best_record)`` after every cell. A fit
        that fails leaves the search as it was (the data checks set
        ``n_features_in_`` first)."""
        return fit_or_restore(self, self._fit_grid, X, sample_weight, on_cell)

    def _fit_grid(self, X, sample_weight, on_cell):
        counts, types = self._check_parameters()
        if _sources.is_streamable(X) and not hasattr(X, "__array__"):
            # a source with only shape, dtype and row slicing: read it in blocks
            # (h5py, zarr and memory maps are read by numpy in check_data)
            X = _sources.open_source(X).materialise().X
        X = _validation.check_data(self, X, reset=True, ensure_min_samples=2)
        n_samples, _n_features = X.shape
        if sample_weight is None:
            weight = _sources.unit_weights(n_samples)  # one 1.0 for every row
        else:
            _validation.check_sample_weight(sample_weight, n_samples)  # messages
            weight = np.array(sample_weight, dtype=np.float64)
            if not weight.sum() > 1.0:
                raise ValueError(
                    f"sample_weight sums to {weight.sum():.6g}; GaussianMixtureIC "
                    "takes weights as counts of rows, their sum as the sample size n "
                    "in the BIC's penalty p log(n), which needs n > 1. Scale the "
                    "weights to the number of samples they stand for."
                )
        # the cells' fits get the user's weights as given (None stays None, so a
        # cell is exactly the GaussianMixture a hand-written loop fits)
        fit_weight = None if sample_weight is None else weight
        n_present = _sources.count_positive(weight)
        base_seed = self._base_seed()
        hc = None
        if self.init_params == "hc":
            present = np.flatnonzero(weight > 0)
            rows, labels = hc_labels(
                X[present], [k for k in counts if k <= n_present], base_seed
            )
            hc = (present[rows], labels)

        cells = [(k, t) for k in counts for t in types]
        records = [None] * len(cells)
        models = [None] * len(cells)

        def run(index):
            k, covariance_type = cells[index]
            return self._fit_cell(
                X, weight, fit_weight, n_present, k, covariance_type, base_seed, hc
            )

        n_workers = self._n_workers(len(cells))
        best = None
        with warnings.catch_warnings():
            # every cell's outcome is in its record; one summary at the end
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", SingularCovarianceWarning)
            # Cells run in worker threads even when n_jobs is 1: on small data the
            # main thread's parallel launches (numba's and k-means' OpenMP) were
            # several times slower here (Old Faithful grid: 1.4-4.3 s in the main
            # thread, 0.16 s in one worker, same bits; 1e5-row fits equally fast).
            with ThreadPoolExecutor(max_workers=n_workers) as pool:
                futures = [pool.submit(run, index) for index in range(len(cells))]
                try:
                    for index, future in enumerate(futures):
                        records[index], models[index] = future.result()
                        best = self._report(index, records, best, on_cell, len(cells))
                except BaseException:  # e.g. KeyboardInterrupt: start no more cells
                    for future in futures:
                        future.cancel()
                    raise

        best = _best_index(records, self.criterion)
        if best is None:
            cells_of = {}
            for r in records:
                cells_of.setdefault(r["reason"], []).append(
                    f"{r['n_components']} {r['covariance_type']}"
                )
            reasons = "; ".join(
                f"{', '.join(names)}: {reason}" for reason, names in cells_of.items()
            )
            raise ValueError(
                f"No cell of the grid could be fitted ({reasons}). Use fewer "
                "components, simpler covariance types, or more data."
            )
        chosen = records[best]
        if chosen["status"] == "degenerate":
            warnings.warn(
                "Every fitted cell needed singular-covariance repairs; the best of "
                f"them ({chosen['n_components']} components, "
                f"'{chosen['covariance_type']}') is "
                "kept. Check the data for duplicated rows or increase reg_covar.",
                SingularCovarianceWarning,
                stacklevel=2,
            )
        self.results_ = SelectionResults(records)
        self.best_estimator_ = models[best]
        self.n_components_ = chosen["n_components"]
        self.covariance_type_ = chosen["covariance_type"]
        self.criterion_ = chosen[self.criterion]
        if not chosen["converged"]:
            warnings.warn(
                f"The chosen cell ({self.n_components_} components, "
                f"'{self.covariance_type_}') did not converge. Increase max_iter or "
                "tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _report(self, index, records, best, on_cell, n_cells):
        record = records[index]
        if self.verbose:
            value = record[self.criterion]
            print(
                f"cell {index + 1}/{n_cells}: {record['n_components']} "
                f"{record['covariance_type']}: {record['status']}, "
                f"{self.criterion} {value:.6g}"
            )
        if _eligible(record) and (
            best is None or _better(record, records[best], self.criterion)
        ):
            best = index
        if on_cell is not None:
            on_cell(index + 1, n_cells, record, None if best is None else records[best])
        return best

    def _base_seed(self):
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
            self.random_state, bool
        ):
            check_random_state(int(self.random_state))  # range check, sklearn's message
            return int(self.random_state)
        return int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )

    def _fit_cell(
        self,
        X,
        weight,
        fit_weight,
        n_present,
        n_components,
        covariance_type,
        base_seed,
        hc,
    ):
        """(record, fitted model or None) of one cell."""
        n_features = X.shape[1]
        record = dict.fromkeys(RESULT_FIELDS)
        record.update(
            n_components=n_components,
            covariance_type=covariance_type,
            status="ok",
            reason="",
            bic=np.nan,
            aic=np.nan,
            icl=np.nan,
            log_likelihood=np.nan,
            n_parameters=n_parameters(n_components, covariance_type, n_features),
            converged=False,
            n_iter=0,
            n_repairs=0,
            fit_seconds=0.0,
        )
        if n_components > n_present:
            record.update(
                status="skipped",
                reason=f"{n_components} components but only {n_present} samples",
            )
            return record, None
        # an integer weight counts as that many rows, as in the likelihood
        n_values = int(max(n_present, math.floor(weight.sum()))) * n_features
        if record["n_parameters"] > n_values:
            record.update(
                status="skipped",
                reason=f"{record['n_parameters']} free parameters but only {n_values} "
                f"data values ({n_values // n_features} samples x {n_features} "
                "features)",
            )
            return record, None
        start_time = time.perf_counter()
        kept, kept_clean, errors = None, False, []
        for restart in range(self.n_init):
            seed = base_seed if restart == 0 else _restart_seed(base_seed, restart)
            start = None
            if hc is not None and restart == 0:
                rows, labels = hc
                try:
                    start = _hc_start(
                        X,
                        weight,
                        rows,
                        labels[n_components],
                        n_components,
                        covariance_type,
                        float(self.reg_covar),
                    )
                except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
                    # this run starts from k-means instead
                    errors.append(f"hierarchical start: {error}")
                    start = None
            model = self._cell_estimator(n_components, covariance_type, seed, start)
            try:
                model.fit(X, sample_weight=fit_weight)
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
                errors.append(" ".join(str(error).split()) or type(error).__name__)
                continue
            clean = not model.singular_events_
            if (
                kept is None
                or (clean and not kept_clean)
                or (clean == kept_clean and model.lower_bound_ > kept.lower_bound_)
            ):
                kept, kept_clean = model, clean
        record["fit_seconds"] = time.perf_counter() - start_time
        if kept is None:
            record.update(status="failed", reason="; ".join(dict.fromkeys(errors)))
            return record, None
        statistics = _driver.estep_statistics(
            X, weight, kept._parameters(), covariance_type, kept._block_size(X)
        )
        log_likelihood = float(statistics.log_likelihood)
        penalty = record["n_parameters"]
        bic = -2.0 * log_likelihood + penalty * math.log(weight.sum())
        record.update(
            log_likelihood=log_likelihood,
            bic=bic,
            aic=-2.0 * log_likelihood + 2.0 * penalty,
            icl=bic - 2.0 * float(statistics.log_max_resp),
            converged=bool(kept.converged_),
            n_iter=int(kept.n_iter_),
            n_repairs=len(kept.singular_events_),
        )
        if not math.isfinite(bic):
            record.update(status="failed", reason=f"non-finite log-likelihood {bic}")
            return record, None
        if not kept_clean:
            events = kept.singular_events_
            record.update(
                status="degenerate",
                reason="every run needed singular-covariance repairs "
                f"({len(events)} in "
                f"the kept run, first: component {events[0]['component']} "
                f"{events[0]['action']})",
            )
        return record, kept

    # ------------------------------------------------------------------
    # delegation to the best model

    def _best(self):
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_

    def _check_X(self, X):
        self._best()
        return _validation.check_data(self, X, reset=False)

    def predict(self, X):
        """Most probable component of each sample, under the best model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._best().predict(self._check_X(X))

    def predict_proba(self, X):
        """Responsibilities of the best model's components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components_)
        """
        return self._best().predict_proba(self._check_X(X))

    def score_samples(self, X):
        """Log-likelihood of each sample under the best model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return self._best().score_samples(self._check_X(X))

    def score(self, X, y=None):
        """Mean per-sample log-likelihood of X under the best model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        return self._best().score(self._check_X(X))

    def sample(self, n_samples=1):
        """Draw samples from the best model (see :meth:`GaussianMixture.sample`).

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        """
        return self._best().sample(n_samples)

    def bic(self, X):
        """BIC of the best model on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        return self._best().bic(self._check_X(X))

    def aic(self, X):
        """AIC of the best model on X (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        return self._best().aic(self._check_X(X))


def _restart_seed(base_seed, restart):
    return int(np.random.SeedSequence([base_seed, restart]).generate_state(1)[0])


def _eligible(record):
    return record["status"] in ("ok", "degenerate") and math.isfinite(record["bic"])


def _better(record, other, criterion):
    """Is ``record`` preferred to ``other``: 'ok' before 'degenerate', then lower value.

    Ties keep the earlier cell (fewer components, then the earlier type).
    """
    rank = record["status"] != "ok", record[criterion]
    return rank < (other["status"] != "ok", other[criterion])


def _best_index(records, criterion):
    best = None
    for index, record in enumerate(records):
        if _eligible(record) and (
            best is None or _better(record, records[best], criterion)
        ):
            best = index
    return best
