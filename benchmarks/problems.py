"""The benchmark problems P1-P5 of issue 3 and the implementations that solve them.

One registry drives every suite: the asv classes (``benchmarks/bench_em.py``),
the pytest-benchmark tests (``tests/test_benchmarks.py``) and the side-by-side
script (``benchmarks/compare.py``), so whatever is timed is the same problem,
from the same start, everywhere.

Problems
--------
========  ==========  ===  ===  ==========  =====================================
name      n_samples   D    K    covariance  timed as
========  ==========  ===  ===  ==========  =====================================
P1        1,000,000   2    4    full        seconds per EM iteration
P2        1,000,000   8    16   full        seconds per EM iteration
P3        200,000     32   32   full        seconds per EM iteration
P4        4           2    2    full        one whole ``fit`` call of 50 iterations
P5        1,000,000   16   32   diag        seconds per EM iteration
========  ==========  ===  ===  ==========  =====================================

* Data (P1-P3, P5): a mixture of K random Gaussians drawn from a fixed seed,
  float64, C-ordered. P4 is the four points of the original notebook,
  ``[[1, 2], [4, 2], [1, 3], [4, 3]]``.
* ``scale``: an integer divisor of n_samples (P4 is never scaled), for small
  versions in tests and CI. ``scale=1`` is the full problem. Scaled problems
  keep at least 4 K D rows (full) or 20 K rows (diag), so that every
  component has a well-defined covariance: P3/100 has 4,096 rows, not 2,000. The mixture
  itself (weights, means, covariances) does not depend on the scale; only the
  number of samples drawn from it does.
* Start: every implementation gets the same explicit initial ``weights``,
  ``means`` and ``precisions`` (float64, whatever the data's dtype), and
  ``reg_covar=1e-6`` (scikit-learn's default).
* Fixed iteration counts: ``tol=0`` disables the convergence test in both
  scikit-learn and fastem (they stop when ``abs(change) < tol``, which is
  never true for tol = 0), so a fit runs exactly ``max_iter`` iterations and
  then warns ``ConvergenceWarning``; the adapters silence that warning.

The factories are seeded and append-only: never change what an existing name
produces (results stored by asv would silently stop being comparable); add a
new problem or a new ``DATA_VERSION`` instead.

Implementations
---------------
``IMPLEMENTATIONS["fastem"]`` and ``IMPLEMENTATIONS["sklearn"]`` are adapters
with one interface:

* ``fit(problem, n_iter)`` -> final mean log-likelihood, i.e. the fitted
  model's ``lower_bound_``: the mean per-sample log-likelihood computed in the
  E-step of the last iteration (scikit-learn's and fastem's definition, and
  oneDAL's ``goalFunction / n_samples``);
* ``warm_model(problem)`` -> a model fitted for one iteration with
  ``warm_start=True, max_iter=1``, so that each further ``model.fit_predict(X)``
  (``fit_warm``) is one EM iteration from where it stopped, plus the input
  validation and the final labelling E-step. ``fit_predict``, not ``fit``:
  scikit-learn's ``fit`` runs that E-step too, fastem's does not (only its
  ``fit_predict`` does), so timing ``fit`` gave scikit-learn an E-step more.

``BAYESIAN_IMPLEMENTATIONS`` has the same interface for the variational
mixture (``fastem.BayesianGaussianMixture`` and scikit-learn's) on
``BAYESIAN_PROBLEM_NAMES`` (P1, P2, P3, P5): it has no explicit start
parameters, so both start from the same K rows of X
(``init_params='random_from_data'``, ``random_state=0``), and ``fit`` returns
the final variational lower bound (a total over the samples, as both report
it). ``FastemBayesian(weight_concentration_prior_type)`` chooses the weight
prior (default: the Dirichlet process).

``OneDALSubprocess(python)`` times Intel oneDAL (``daal4py.em_gmm``) through
another interpreter (daal4py 2024.7 needs scikit-learn <= 1.5): it writes the
data to a temporary ``.npy`` file and the start to a ``.npz`` file and runs
this module as a script in that interpreter (``--onedal-worker``), which times
oneDAL there with the same helpers. This module imports only numpy at the top
so that it also runs in that environment.

Timing helpers
--------------
``seconds_per_iteration``: the marginal cost of an EM iteration, measured with
the public API as (time of ``fit`` with ``n_hi`` iterations - time of ``fit``
with ``n_lo`` iterations) / (n_hi - n_lo), from the same start, paired within
each repeat; the median over the repeats. The difference cancels everything a
``fit`` call does once (input validation, scikit-learn's initialisation pass,
the final labelling E-step), leaving exactly the EM iterations. Every
implementation is timed over the same iterations, ``TIMED_ITERATIONS`` (fits of
1 and 3 iterations: iterations 2 and 3): fastem's cost per iteration falls as
responsibilities become sparse (its kernels skip the ones below 1e-43), so a
range calibrated per implementation (as before stop 46: up to iterations 2-129
for fastem's P1 against 2-3 for scikit-learn's) measured fastem later in the
fit, up to about 10% in its favour (P1 9-10%, P5 7%, P2 3.5%, P3 none). A repeat
times enough pairs of the two fits for their difference to take
``target_seconds``.
``seconds_per_fit``: the median over repeats of one whole ``fit`` call (P4).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

__all__ = [
    "BAYESIAN_IMPLEMENTATIONS",
    "BAYESIAN_PRIORS",
    "BAYESIAN_PROBLEM_NAMES",
    "DTYPES",
    "IMPLEMENTATIONS",
    "PROBLEM_NAMES",
    "REG_COVAR",
    "SCALE_ENV",
    "SPECS",
    "OneDALSubprocess",
    "Problem",
    "Spec",
    "Timing",
    "fit_extra_peak_bytes",
    "make_problem",
    "measure",
    "scale_from_env",
    "seconds_per_fit",
    "seconds_per_iteration",
]

DATA_VERSION = 1  # bump (and keep the old factory) if the data ever has to change
SCALE_ENV = "FASTEM_BENCH_SCALE"  # asv and compare.py: divide n_samples by this
DTYPES = ("float64", "float32")
REG_COVAR = 1e-6  # scikit-learn's default
_CHUNK_ROWS = 1 << 16  # rows drawn per chunk; part of the factory, never change


@dataclasses.dataclass(frozen=True)
class Spec:
    """One problem of issue 3 at full size."""

    name: str
    n_samples: int
    n_features: int
    n_components: int
    covariance_type: str
    seed: int
    n_iter: int  # iterations of a whole timed fit (and of the log-likelihood checks)
    per_fit: bool = False  # timed as one whole fit call (P4), not per iteration


SPECS = {
    "P1": Spec("P1", 1_000_000, 2, 4, "full", seed=1, n_iter=10),
    "P2": Spec("P2", 1_000_000, 8, 16, "full", seed=2, n_iter=10),
    "P3": Spec("P3", 200_000, 32, 32, "full", seed=3, n_iter=10),
    "P4": Spec("P4", 4, 2, 2, "full", seed=4, n_iter=50, per_fit=True),
    "P5": Spec("P5", 1_000_000, 16, 32, "diag", seed=5, n_iter=10),
}
PROBLEM_NAMES = tuple(SPECS)

NOTEBOOK_X = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])


def scale_from_env(default=1):
    """The scale divisor from $FASTEM_BENCH_SCALE (integer >= 1), else ``default``."""
    value = os.environ.get(SCALE_ENV, "").strip()
    if not value:
        return default
    try:
        scale = int(value)
    except ValueError:
        raise ValueError(
            f"{SCALE_ENV} must be an integer >= 1, got {value!r}."
        ) from None
    if scale < 1:
        raise ValueError(f"{SCALE_ENV} must be an integer >= 1, got {value!r}.")
    return scale


def label(name, scale):
    """Display name: 'P1' at full size, 'P1/100' at scale 100 (P4 is never scaled)."""
    return name if scale == 1 or SPECS[name].per_fit else f"{name}/{scale}"


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """Data and start of one problem at one scale and dtype."""

    spec: Spec
    scale: int
    X: np.ndarray  # (n_samples, n_features), C-ordered, float64 or float32
    weights_init: np.ndarray  # (K,) float64
    means_init: np.ndarray  # (K, D) float64
    precisions_init: np.ndarray  # (K, D, D) full, (K, D) diag; float64
    reg_covar: float = REG_COVAR

    @property
    def name(self):
        return self.spec.name

    @property
    def label(self):
        return label(self.spec.name, self.scale)

    @property
    def dtype(self):
        return self.X.dtype.name

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def n_components(self):
        return self.spec.n_components

    @property
    def covariance_type(self):
        return self.spec.covariance_type

    @property
    def n_iter(self):
        return self.spec.n_iter

    def covariances_init(self):
        """The start as covariances (oneDAL takes covariances, not precisions)."""
        if self.covariance_type == "full":
            return np.linalg.inv(self.precisions_init)
        return 1.0 / self.precisions_init


def n_samples_at(spec, scale):
    """Rows of ``spec`` at ``scale``: n_samples / scale, but at least 4 K D rows for
    full covariances (so that even the lightest component, weight >= 1/(2K),
    has ~2 D rows and a well-defined covariance) and 20 K for diagonal ones."""
    if spec.per_fit:
        return spec.n_samples
    if spec.covariance_type == "full":
        least = 4 * spec.n_components * spec.n_features
    else:
        least = 20 * spec.n_components
    return min(spec.n_samples, max(math.ceil(spec.n_samples / scale), least))


def flops_per_iteration(problem):
    """Issue 12's count of one EM iteration's arithmetic on ``problem``.

    N K (2 D^2 + 6 D + 7) for 'full' and 'tied' (the triangular projection and
    the scatter, D^2 each per point and component, as if no responsibility were
    skipped), N K (8 D + 7) for 'diag' and 'spherical'. What counts as fast is
    this rate against the machine's DGEMM rate (compare.py --dgemm).
    """
    n, d, k = problem.n_samples, problem.n_features, problem.n_components
    if problem.covariance_type in ("full", "tied"):
        return n * k * (2 * d * d + 6 * d + 7)
    return n * k * (8 * d + 7)


@functools.lru_cache(maxsize=4)
def make_problem(name, scale=1, dtype="float64"):
    """Problem ``name`` ('P1'...'P5'), n_samples divided by ``scale``, X in ``dtype``.

    Seeded and deterministic: the same arguments give bitwise the same data
    and start in every process. The float32 data are the float64 data
    rounded, and the start is the same float64 start for both dtypes.
    Cached (a few problems), so do not modify the arrays.
    """
    if name not in SPECS:
        raise ValueError(f"Unknown problem {name!r}; choose from {', '.join(SPECS)}.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}.")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}.")
    spec = SPECS[name]
    if name == "P4":
        X, weights, means, precisions = _notebook_problem()
    else:
        X, weights, means, precisions = _mixture_problem(
            spec, n_samples_at(spec, scale), np.dtype(dtype)
        )
    for array in (X, weights, means, precisions):
        array.setflags(write=False)
    return Problem(
        spec,
        int(scale),
        np.ascontiguousarray(X, dtype=dtype),
        weights,
        means,
        precisions,
    )


def _notebook_problem():
    """P4: the notebook's four points; a start between the two columns of points."""
    X = NOTEBOOK_X.copy()
    weights = np.array([0.5, 0.5])
    means = np.array([[1.5, 2.2], [3.5, 2.8]])
    precisions = np.array([np.eye(2), np.eye(2)])
    return X, weights, means, precisions


def _true_mixture(spec):
    """The mixture of P1-P3, P5: weights, means, Cholesky factors (or std devs)."""
    rng = np.random.default_rng([DATA_VERSION, spec.seed])
    k, d = spec.n_components, spec.n_features
    weights = 0.5 / k + 0.5 * rng.dirichlet(np.ones(k))
    weights /= weights.sum()
    means = rng.normal(0.0, 3.0, size=(k, d))
    if spec.covariance_type == "full":
        factors = np.empty((k, d, d))
        for component in range(k):
            a = rng.standard_normal((d, d))
            covariance = a @ a.T / d + 0.1 * np.eye(d)
            factors[component] = np.linalg.cholesky(covariance)
    else:  # diag: standard deviations
        factors = np.sqrt(rng.uniform(0.1, 2.0, size=(k, d)))
    return weights, means, factors


def _mixture_problem(spec, n_samples, dtype):
    """Draw n_samples rows chunk by chunk into an array of ``dtype``; float64 start.

    Chunks keep the peak memory of the factory at the size of X plus one chunk,
    so that asv's peakmem_ measures the fit, not the data generation. The start:
    weights 1/K; means = the true means moved by N(0, 1) in every coordinate
    (a second seeded stream), so that every component starts near a cluster of
    its own and even small scaled problems fit without degenerate components;
    every component's precision = the inverse of the covariance of the data
    (or of their variances, 'diag'), a broad start that makes the first
    iterations' responsibilities soft. The covariance is accumulated from the
    float64 rows, so the start is the same for both dtypes.
    """
    weights_true, means_true, factors = _true_mixture(spec)
    k, d = spec.n_components, spec.n_features
    rng = np.random.default_rng([DATA_VERSION, spec.seed, 1])
    means_init = means_true + np.random.default_rng(
        [DATA_VERSION, spec.seed, 2]
    ).normal(size=(k, d))
    X = np.empty((n_samples, d), dtype=dtype)
    total = 0
    mean = np.zeros(d)
    scatter = np.zeros((d, d))
    for begin in range(0, n_samples, _CHUNK_ROWS):
        end = min(begin + _CHUNK_ROWS, n_samples)
        rows = end - begin
        labels = rng.choice(k, size=rows, p=weights_true)
        noise = rng.standard_normal((rows, d))
        chunk = means_true[labels]
        for component in range(k):
            mask = labels == component
            if spec.covariance_type == "full":
                chunk[mask] += noise[mask] @ factors[component].T
            else:
                chunk[mask] += noise[mask] * factors[component]
        X[begin:end] = chunk
        # merge this chunk's mean and scatter into the running ones (Chan et al.)
        chunk_mean = chunk.mean(axis=0)
        centred = chunk - chunk_mean
        delta = chunk_mean - mean
        merged = total + rows
        scatter += centred.T @ centred + np.outer(delta, delta) * (
            total * rows / merged
        )
        mean += delta * (rows / merged)
        total = merged
    covariance = scatter / (total - 1)
    weights_init = np.full(k, 1.0 / k)
    if spec.covariance_type == "full":
        precision = np.linalg.inv(covariance)
        precision = (precision + precision.T) / 2  # exactly symmetric for the checks
        precisions_init = np.repeat(precision[None], k, axis=0)
    else:
        precisions_init = np.repeat((1.0 / np.diag(covariance))[None], k, axis=0)
    return X, weights_init, means_init, precisions_init


# --------------------------------------------------------------------------
# implementations


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_fastem():
    """``import fastem``: the installed one, else the one in this repository.

    An installed fastem always wins (asv's environments install the commit
    being measured); only when none is installed is this checkout's source
    put on ``sys.path`` (``asv run --python=same`` in an uninstalled clone).
    """
    import importlib.util

    if importlib.util.find_spec("fastem") is None:
        sys.path.insert(0, REPOSITORY)
    import fastem

    return fastem


class _SklearnProtocol:
    """An implementation whose estimator follows scikit-learn's GaussianMixture."""

    name = ""

    def estimator_class(self):
        raise NotImplementedError

    def estimator(self, problem, n_iter, **kwargs):
        """An unfitted estimator: problem's start, tol=0, exactly n_iter iterations."""
        return self.estimator_class()(
            n_components=problem.n_components,
            covariance_type=problem.covariance_type,
            tol=0.0,
            reg_covar=problem.reg_covar,
            max_iter=n_iter,
            n_init=1,
            # every start parameter is given; this is scikit-learn's cheapest
            # initialisation pass (it runs one even then, and discards it)
            init_params="random_from_data",
            weights_init=problem.weights_init,
            means_init=problem.means_init,
            precisions_init=problem.precisions_init,
            random_state=0,
            **kwargs,
        )

    def fit_model(self, problem, n_iter, **kwargs):
        """The estimator fitted on ``problem.X`` for exactly n_iter iterations."""
        from sklearn.exceptions import ConvergenceWarning

        model = self.estimator(problem, n_iter, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(problem.X)
        return model

    def fit(self, problem, n_iter):
        """Fit for exactly n_iter iterations; the final mean log-likelihood."""
        return float(self.fit_model(problem, n_iter).lower_bound_)

    def warm_model(self, problem):
        """Fitted one iteration with warm_start=True, max_iter=1 (see fit_warm)."""
        return self.fit_model(problem, 1, warm_start=True)

    @staticmethod
    def fit_warm(model, X):
        """One more EM iteration of a warm model, plus validation and the final
        labelling E-step (``fit_predict``: see the module's docstring)."""
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit_predict(X)
        return float(model.lower_bound_)

    def versions(self):
        raise NotImplementedError


class Fastem(_SklearnProtocol):
    """fastem.GaussianMixture (numba kernels; numba's default thread count)."""

    name = "fastem"

    def estimator_class(self):
        return import_fastem().GaussianMixture

    def versions(self):
        import numba

        return {"fastem": import_fastem().__version__, "numba": numba.__version__}


class Sklearn(_SklearnProtocol):
    """sklearn.mixture.GaussianMixture."""

    name = "sklearn"

    def estimator_class(self):
        from sklearn.mixture import GaussianMixture

        return GaussianMixture

    def versions(self):
        import sklearn

        return {"scikit-learn": sklearn.__version__}


class OneDAL:
    """daal4py.em_gmm in this process (only where daal4py imports: its own venv).

    Same start (covariances = inverses of the start precisions), n_iter
    iterations (``maxIterations=n_iter, accuracyThreshold=0``), except that
    oneDAL also stops when the log-likelihood stops changing exactly (it
    refuses a negative threshold): ``last_n_iterations`` says how many it ran.
    oneDAL regularises a covariance only when it is ill-conditioned
    (``regularizationFactor``), where scikit-learn and fastem always add
    ``reg_covar`` to the diagonal, so its log-likelihood differs slightly.
    """

    name = "onedal"
    last_n_iterations = None

    def fit(self, problem, n_iter):
        import daal4py

        X = problem.X
        fptype = "float" if X.dtype == np.float32 else "double"
        weights = problem.weights_init.astype(X.dtype)[None, :]
        means = problem.means_init.astype(X.dtype)
        covariances = problem.covariances_init().astype(X.dtype)
        if problem.covariance_type == "full":
            inputs = [np.ascontiguousarray(c) for c in covariances]
            storage = "full"
        else:
            inputs = [np.ascontiguousarray(c[None, :]) for c in covariances]
            storage = "diagonal"
        algorithm = daal4py.em_gmm(
            nComponents=problem.n_components,
            fptype=fptype,
            maxIterations=n_iter,
            accuracyThreshold=0.0,
            covarianceStorage=storage,
        )
        result = algorithm.compute(X, weights, means, inputs)
        self.last_n_iterations = int(np.asarray(result.nIterations).ravel()[0])
        return float(np.asarray(result.goalFunction).ravel()[0]) / problem.n_samples

    def versions(self):
        from importlib.metadata import version

        import daal4py

        return {"daal4py": version("daal4py"), "oneDAL threads": daal4py.num_threads()}


IMPLEMENTATIONS = {"fastem": Fastem(), "sklearn": Sklearn()}


# --------------------------------------------------------------------------
# BayesianGaussianMixture (issue 15)

# The problems its suites use: those of issue 15's speed targets (P4, a whole
# fit of four points, times GaussianMixture's per-call overhead and is left out).
BAYESIAN_PROBLEM_NAMES = ("P1", "P2", "P3", "P5")
BAYESIAN_PRIORS = ("dirichlet_process", "dirichlet_distribution")


class _RandomStartProtocol(_SklearnProtocol):
    """An estimator started from K rows of X (``init_params='random_from_data'``,
    ``random_state=0``: the same rows in scikit-learn and fastem).

    ``BayesianGaussianMixture`` has no explicit start parameters, so its suites
    start here; ``fit`` returns ``lower_bound_`` as a float (the variational
    lower bound, a total over the samples; scikit-learn's 'tied' gives it as
    an array of one element).
    """

    def estimator(self, problem, n_iter, **kwargs):
        return self.estimator_class()(
            n_components=problem.n_components,
            covariance_type=problem.covariance_type,
            tol=0.0,
            reg_covar=problem.reg_covar,
            max_iter=n_iter,
            n_init=1,
            init_params="random_from_data",
            random_state=0,
            **kwargs,
        )

    def fit(self, problem, n_iter):
        return float(np.ravel(self.fit_model(problem, n_iter).lower_bound_)[0])

    @staticmethod
    def fit_warm(model, X):
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit_predict(X)  # as _SklearnProtocol.fit_warm
        return float(np.ravel(model.lower_bound_)[0])


class _BayesianProtocol(_RandomStartProtocol):
    def __init__(self, weight_concentration_prior_type="dirichlet_process"):
        if weight_concentration_prior_type not in BAYESIAN_PRIORS:
            raise ValueError(
                "weight_concentration_prior_type must be one of "
                f"{BAYESIAN_PRIORS}, got {weight_concentration_prior_type!r}."
            )
        self.weight_concentration_prior_type = weight_concentration_prior_type

    def estimator(self, problem, n_iter, **kwargs):
        return super().estimator(
            problem,
            n_iter,
            weight_concentration_prior_type=self.weight_concentration_prior_type,
            **kwargs,
        )


class FastemBayesian(_BayesianProtocol):
    """fastem.BayesianGaussianMixture from K rows of X."""

    name = "fastem"

    def estimator_class(self):
        return import_fastem().BayesianGaussianMixture

    versions = Fastem.versions


class SklearnBayesian(_BayesianProtocol):
    """sklearn.mixture.BayesianGaussianMixture from K rows of X."""

    name = "sklearn"

    def estimator_class(self):
        from sklearn.mixture import BayesianGaussianMixture

        return BayesianGaussianMixture

    versions = Sklearn.versions


class FastemRandomStart(_RandomStartProtocol):
    """fastem.GaussianMixture from the Bayesian suites' start (the same K rows):
    what the variational extras cost beside it, from the same start
    (``benchmarks/compare_bayesian.py``)."""

    name = "fastem"

    def estimator_class(self):
        return import_fastem().GaussianMixture

    versions = Fastem.versions


BAYESIAN_IMPLEMENTATIONS = {"fastem": FastemBayesian(), "sklearn": SklearnBayesian()}


# --------------------------------------------------------------------------
# timing


@dataclasses.dataclass
class Timing:
    """Result of ``measure``: seconds per iteration (or per fit for P4) and quality."""

    seconds: float  # median: per EM iteration, or per whole fit call if per_fit
    per_fit: bool
    samples: list  # every repeat's figure
    n_iter_span: tuple  # (n_lo, n_hi) of the differenced fits, or (n_iter, n_iter)
    log_likelihood: float  # final mean log-likelihood of a fit of problem.n_iter
    note: str = ""  # anything the figure needs said next to it

    def to_json(self):
        return dataclasses.asdict(self)


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


#: The fits whose difference times the EM iterations: (n_lo, n_hi) iterations, the
#: same for every implementation and problem (see the module's docstring).
TIMED_ITERATIONS = (1, 3)
#: At most this many pairs of fits in one repeat of seconds_per_iteration.
MAX_PAIRS = 64


def seconds_per_iteration(fit, problem, repeats=5, span=TIMED_ITERATIONS,
                          target_seconds=0.2):
    """Median marginal seconds per EM iteration of ``fit(problem, n_iter)``.

    ``span`` is ``(n_lo, n_hi)``. After an untimed warm-up fit and one pair that
    sizes the repeats (also untimed in the result), each repeat
    times ``fit`` with ``n_lo`` and with ``n_hi`` iterations from the same start,
    alternately, ``pairs`` times (enough for the summed difference to take about
    ``target_seconds``, at most MAX_PAIRS, the same for every repeat), and keeps
    (sum t_hi - sum t_lo) / (pairs (n_hi - n_lo)). Returns (median, samples,
    (n_lo, n_hi)).
    """
    n_lo, n_hi = span
    if n_hi - n_lo < 1:
        raise ValueError(f"n_hi ({n_hi}) must exceed n_lo ({n_lo}).")
    fit(problem, n_lo)  # warm-up (compilation, caches)
    rough = _timed(fit, problem, n_hi) - _timed(fit, problem, n_lo)
    pairs = max(1, min(MAX_PAIRS, math.ceil(target_seconds / max(rough, 1e-9))))
    samples = []
    for _ in range(repeats):
        low = high = 0.0
        for _ in range(pairs):
            low += _timed(fit, problem, n_lo)
            high += _timed(fit, problem, n_hi)
        samples.append((high - low) / (pairs * (n_hi - n_lo)))
    return statistics.median(samples), samples, (n_lo, n_hi)


def seconds_per_fit(fit, problem, repeats=5, n_iter=None, target_seconds=0.2):
    """Median seconds of one whole ``fit(problem, n_iter)`` call (P4).

    Each repeat calls ``fit`` often enough to take about ``target_seconds``
    and keeps the mean; returns (median, samples).
    """
    n_iter = problem.n_iter if n_iter is None else n_iter
    fit(problem, n_iter)  # warm-up
    rough = _timed(fit, problem, n_iter)
    number = max(1, math.ceil(target_seconds / max(rough, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fit(problem, n_iter)
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples), samples


def measure(fit, problem, repeats=5, target_seconds=0.2, span=TIMED_ITERATIONS):
    """Time ``fit`` on ``problem`` as issue 3 says (per iteration over ``span``, or
    per fit for P4) and record the final log-likelihood of a fit of
    ``problem.n_iter`` iterations."""
    if problem.spec.per_fit:
        seconds, samples = seconds_per_fit(
            fit, problem, repeats, target_seconds=target_seconds
        )
        span = (problem.n_iter, problem.n_iter)
    else:
        seconds, samples, span = seconds_per_iteration(
            fit, problem, repeats, span, target_seconds=target_seconds
        )
    return Timing(
        seconds, problem.spec.per_fit, samples, span, fit(problem, problem.n_iter)
    )


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def traced_peak(function, *args):
    """The peak of tracemalloc (bytes: what numpy and Python allocate) during
    ``function(*args)``."""
    import tracemalloc

    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fit_extra_peak_bytes(fit, problem, n_iter=None):
    """Peak resident memory a ``fit`` call adds to the process, in bytes (Linux).

    Resets the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``),
    runs the fit, and returns VmHWM after it minus VmRSS before it: the fit's
    own peak, without the interpreter, the imports and the data already in
    memory. Raises OSError where /proc does not offer this.
    """
    n_iter = problem.n_iter if n_iter is None else n_iter
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    before = _status_kib("VmRSS")
    fit(problem, n_iter)
    return (_status_kib("VmHWM") - before) * 1024


# --------------------------------------------------------------------------
# oneDAL in another interpreter


class OneDALSubprocess:
    """Times oneDAL by running this file with ``--onedal-worker`` in ``python``.

    The data go through a temporary ``.npy`` file and the start through a
    ``.npz`` file, so oneDAL sees the same numbers; the worker times with the
    same ``measure`` as the in-process implementations and prints JSON.
    """

    name = "onedal"

    def __init__(self, python):
        self.python = python

    def _run(self, arguments, timeout=None):
        command = [
            self.python,
            os.path.abspath(__file__),
            "--onedal-worker",
            *arguments,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"The oneDAL worker failed ({' '.join(command)}):\n"
                + completed.stderr.strip()
            )
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def versions(self):
        return self._run(["--versions"])

    def measure(self, problem, repeats=5, target_seconds=0.2):
        with tempfile.TemporaryDirectory(prefix="fastem-onedal-") as directory:
            data = os.path.join(directory, "X.npy")
            start = os.path.join(directory, "start.npz")
            np.save(data, problem.X)
            np.savez(
                start,
                weights=problem.weights_init,
                means=problem.means_init,
                precisions=problem.precisions_init,
            )
            result = self._run(
                [
                    "--problem",
                    problem.name,
                    "--scale",
                    str(problem.scale),
                    "--data",
                    data,
                    "--start",
                    start,
                    "--repeats",
                    str(repeats),
                    "--target-seconds",
                    str(target_seconds),
                ]
            )
        result["n_iter_span"] = tuple(result["n_iter_span"])
        return Timing(**result)


def _onedal_worker(argv):
    parser = argparse.ArgumentParser(prog="problems.py --onedal-worker")
    parser.add_argument("--versions", action="store_true")
    parser.add_argument("--problem")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--data")
    parser.add_argument("--start")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-seconds", type=float, default=0.2)
    args = parser.parse_args(argv)
    onedal = OneDAL()
    if args.versions:
        print(json.dumps(onedal.versions()))
        return
    X = np.ascontiguousarray(np.load(args.data))
    start = np.load(args.start)
    problem = Problem(
        SPECS[args.problem],
        args.scale,
        X,
        start["weights"],
        start["means"],
        start["precisions"],
    )
    # oneDAL also stops when EM reaches an exact fixed point: if any timed fit
    # stopped early, time again with spans within the iterations it really runs
    stops = []

    def fit(problem, n_iter):
        log_likelihood = onedal.fit(problem, n_iter)
        if onedal.last_n_iterations < n_iter:
            stops.append(onedal.last_n_iterations)
        return log_likelihood

    timing = measure(fit, problem, args.repeats, args.target_seconds)
    n_hi = TIMED_ITERATIONS[1]
    if stops and problem.spec.per_fit:
        timing.note = (
            f"oneDAL stopped after {min(stops)} of {problem.n_iter} "
            "iterations (the log-likelihood stopped changing)"
        )
    elif stops and min(stops) >= n_hi:  # only the log-likelihood's fit stopped early
        timing.note = (
            f"oneDAL stopped after {min(stops)} of the log-likelihood fit's "
            f"{problem.n_iter} iterations (the log-likelihood stopped changing); the "
            f"timed fits of up to {n_hi} iterations ran in full"
        )
    elif stops:
        limit = min(stops)
        if limit < 2:
            sys.exit(
                f"oneDAL stops after {limit} iteration(s) on {problem.label}: "
                "no iteration to time."
            )
        n_lo = TIMED_ITERATIONS[0]
        timing = measure(onedal.fit, problem, args.repeats, args.target_seconds,
                         span=(min(n_lo, limit - 1), limit))
        timing.note = (
            f"oneDAL stops after {limit} iterations here (the log-likelihood "
            f"stops changing); timed over iterations {timing.n_iter_span[0] + 1} to "
            f"{limit}"
        )
    print(json.dumps(timing.to_json()))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--onedal-worker"]:
        _onedal_worker(sys.argv[2:])
    else:
        sys.exit("usage: python problems.py --onedal-worker ... (used by compare.py)")
