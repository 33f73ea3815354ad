"""The EM driver: initialisation, restarts, convergence, singular-covariance fallback.

Everything numeric per sample happens in the compiled kernels; this module
turns parameters into the kernels' inputs, statistics back into parameters,
and decides what to do when a component degenerates.

Parameters are held in float64 in scikit-learn's layouts (see
:class:`Parameters`); the kernels receive means and precision factors in the
data's dtype.
"""

import dataclasses
import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from fastem.em import draws as _draws
from fastem.em import kmeans_plusplus as _kmeans_plusplus
from fastem.em import sources as _sources
from fastem.kernels import estep as _kernels_estep
from fastem.kernels import loop as _kernels_loop
from fastem.kernels import mstep as _kernels_mstep
from fastem.kernels import small as _kernels_small
from fastem.kernels.cache import read_only
from fastem.kernels.linalg import precision_cholesky_from_covariance
from fastem.kernels.mstep import STATUS_EMPTY, STATUS_OK, STATUS_SINGULAR

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")
ON_SINGULAR = ("recover", "raise")

LOG_2PI = math.log(2.0 * math.pi)

# Diagonal loading for a singular covariance tries ten times
# max(reg_covar, LOADING_START * scale), then tenfold more at a time while the
# previous loading was at most LOADING_LIMIT * scale (so up to ten times that),
# where scale is the data's mean per-feature variance.
LOADING_START = 1e-12
LOADING_LIMIT = 1e-3

# Below this many (sample x component x feature^2) units of work per iteration,
# the kernels run as one serial block and EM iterates inside one compiled
# call (no parallel launch, no Python per iteration): small problems are
# dominated by that overhead.
SERIAL_WORK_LIMIT = 2_000_000

# At most this many units of work (as above) is small data: EM iterates in one
# compiled call (_kernels_loop) over the row-at-a-time kernels of _kernels_small,
# which compile in seconds, and inference uses them too; the tiled kernels (tens
# of seconds to compile cold) are left for larger data. The bundled Old Faithful
# data with up to 9 components is 22,000 units, the notebook's four points 36.
SMALL_WORK_LIMIT = 250_000

# Rows of (rows, K) log-densities computed at a time for labels (estimate_labels).
LABEL_CHUNK_ROWS = 65536

# The most bytes of X in one block of the block kernels (default_block_size):
# the problems of the benchmarks keep their blocks (P3's are 4.5 MiB), data
# larger than 64 such blocks gets more blocks instead of larger ones.
BLOCK_BYTES = 8 << 20


def is_small(n_samples, n_features, n_components):
    """Whether data of this shape takes the small-data kernels (see SMALL_WORK_LIMIT)."""
    return n_samples * n_components * (n_features + 1) ** 2 <= SMALL_WORK_LIMIT


# Rows per chunk when parameters are computed from responsibilities with numpy:
# what a start holds at a time is a chunk's responsibilities (K per row) and
# deviations (D per row). 16,384 rows: 2 MiB of responsibilities at K = 16, an
# in-memory 'random' start of P2 peaking at 0.1x the data (65,536 rows: 0.4x).
INIT_CHUNK = 16384

# Rows of the uniform sample a streamed or Dask fit's k-means start is computed
# from (FitSettings.init_sample_size; at most the data).
DEFAULT_INIT_SAMPLE_SIZE = 100_000


def as_source(X, sample_weight=None):
    """X as a data source (see _sources): an ndarray becomes a MemorySource."""
    if isinstance(X, np.ndarray):
        return _sources.MemorySource(X, sample_weight)
    return X

# Data whose largest per-feature spread is 2**e with |e| above this limit is
# fitted as X * 2**-e (exact: a power of two) and the parameters scaled back:
# then no sum of squares in the kernels or in k-means can overflow or
# underflow. The limits leave ordinary data alone (no copy, same arithmetic).
SCALE_EXPONENT_LIMIT = {np.dtype(np.float64): 400, np.dtype(np.float32): 40}

# A component whose precision factor has an entry above
# min(2**absolute, 2**relative / spread of X) is treated as singular (and
# repaired): beyond 2**absolute its precision matrix would overflow float64,
# or the factor would not fit float32; beyond 2**relative / spread, the
# squared distances of the data to it would overflow the kernels' arithmetic
# (in float32 for float32 data) and the component is far narrower than the
# data's resolution anyway.
PRECISION_LIMIT_EXPONENTS = {np.dtype(np.float64): (500, 200), np.dtype(np.float32): (100, 56)}

# A 'full' or 'tied' covariance whose condition number (estimated as
# max_i C_ii * max_ij P_ij**2) exceeds this is numerically singular: the
# M-step's Cholesky may still succeed on it where LAPACK's fails (found by
# hypothesis), so it is repaired like a singular one. 1/eps is ~4.5e15.
CONDITION_LIMIT = 2.0**44

LOG_2 = math.log(2.0)


class SingularCovarianceWarning(UserWarning):
    """A component's covariance was singular (or its mass vanished) and was repaired.

    Emitted at most once per ``fit``; the fitted model's ``singular_events_``
    lists every repair.
    """


class SingularCovarianceError(ValueError):
    """A component's covariance is not positive definite (``on_singular='raise'``)."""


SINGULAR_MESSAGE = (
    "Fitting the mixture model failed because component {component} has an "
    "ill-defined empirical covariance at iteration {iteration} (for instance "
    "caused by singleton or collapsed samples{detail}). Try to decrease the "
    "number of components, increase reg_covar, or use on_singular='recover' "
    "to let fastem repair the component."
)


@dataclass
class Parameters:
    """Mixture parameters in scikit-learn's layouts, float64.

    covariances / precisions_chol: full (K, D, D), tied (D, D), diag (K, D),
    spherical (K,); precisions_chol is upper triangular for full and tied.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_chol: np.ndarray


@dataclass
class FitSettings:
    """The estimator's fitting options, already validated."""

    n_components: int
    covariance_type: str
    tol: float
    reg_covar: float
    max_iter: int
    n_init: int
    init_params: str
    weights_init: object
    means_init: object
    precisions_init: object
    on_singular: str
    verbose: int
    verbose_interval: int
    block_size: int
    # rows of the seeded uniform sample that 'kmeans' and 'k-means++' start from
    # (None: the whole data in memory, scikit-learn's start; streamed and Dask
    # data always start from a sample, of DEFAULT_INIT_SAMPLE_SIZE rows by default)
    init_sample_size: object = None
    # called after every iteration with (n_iter, lower_bound, change, seconds)
    progress: object = None


@dataclass
class FitResult:
    parameters: Parameters
    lower_bound: float
    lower_bounds: list
    n_iter: int
    converged: bool
    singular_events: list = field(default_factory=list)
    n_failed_restarts: int = 0
    precisions: object = None  # of the parameters, set once fit has checked them


class LazyRandomState:
    """``check_random_state(seed)``, called when a draw is first needed.

    Seeding a ``RandomState`` from an integer costs ~50 us, more than a whole
    small fit; a fit started from a complete user-given start that needs no
    repair never draws. The draws are those of ``check_random_state(seed)``
    whenever it is called. A seed that ``check_random_state`` would reject is
    passed to it at once, so the error is raised where it always was.
    """

    def __init__(self, seed):
        self._seed = seed
        self._state = None
        if not (
            seed is None
            or isinstance(seed, np.random.RandomState)
            or (isinstance(seed, numbers.Integral) and 0 <= seed < 2**32)
        ):
            self._state = check_random_state(seed)

    def get(self):
        if self._state is None:
            self._state = check_random_state(self._seed)
        return self._state


def _random_state(random_state):
    """A RandomState from a LazyRandomState or a RandomState."""
    if isinstance(random_state, LazyRandomState):
        return random_state.get()
    return random_state


class _Breakdown(Exception):
    """A restart cannot go on (non-finite likelihood); the driver abandons it."""


# --------------------------------------------------------------------------
# Parameters <-> kernel inputs


def default_block_size(n_samples, n_features, n_components, covariance_type, itemsize):
    """Rows per parallel block, from the problem's shape only.

    The partition must not depend on the thread count (results are then
    bitwise identical for any number of threads). Small problems (see
    SERIAL_WORK_LIMIT) get a single block, so one thread; others up to 64
    blocks, fewer when the per-block partial statistics (float64) would exceed
    1/16 of the data's size in float64 (1/8 of float32 data); from 4 blocks on a
    multiple of 4, so that 2 or 4 threads run as many blocks each (P3: 8, not
    11, which two threads ran as 6 and 5). Rows then round up to whole tiles,
    which can leave fewer blocks than asked for (59 of 64 for 30,000 rows of
    16 features and 8 components), where one more or less matters little.

    The float64 size also for float32 data: measured against float32's own
    size, P3 in float32 got 5 blocks (11 in float64), and two threads ran
    three and two of them, so its iterations took 1.2 times the balanced time
    and float32 P3 was 1.52 times as fast as float64 in a compare.py run, not
    the 1.85 of one thread.
    """
    if n_samples * n_components * (n_features + 1) ** 2 <= SERIAL_WORK_LIMIT:
        return int(max(n_samples, 1))  # one block: one thread (and the compiled EM loop)
    tile = _kernels_estep.LARGEST_TILE
    if covariance_type == "full":
        per_block = n_components * (1 + n_features + n_features * n_features)
    elif covariance_type == "tied":
        per_block = n_components * (1 + n_features) + n_features * n_features
    else:
        per_block = n_components * (1 + 2 * n_features)
    budget = max(1 << 20, n_samples * n_features * 8 // 16)
    n_blocks = int(max(1, min(64, budget // (8 * per_block))))
    if n_blocks >= 4:  # a multiple of 4: whole blocks per thread for 1, 2 and 4
        n_blocks -= n_blocks % 4
    rows = -(-n_samples // n_blocks)
    rows = max(tile, -(-rows // tile) * tile)
    # At most BLOCK_BYTES of X per block (more blocks for huge data, so that a
    # streamed or Dask fit holds a few blocks at a time), unless a block's
    # partial statistics would then exceed 1/16 of its rows.
    largest = max(BLOCK_BYTES, 16 * 8 * per_block) // (n_features * itemsize)
    return int(min(rows, max(tile, largest // tile * tile)))


def log_det_cholesky(precisions_chol, covariance_type, n_features):
    """log det of each precision Cholesky factor, read off its diagonal; shape (K,) or ()."""
    if covariance_type == "full":
        return np.log(np.diagonal(precisions_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(precisions_chol)).sum()
    if covariance_type == "diag":
        return np.log(precisions_chol).sum(axis=1)
    return n_features * np.log(precisions_chol)


def kernel_inputs(parameters, covariance_type, dtype, log_weights=None):
    """(means, precisions_chol, log_norm) as the kernels take them.

    ``log_weights`` (K,) replaces log(parameters.weights) as the per-component
    offset of the log-densities (the variational mixture's expected log
    weights and precision terms, say).
    """
    means = np.ascontiguousarray(parameters.means, dtype=dtype)
    n_components, n_features = means.shape
    precisions_chol = parameters.precisions_chol
    if covariance_type == "tied":
        precisions_chol = precisions_chol[np.newaxis]
    elif covariance_type == "spherical":
        precisions_chol = np.repeat(precisions_chol[:, np.newaxis], n_features, axis=1)
    precisions_chol = np.ascontiguousarray(precisions_chol, dtype=dtype)
    log_det = log_det_cholesky(parameters.precisions_chol, covariance_type, n_features)
    if log_weights is None:
        with np.errstate(divide="ignore"):
            log_weights = np.log(parameters.weights)
    log_norm = np.ascontiguousarray(
        log_weights + log_det - 0.5 * n_features * LOG_2PI, dtype=np.float64
    )
    return means, precisions_chol, log_norm


def _infer(kernels, X, parameters, covariance_type, block_size, log_weights=None):
    """Run the (dense, diagonal) inference kernel that fits the covariance type.

    float32 data is computed in float64 when a precision factor would not fit
    float32 (a model fitted on data near the float32 limits). ``log_weights``
    as in :func:`kernel_inputs`.
    """
    float32_limit = math.ldexp(1.0, PRECISION_LIMIT_EXPONENTS[np.dtype(np.float32)][0])
    if X.dtype != np.float64 and np.any(_too_large(parameters.precisions_chol, float32_limit)):
        X = X.astype(np.float64)
    means, precisions_chol, log_norm = kernel_inputs(
        parameters, covariance_type, X.dtype, log_weights
    )
    dense, diagonal = kernels
    kernel = dense if covariance_type in ("full", "tied") else diagonal
    return kernel(read_only(X), means, precisions_chol, log_norm, block_size)


def _small_weighted_log_prob(X, parameters, covariance_type, log_weights=None):
    means, precisions_chol, log_norm = kernel_inputs(parameters, covariance_type, np.float64,
                                                     log_weights)
    if covariance_type in ("full", "tied"):
        kernel = _kernels_small.dense_weighted_log_prob_rows
    else:
        kernel = _kernels_small.diagonal_weighted_log_prob_rows
    return kernel(read_only(X), means, precisions_chol, log_norm)


def _is_small_data(X, parameters):
    return is_small(X.shape[0], X.shape[1], parameters.means.shape[0])


def estimate_weighted_log_prob(X, parameters, covariance_type, block_size,
                               log_weights=None, small=None):
    """(n_samples, K) log weights + log-densities, computed by the kernels.

    ``log_weights`` (K,) replaces log(parameters.weights), as in :func:`kernel_inputs`.
    ``small``: whether the data X belongs to is small (the row kernels) or not (the
    block kernels); None: judged by X's own shape (a chunk of large data passes
    False, a chunk of small data True).
    """
    if _is_small_data(X, parameters) if small is None else small:
        return _small_weighted_log_prob(X, parameters, covariance_type, log_weights)
    kernels = (_kernels_estep.dense_weighted_log_prob,
               _kernels_estep.diagonal_weighted_log_prob)
    return _infer(kernels, X, parameters, covariance_type, block_size, log_weights)


def estimate_labels(X, parameters, covariance_type, block_size, log_weights=None):
    """The most probable component of each sample, int64 (n_samples,).

    ``estimate_weighted_log_prob(...).argmax(axis=1)`` (the first maximum
    wins); on large data a chunk of rows at a time (LABEL_CHUNK_ROWS), without
    the (n_samples, K) array. (A point's log-densities do not depend on the
    rows computed with it, so the chunks give the whole array's values; a
    kernel of its own for labels cost ten seconds of compile time per dtype.)
    """
    if _is_small_data(X, parameters):
        return _small_weighted_log_prob(X, parameters, covariance_type,
                                        log_weights).argmax(axis=1)
    kernels = (_kernels_estep.dense_weighted_log_prob,
               _kernels_estep.diagonal_weighted_log_prob)
    n_samples = X.shape[0]
    chunk = max(block_size, LABEL_CHUNK_ROWS // block_size * block_size)
    labels = np.empty(n_samples, dtype=np.int64)
    for start in range(0, n_samples, chunk):
        stop = min(n_samples, start + chunk)
        labels[start:stop] = _infer(kernels, X[start:stop], parameters, covariance_type,
                                    block_size, log_weights).argmax(axis=1)
    return labels


def estimate_log_prob_resp(X, parameters, covariance_type, block_size, log_weights=None):
    """(log_prob_norm, log_resp) for X under the parameters."""
    weighted = estimate_weighted_log_prob(
        X, parameters, covariance_type, block_size, log_weights
    )
    return _kernels_estep.log_resp_from_weighted(weighted, block_size)


def sufficient_statistics(X, sample_weight, parameters, covariance_type, block_size):
    """One fused pass: (nk, sum_x, scatter, log_likelihood, centres).

    ``centres`` are the means the statistics were accumulated around (the
    current means rounded to the data's dtype), in float64.
    """
    statistics = estep_statistics(X, sample_weight, parameters, covariance_type, block_size)
    return (statistics.nk, statistics.sum_x, statistics.scatter, statistics.log_likelihood,
            statistics.centres)


@dataclass
class Statistics:
    """What one pass over the data gives for the current parameters.

    nk (K,), sum_x (K, D) and scatter (K or 1, D, D; diagonal types (K, D)) are
    weighted sums of r, r (x - c) and r (x - c)(x - c)^T around ``centres``
    (the current means in the data's dtype, as float64); ``log_likelihood`` is
    sum_i w_i log sum_k exp(weighted log-prob); ``resp_log_resp`` is
    sum_i w_i sum_k r_ik log r_ik (NaN unless asked for: only the variational
    bound needs it) and ``log_max_resp`` sum_i w_i log max_k r_ik.
    """

    nk: np.ndarray
    sum_x: np.ndarray
    scatter: np.ndarray
    log_likelihood: float
    centres: np.ndarray
    resp_log_resp: float
    log_max_resp: float


def estep_statistics(X, sample_weight, parameters, covariance_type, block_size,
                     log_weights=None, with_entropy=False):
    """One E-step pass: :class:`Statistics` of X under ``parameters``.

    ``log_weights`` as in :func:`kernel_inputs` (default: log(parameters.weights)).
    ``with_entropy``: compute ``resp_log_resp`` (else NaN; the block kernels then
    skip its term per point and component, 5-9% of P1's pass).
    """
    X = read_only(X)
    dense = covariance_type in ("full", "tied")
    if _is_small_data(X, parameters):  # float64 parameters, the rows' kernels
        sample_weight = _sources.row_weights(sample_weight)
        means, precisions_chol, log_norm = kernel_inputs(
            parameters, covariance_type, np.float64, log_weights
        )
        # around the means rounded to the data's dtype, as the block kernels
        means = means.astype(X.dtype).astype(np.float64)
        kernel = (_kernels_small.dense_statistics_rows if dense
                  else _kernels_small.diagonal_statistics_rows)
        nk, sum_x, scatter, sums = kernel(X, sample_weight, means, precisions_chol, log_norm)
    else:
        means, precisions_chol, log_norm = kernel_inputs(
            parameters, covariance_type, X.dtype, log_weights
        )
        kernel = (_kernels_estep.dense_statistics_and_sums if dense
                  else _kernels_estep.diagonal_statistics_and_sums)
        nk, sum_x, scatter, sums = kernel(X, _sources.kernel_weights(sample_weight), means,
                                          precisions_chol, log_norm, block_size,
                                          with_entropy)
    return Statistics(nk, sum_x, scatter, float(sums[0]), means.astype(np.float64),
                      float(sums[1]) if with_entropy else math.nan, float(sums[2]))


def source_statistics(source, parameters, covariance_type, block_size, log_weights=None,
                      with_entropy=False):
    """:func:`estep_statistics` of any source: in memory the same call, otherwise the
    same block kernels over the source's chunks, folded in block order (the same bits)."""
    if source.in_memory:
        return estep_statistics(source.X, source.sample_weight, parameters, covariance_type,
                                block_size, log_weights, with_entropy)
    dense = covariance_type in ("full", "tied")
    means, precisions_chol, log_norm = kernel_inputs(
        parameters, covariance_type, source.dtype, log_weights
    )
    nk, sum_x, scatter, sums = _sources.fold_statistics(
        source, block_size, dense, means, precisions_chol, log_norm, with_entropy
    )
    return Statistics(nk, sum_x, scatter, float(sums[0]), means.astype(np.float64),
                      float(sums[1]) if with_entropy else math.nan, float(sums[2]))


def _layout(covariances, precisions_chol, covariance_type):
    """From the M-step kernels' shapes to scikit-learn's layouts."""
    if covariance_type == "tied":
        return covariances[0], precisions_chol[0]
    if covariance_type == "spherical":
        return covariances[:, 0].copy(), precisions_chol[:, 0].copy()
    return covariances, precisions_chol


def maximization(nk, sum_x, scatter, centres, covariance_type, reg_covar):
    """M-step: (Parameters, status); status has one entry per covariance matrix."""
    if covariance_type in ("full", "tied"):
        weights, means, covariances, precisions_chol, status = _kernels_mstep.dense_mstep(
            nk, sum_x, scatter, centres, reg_covar
        )
    else:
        weights, means, covariances, precisions_chol, status = _kernels_mstep.diagonal_mstep(
            nk, sum_x, scatter, centres, reg_covar, covariance_type == "spherical"
        )
    covariances, precisions_chol = _layout(covariances, precisions_chol, covariance_type)
    return Parameters(weights, means, covariances, precisions_chol), status


# --------------------------------------------------------------------------
# Precision factors from covariances or precisions


def precision_cholesky(covariances, covariance_type):
    """Precision Cholesky factors in scikit-learn's layout, or None if one is singular."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[np.newaxis]
        out = np.zeros_like(stack)
        for k in range(stack.shape[0]):
            if not precision_cholesky_from_covariance(np.ascontiguousarray(stack[k]), out[k]):
                return None
        return out if covariance_type == "full" else out[0]
    if not np.all(covariances > 0) or not np.all(np.isfinite(covariances)):
        return None
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper-triangular P with P P^T = precision (scikit-learn's flipped Cholesky)."""
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        flipped = precisions[..., ::-1, ::-1]
        return np.ascontiguousarray(np.linalg.cholesky(flipped)[..., ::-1, ::-1])
    return np.sqrt(precisions)


def covariances_from_precisions_chol(precisions_chol, covariance_type):
    """Invert the precision factors: Sigma = inv(P P^T)."""
    if covariance_type in ("full", "tied"):
        precisions = precisions_chol @ np.swapaxes(precisions_chol, -1, -2)
        return np.linalg.inv(precisions)
    return 1.0 / precisions_chol**2


def precisions_from_cholesky(precisions_chol, covariance_type):
    """Precision matrices P P^T (full, tied) or 1 / variances (diag, spherical)."""
    if covariance_type in ("full", "tied"):
        return precisions_chol @ np.swapaxes(precisions_chol, -1, -2)
    return precisions_chol**2


def _too_large(precisions_chol, limit):
    """Entries of precision factors above ``limit`` (or NaN)."""
    return ~(np.abs(precisions_chol) <= limit)


def precision_limit(X, sample_weight, half_spread=None):
    """Largest precision-factor entry a component of a model of X may have (see
    PRECISION_LIMIT_EXPONENTS); the spread is that of the rows with weight.

    ``half_spread``: ``_half_spread(X)`` if already known (used only when
    every row has weight)."""
    absolute, relative = PRECISION_LIMIT_EXPONENTS[np.dtype(X.dtype)]
    limit = math.ldexp(1.0, absolute)
    if not isinstance(X, np.ndarray):  # a source
        if X.in_memory:
            return precision_limit(X.X, X.sample_weight, half_spread)
        summary = X.summary
        half_spread = _sources.half_spread(summary.weighted_high, summary.weighted_low)
        if half_spread > 0:
            limit = min(limit, math.ldexp(1.0, relative - 1) / half_spread)
        return limit
    if _sources.count_positive(sample_weight) == X.shape[0]:
        half_spread = _half_spread(X) if half_spread is None else half_spread
    else:
        half_spread = _half_spread_of_weighted(X, sample_weight)
    if half_spread > 0:
        limit = min(limit, math.ldexp(1.0, relative - 1) / half_spread)
    return limit


def _ill_conditioned(covariances, precisions_chol):
    """Per matrix of a (K, D, D) stack: condition number estimate above CONDITION_LIMIT."""
    largest_variance = np.diagonal(covariances, axis1=-2, axis2=-1).max(axis=-1)
    largest_precision = (precisions_chol**2).reshape(len(precisions_chol), -1).max(axis=-1)
    return ~(largest_variance * largest_precision <= CONDITION_LIMIT)


def _all_representable(parameters, covariance_type, limit):
    """True only if _flag_unrepresentable would flag nothing, in a few numpy calls.

    With b the largest |entry| of all the factors and v the largest variance
    of all the covariances, b <= limit means no factor is too large, and
    v * b**2 <= CONDITION_LIMIT bounds every matrix's estimate (products of
    rounded non-negative numbers are monotone, and a negative variance gives
    a product <= 0). NaN fails the comparisons: False sends the caller to
    the exact per-component test.
    """
    largest_factor = float(np.abs(parameters.precisions_chol).max())
    if not largest_factor <= limit:
        return False
    if covariance_type not in ("full", "tied"):
        return True
    largest_variance = float(
        np.diagonal(parameters.covariances, axis1=-2, axis2=-1).max()
    )
    # Python floats: an overflow gives inf (and False), never a warning
    return largest_variance * (largest_factor * largest_factor) <= CONDITION_LIMIT


def _flag_unrepresentable(parameters, status, covariance_type, limit):
    """Mark as singular the components whose precision factor is too large, or (full,
    tied) whose covariance is numerically singular (see the limits above)."""
    if _all_representable(parameters, covariance_type, limit):
        return status
    too_large = _too_large(parameters.precisions_chol, limit)
    if covariance_type in ("full", "tied"):
        covariances = np.reshape(parameters.covariances, (-1, *np.shape(too_large)[-2:]))
        factors = np.reshape(parameters.precisions_chol, covariances.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            ill = _ill_conditioned(covariances, factors)
        too_large = too_large.reshape(len(covariances), -1).any(axis=1) | ill
        if covariance_type == "tied":
            too_large = np.full(len(status), too_large.any())
    elif too_large.ndim > 1:
        too_large = too_large.reshape(len(status), -1).any(axis=1)
    flagged = (status == STATUS_OK) & too_large
    if flagged.any():
        status = status.copy()
        status[flagged] = STATUS_SINGULAR
    return status


def _symmetric(covariances):
    """(C + C^T) / 2 of each matrix. As halves added, C / 2 + C^T / 2, where an entry
    exceeds half of float64's largest number (a reg_covar near 1e308): the sum would
    overflow. The same bits otherwise (halving is exact for normal numbers, but
    not for subnormal ones, so the usual form is kept)."""
    swapped = np.swapaxes(covariances, -1, -2)
    if np.abs(covariances).max(initial=0.0) > np.finfo(np.float64).max / 2:
        return 0.5 * covariances + 0.5 * swapped
    return 0.5 * (covariances + swapped)


def _check_representable(parameters, covariance_type):
    """Raise a ValueError if a fitted covariance or precision is not a finite float64.

    Returns the precisions (see precisions_from_cholesky).
    """
    covariances = np.asarray(parameters.covariances)
    with np.errstate(over="ignore", under="ignore"):  # what this function checks
        precisions = precisions_from_cholesky(parameters.precisions_chol, covariance_type)
    diagonal = (
        np.diagonal(precisions, axis1=-2, axis2=-1)
        if covariance_type in ("full", "tied")
        else precisions
    )
    if not np.isfinite(covariances).all():
        raise ValueError(
            "X's spread is too extreme for float64: a fitted covariance overflows. Divide "
            "X by a constant (so that its values are of order one) before fitting."
        )
    if not (np.isfinite(precisions).all() and (diagonal > 0).all()):
        raise ValueError(
            "X's spread is too extreme for float64: a fitted precision (inverse "
            "covariance) overflows. Multiply X by a constant (so that its values are of "
            "order one), or increase reg_covar."
        )
    return precisions


# --------------------------------------------------------------------------
# Fitting extreme data at unit scale


def _half_spread(X):
    """Half the largest per-feature spread (max - min) of X, as a float64 (no overflow)."""
    if not isinstance(X, np.ndarray):  # a source
        if X.in_memory:
            return _half_spread(X.X)
        return _sources.half_spread(X.summary.high, X.summary.low)
    if X.shape[0] == 0:
        return 0.0
    high = X.max(axis=0).astype(np.float64, copy=False)
    low = X.min(axis=0).astype(np.float64, copy=False)
    return _sources.half_spread(high, low)


def _half_spread_of_weighted(X, sample_weight):
    """_half_spread of the rows of positive weight, a chunk of rows at a time (no copy
    of them all)."""
    high = low = None
    chunk = _sources.MEMORY_CHUNK_ROWS
    for start in range(0, X.shape[0], chunk):
        rows = X[start:start + chunk][sample_weight[start:start + chunk] > 0]
        if len(rows) == 0:
            continue
        chunk_high = rows.max(axis=0).astype(np.float64, copy=False)
        chunk_low = rows.min(axis=0).astype(np.float64, copy=False)
        high = chunk_high if high is None else np.maximum(high, chunk_high)
        low = chunk_low if low is None else np.minimum(low, chunk_low)
    if high is None:
        return 0.0
    return _sources.half_spread(high, low)


def scale_exponent(X, reg_covar, half_spread=None):
    """e such that X is fitted as X * 2**-e; 0 when X needs no rescaling.

    The scale of the model is s = max(largest per-feature spread of X,
    sqrt(reg_covar)) (reg_covar bounds the covariances from below), and
    s is in [2**(e-1), 2**e). X is rescaled only when |e| exceeds
    SCALE_EXPONENT_LIMIT for its dtype. ``half_spread``: ``_half_spread(X)``
    if already known.
    """
    if half_spread is None:
        half_spread = _half_spread(X)
    half_scale = max(half_spread, 0.5 * math.sqrt(reg_covar))
    if not half_scale > 0:
        return 0  # every row identical and no regularisation: nothing to rescale
    exponent = math.frexp(half_scale)[1] + 1
    if abs(exponent) <= SCALE_EXPONENT_LIMIT[np.dtype(X.dtype)]:
        return 0
    return exponent


def scale_parameters(parameters, shift):
    """Parameters of the data multiplied by 2**shift (exact unless they leave float64's
    range, which _check_representable reports)."""
    with np.errstate(over="ignore", under="ignore"):
        return Parameters(
            np.array(parameters.weights, dtype=np.float64),
            np.ldexp(parameters.means, shift),
            np.ldexp(parameters.covariances, 2 * shift),
            np.ldexp(parameters.precisions_chol, -shift),
        )


def _to_unit_scale(X, settings, warm_parameters, warm_lower_bound, exponent):
    """X * 2**-exponent with the settings and warm start that go with it."""
    changes = {"reg_covar": math.ldexp(settings.reg_covar, -2 * exponent)}
    if settings.means_init is not None:
        changes["means_init"] = np.ldexp(settings.means_init, -exponent)
    if settings.precisions_init is not None:
        changes["precisions_init"] = np.ldexp(settings.precisions_init, 2 * exponent)
    if warm_parameters is not None:
        warm_parameters = scale_parameters(warm_parameters, -exponent)
        warm_lower_bound = warm_lower_bound + X.shape[1] * exponent * LOG_2
    X = X.scaled(-exponent) if not isinstance(X, np.ndarray) else np.ldexp(X, -exponent)
    return X, dataclasses.replace(settings, **changes), warm_parameters, warm_lower_bound


def _from_unit_scale(result, exponent, n_features):
    """Scale a FitResult (and its events) back to the data's units, in place."""
    result.parameters = scale_parameters(result.parameters, exponent)
    offset = n_features * exponent * LOG_2  # log densities: log p(x) = log p'(x') - D e log 2
    result.lower_bound = result.lower_bound - offset
    result.lower_bounds = [bound - offset for bound in result.lower_bounds]
    for event in result.singular_events:
        if "loading" in event:
            with np.errstate(over="ignore", under="ignore"):
                event["loading"] = float(np.ldexp(event["loading"], 2 * exponent))


# --------------------------------------------------------------------------
# Initialisation


def _chunks(n_samples):
    for start in range(0, n_samples, INIT_CHUNK):
        yield start, min(n_samples, start + INIT_CHUNK)


def parameters_from_resp(X, sample_weight, resp_of, n_components, covariance_type, reg_covar):
    """Weighted M-step from responsibilities, in numpy, two passes over chunks.

    ``resp_of(start, stop)`` returns the (stop - start, K) responsibilities of
    those rows. Follows scikit-learn's ``_estimate_gaussian_parameters`` (nk
    padded by 10 eps), with weights normalised by the total sample weight.
    Returns (weights, means, covariances) in scikit-learn's layouts.
    """
    n_samples, n_features = X.shape
    # Sums are taken around a data row: the 10 eps padding of nk then biases the
    # means by 1e-15 of the data's spread, not of its magnitude (identical rows at
    # 1e100 got a covariance of ~1e171 from that bias).
    shift = X[_sources.first_positive(sample_weight)].astype(np.float64)
    nk = np.zeros(n_components)
    weighted_sum = np.zeros((n_components, n_features))
    for start, stop in _chunks(n_samples):
        weighted_resp = resp_of(start, stop) * sample_weight[start:stop, np.newaxis]
        nk += weighted_resp.sum(axis=0)
        weighted_sum += weighted_resp.T @ (X[start:stop].astype(np.float64) - shift)
    nk += _kernels_mstep.WEIGHT_FLOOR
    means = shift + weighted_sum / nk[:, np.newaxis]
    covariances = _sources.zero_covariances(covariance_type, n_components, n_features)
    for start, stop in _chunks(n_samples):
        weighted_resp = resp_of(start, stop) * sample_weight[start:stop, np.newaxis]
        rows = X[start:stop].astype(np.float64)
        for k in range(n_components):
            diff = rows - means[k]
            weighted_diff = weighted_resp[:, k, np.newaxis] * diff
            if covariance_type == "full":
                covariances[k] += weighted_diff.T @ diff
            elif covariance_type == "tied":
                covariances += weighted_diff.T @ diff
            else:
                covariances[k] += (weighted_diff * diff).sum(axis=0)
    covariances = covariances_from_scatter(covariances, nk, covariance_type, reg_covar)
    weights = nk / sample_weight.sum()
    return weights, means, covariances


def covariances_from_scatter(scatter, nk, covariance_type, reg_covar):
    """Covariances (scikit-learn's layouts) from the weighted scatter around the means
    ((K, D, D) 'full', (D, D) 'tied', (K, D) otherwise) and the padded counts ``nk``;
    ``scatter`` may be overwritten."""
    covariances = scatter
    n_features = covariances.shape[-1]
    if covariance_type in ("full", "tied"):
        # (w d)^T d rounds entry (i, j) differently from (j, i): make it exactly
        # symmetric, as the M-step's mirrored scatter is (a model that keeps its
        # initial covariance, e.g. max_iter=0, must return a symmetric one).
        covariances = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
    if covariance_type == "tied":
        covariances /= nk.sum()
        covariances.flat[:: n_features + 1] += reg_covar
    elif covariance_type == "full":
        covariances /= nk[:, np.newaxis, np.newaxis]
        for k in range(len(nk)):
            covariances[k].flat[:: n_features + 1] += reg_covar
    else:
        covariances = covariances / nk[:, np.newaxis] + reg_covar
        if covariance_type == "spherical":
            covariances = covariances.mean(axis=1)
    return covariances


def _one_hot(labels, n_components):
    def resp_of(start, stop):
        rows = labels[start:stop]
        resp = np.zeros((stop - start, n_components))
        assigned = rows >= 0
        resp[np.flatnonzero(assigned), rows[assigned]] = 1.0
        return resp

    return resp_of


def initial_resp(X, sample_weight, settings, random_state):
    """scikit-learn's initialisations, as a ``resp_of(start, stop)`` function.

    The fit takes its 'kmeans' start from here; the other starts compute the same
    parameters without (N,) or (N, K) arrays (start_parameters), and this is
    their reference in the tests."""
    random_state = _random_state(random_state)
    n_samples = X.shape[0]
    n_components = settings.n_components
    method = settings.init_params
    if method in ("kmeans", "k-means++"):
        # k-means squares raw values (k-means++ the norms of the rows, KMeans the
        # deviations behind its tolerance), which must neither overflow nor
        # underflow even where EM needs no rescaling (data far below the scale
        # reg_covar sets, or identical rows): the labels and chosen points of
        # X * 2**-e are those of X.
        X = _unit_magnitude(X)
    if method == "kmeans":
        from sklearn.cluster import KMeans  # here: sklearn.cluster's import is 0.2 s

        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        return _one_hot(labels, n_components)
    if method == "k-means++":
        from sklearn.cluster import kmeans_plusplus

        _, indices = kmeans_plusplus(
            X, n_components, random_state=random_state, sample_weight=sample_weight
        )
        labels = np.full(n_samples, -1)
        labels[indices] = np.arange(n_components)
        return _one_hot(labels, n_components)
    if method == "random_from_data":
        candidates = np.flatnonzero(sample_weight > 0)
        indices = candidates[
            random_state.choice(len(candidates), size=n_components, replace=False)
        ]
        labels = np.full(n_samples, -1)
        labels[indices] = np.arange(n_components)
        return _one_hot(labels, n_components)
    resp = random_state.uniform(size=(n_samples, n_components))
    resp /= resp.sum(axis=1)[:, np.newaxis]
    return lambda start, stop: resp[start:stop]


def initialize(X, sample_weight, settings, random_state, context):
    """Starting parameters of one restart (user-given parts override).

    ``X`` is an ndarray (with ``sample_weight``) or a source; the start is
    :func:`start_parameters`'s.
    """
    source = as_source(X, sample_weight)
    covariance_type = settings.covariance_type
    weights = means = covariances = None
    user_given = (
        settings.weights_init is not None
        and settings.means_init is not None
        and settings.precisions_init is not None
    )
    status = None
    if not user_given:
        weights, means, covariances, status = start_parameters(
            source, settings, random_state, context.precision_limit
        )
    if settings.weights_init is not None:
        weights = np.array(settings.weights_init, dtype=np.float64)
    if settings.means_init is not None:
        means = np.array(settings.means_init, dtype=np.float64)
    if settings.precisions_init is not None:
        precisions_chol = precision_cholesky_from_precisions(
            settings.precisions_init, covariance_type
        )
        covariances = covariances_from_precisions_chol(precisions_chol, covariance_type)
        return Parameters(weights, means, covariances, precisions_chol)
    precisions_chol, factor_status = _factors_and_status(
        covariances, covariance_type, settings.n_components, context.precision_limit
    )
    if status is None:
        status = factor_status
    else:  # the sampled start's empty components stay flagged as empty
        status = np.where(status == STATUS_OK, factor_status, status)
    parameters = Parameters(weights, means, covariances, precisions_chol)
    if np.any(status != STATUS_OK):
        _repair(parameters, status, source, None, settings, random_state, context, 0)
    return parameters


def start_parameters(source, settings, random_state, precision_limit=np.inf):
    """(weights, means, covariances, status) of the start ``settings.init_params`` asks
    for, from any source (BayesianGaussianMixture's start too).

    In memory the starts are scikit-learn's (its exact k-means on all the data
    by default); streamed and Dask data, or ``settings.init_sample_size``,
    start k-means and k-means++ from a seeded uniform sample of rows (see
    :func:`_sampled_start`). 'random_from_data' reads only its K rows;
    'random' draws scikit-learn's responsibilities a chunk at a time
    (:func:`_random_start`). ``status`` is None, or the sampled
    start's flags (components no row went to). ``settings`` needs
    n_components, covariance_type, init_params, init_sample_size, reg_covar
    and block_size.
    """
    method = settings.init_params
    sampled = method in ("kmeans", "k-means++") and (
        settings.init_sample_size is not None or not source.in_memory
    )
    if sampled:
        parameters, status = _sampled_start(source, settings, random_state, precision_limit)
        return parameters.weights, parameters.means, parameters.covariances, status
    if method == "random_from_data":
        return (*_start_from_rows(source, settings, random_state), None)
    if method == "random":
        return (*_random_start(source, settings, random_state), None)
    if method == "k-means++":  # on all the data, in memory: scikit-learn's rows
        rows = _kmeans_plusplus_rows(source, settings, random_state)
        return (*_start_from_rows(source, settings, random_state, rows), None)
    # k-means on all the data, in memory: scikit-learn's exact start
    resp_of = initial_resp(source.X, source.sample_weight, settings, random_state)
    return (*parameters_from_resp(
        source.X, source.sample_weight, resp_of, settings.n_components,
        settings.covariance_type, settings.reg_covar,
    ), None)


def _kmeans_plusplus_rows(source, settings, random_state):
    """The K rows scikit-learn's ``kmeans_plusplus`` picks from all of an in-memory
    source, found in memory that does not grow with N (_kmeans_plusplus).

    As in initial_resp, data whose magnitude would overflow or underflow the
    squares is seeded at X * 2**-e (the same rows); that copy is the one
    O(N) array, for such data only.
    """
    X = _unit_magnitude(source.X)
    return _kmeans_plusplus.kmeans_plusplus_rows(X, source.sample_weight,
                                                 settings.n_components,
                                                 _random_state(random_state))


def _magnitude_exponent(X):
    """e where the magnitude of X, in [2**(e-1), 2**e), is outside
    2**+-SCALE_EXPONENT_LIMIT; else 0 (k-means squares raw values, which must
    neither overflow nor underflow: X * 2**-e is seeded instead)."""
    magnitude = max(float(X.max()), -float(X.min())) if X.size else 0.0
    exponent = math.frexp(magnitude)[1] if magnitude > 0 else 0
    return exponent if abs(exponent) > SCALE_EXPONENT_LIMIT[X.dtype] else 0


def _unit_magnitude(X):
    """X, or X * 2**-e (see _magnitude_exponent)."""
    exponent = _magnitude_exponent(X)
    return np.ldexp(X, -exponent) if exponent else X


def _choose_positive_rows(source, n_rows, random_state, block_size, legacy=True):
    """``n_rows`` distinct rows of positive weight, in the order drawn.

    With ``legacy`` and up to _sources.PERMUTATION_LIMIT positive rows, the
    draw is scikit-learn's (``random_state.choice(n_positive, n_rows,
    replace=False)``, which permutes all of them; made without their (N,)
    permutation by _draws.choice_without_replacement); otherwise a Generator
    seeded from ``random_state`` draws them (``Generator.choice``: O(n_rows)
    memory when n_rows is at most 1/50 of the rows, else a permutation).
    """
    n_positive = source.n_positive()
    if legacy and n_positive <= _sources.PERMUTATION_LIMIT:
        ranks = _draws.choice_without_replacement(random_state, n_positive, n_rows)
    else:
        generator = np.random.default_rng(random_state.randint(2**32, dtype=np.uint64))
        ranks = generator.choice(n_positive, size=n_rows, replace=False)
    order = np.argsort(ranks, kind="stable")
    rows = np.empty(n_rows, dtype=np.int64)
    rows[order] = source.positive_rows(ranks[order], block_size)
    return rows


def _start_from_rows(source, settings, random_state, rows=None):
    """Parameters of a start whose component k is the single row ``rows[k]``
    ('random_from_data', 'k-means++'): what parameters_from_resp gives for
    one-hot responsibilities on those rows, reading only them.

    The sums over all rows of parameters_from_resp have one non-zero term per
    component, so they are computed from that term alone; a 'tied'
    covariance adds the components' terms in the order parameters_from_resp
    meets them (by INIT_CHUNK chunk of their row, then by component).
    """
    n_components = settings.n_components
    covariance_type = settings.covariance_type
    if rows is None:
        rows = _choose_positive_rows(source, n_components, _random_state(random_state),
                                     settings.block_size)
    order = np.argsort(rows, kind="stable")
    points = np.empty((n_components, source.shape[1]))
    points[order] = source.rows(rows[order]).astype(np.float64)
    point_weights = np.empty(n_components)
    point_weights[order] = source.weights_at(rows[order])
    shift = source.rows([source.first_positive_row()])[0].astype(np.float64)
    nk = point_weights + _kernels_mstep.WEIGHT_FLOOR
    # weighted_resp.T @ (X - shift): one non-zero product per component
    means = shift + (point_weights[:, np.newaxis] * (points - shift)) / nk[:, np.newaxis]
    diff = points - means
    weighted_diff = point_weights[:, np.newaxis] * diff
    n_features = source.shape[1]
    if covariance_type == "full":
        covariances = weighted_diff[:, :, np.newaxis] * diff[:, np.newaxis, :]
    elif covariance_type == "tied":
        covariances = np.zeros((n_features, n_features))
        for k in sorted(range(n_components), key=lambda k: (rows[k] // INIT_CHUNK, k)):
            covariances += weighted_diff[k][:, np.newaxis] * diff[k][np.newaxis, :]
    else:
        covariances = weighted_diff * diff
    covariances = covariances_from_scatter(covariances, nk, covariance_type,
                                           settings.reg_covar)
    # parameters_from_resp divides by numpy's sum of all the weights; this is the
    # sum per block, then in block order, which every source computes alike
    # (the same for unit weights, within an ulp or so otherwise)
    weights = nk / source.total_weight(settings.block_size)
    return weights, means, covariances


def _random_start(source, settings, random_state):
    """scikit-learn's 'random' start (uniform responsibilities, rows normalised, then
    the weighted M-step of parameters_from_resp) from any source, block by block.

    The responsibilities are drawn INIT_CHUNK rows at a time, in row order, as
    the chunks of parameters_from_resp are reached: the same numbers as
    scikit-learn's one draw of (n_samples, K), and ``random_state`` ends where
    that draw leaves it (see _sources.draw_resp). The second pass (the scatter
    around the means) draws them again from a copy of the starting state. The
    sums are parameters_from_resp's, chunk by chunk in order; the weights are
    divided by the weights' sum per block in block order (as _start_from_rows).
    Memory: one chunk's responsibilities, never (n_samples, K).
    """
    random_state = _random_state(random_state)
    n_components = settings.n_components
    replay = np.random.RandomState()
    replay.set_state(random_state.get_state())
    shift = source.rows([source.first_positive_row()])[0].astype(np.float64)
    nk, weighted_sum = _sources.fold_random_sums(source, INIT_CHUNK, random_state,
                                                 n_components, shift)
    nk += _kernels_mstep.WEIGHT_FLOOR
    means = shift + weighted_sum / nk[:, np.newaxis]
    scatter = _sources.fold_random_scatters(source, INIT_CHUNK, replay, means,
                                            settings.covariance_type)
    covariances = covariances_from_scatter(scatter, nk, settings.covariance_type,
                                           settings.reg_covar)
    weights = nk / source.total_weight(settings.block_size)
    return weights, means, covariances


def _sampled_start(source, settings, random_state, precision_limit=np.inf):
    """k-means or k-means++ on a seeded uniform sample of the rows, then one pass.

    The sample is ``settings.init_sample_size`` rows (default
    DEFAULT_INIT_SAMPLE_SIZE, at most the rows of positive weight) drawn
    without replacement among the rows of positive weight, with their
    weights. k-means++ picks K of its rows and the start is computed from
    them alone (as for 'random_from_data'). k-means runs scikit-learn's
    ``KMeans`` on the sample; one pass over all the data then gives every
    row to its nearest centre and computes the starting parameters from
    those hard assignments (statistics around the centres, per block, summed
    in block order, then the M-step). Returns (Parameters, status): status
    flags components no row went to (the fallback re-seeds them).
    """
    random_state = _random_state(random_state)
    n_components = settings.n_components
    n_positive = source.n_positive()
    size = DEFAULT_INIT_SAMPLE_SIZE if settings.init_sample_size is None else int(
        settings.init_sample_size)
    size = max(n_components, min(size, n_positive))
    rows = np.sort(_choose_positive_rows(source, size, random_state, settings.block_size,
                                         legacy=False))
    sample = source.rows(rows)
    sample_weight = source.weights_at(rows)
    exponent = _magnitude_exponent(sample)
    scaled = np.ldexp(sample, -exponent) if exponent else sample
    # k-means++'s rows of the sample: the start itself, or KMeans's seeds (the draws
    # KMeans's own k-means++ makes, without its (trials, sample) distances)
    indices = _kmeans_plusplus.kmeans_plusplus_rows(scaled, sample_weight, n_components,
                                                    random_state)
    if settings.init_params == "k-means++":
        weights, means, covariances = _start_from_rows(source, settings, random_state,
                                                       rows[indices])
        factors, status = _factors_and_status(covariances, settings.covariance_type,
                                              n_components, precision_limit)
        return Parameters(weights, means, covariances, factors), status
    from sklearn.cluster import KMeans  # here: sklearn.cluster's import is 0.2 s

    centres = (  # copy_x=False: the sample is ours (no second copy of it)
        KMeans(n_clusters=n_components, init=scaled[indices], n_init=1,
               random_state=random_state, copy_x=False)
        .fit(scaled, sample_weight=sample_weight)
        .cluster_centers_
    )
    centres = np.ldexp(centres.astype(np.float64), exponent) if exponent else centres
    centres = centres.astype(source.dtype).astype(np.float64)  # as the kernels see them
    nk, sum_x, scatter = _sources.fold_hard_statistics(
        source, settings.block_size, settings.covariance_type, centres
    )
    return maximization(nk, sum_x, scatter, centres, settings.covariance_type,
                        settings.reg_covar)


def _factors_and_status(covariances, covariance_type, n_components, limit=np.inf):
    """Precision factors of every component, with STATUS_SINGULAR where none exists."""
    status = np.full(n_components, STATUS_OK)
    if covariance_type == "tied":
        factor = _factor(covariances, "tied", limit)
        if factor is None:
            status[:] = STATUS_SINGULAR
            factor = np.zeros_like(covariances)
        return factor, status
    factors = np.zeros_like(covariances)
    for k in range(n_components):
        factor = _factor(covariances[k], covariance_type, limit)
        if factor is None:
            status[k] = STATUS_SINGULAR
        else:
            factors[k] = factor
    return factors, status


# --------------------------------------------------------------------------
# Singular-covariance fallback


def weighted_mean_and_scatter(source, block_size):
    """(mean, scatter, total weight) of the data: the weighted mean, the weighted
    scatter sum_i w_i (x_i - mean)(x_i - mean)^T (exactly symmetric) and sum_i w_i,
    float64, per block and then in block order (the same bits from every source).

    The mean is accumulated around a data row, so identical rows have their own
    value as mean and an exactly zero scatter.
    """
    total = source.total_weight(block_size)
    shift = source.rows([source.first_positive_row()])[0].astype(np.float64)
    mean = np.zeros(source.shape[1])
    for parts in source.map_chunks(_sources.chunk_weighted_sums, block_size, shift):
        for part in parts:
            mean += part
    mean = shift + mean / total
    scatter = np.zeros((source.shape[1], source.shape[1]))
    for parts in source.map_chunks(_sources.chunk_weighted_scatters, block_size, mean):
        for part in parts:
            scatter += part
    return mean, 0.5 * (scatter + scatter.T), total


class _FitContext:
    """Per-fit state the fallback needs: data covariance (lazily), events."""

    def __init__(self, X, sample_weight, restart, precision_limit=np.inf, block_size=None):
        self.source = as_source(X, sample_weight)
        # the data covariance's chunks: INIT_CHUNK rows in memory (unless the
        # fit's blocks are given), the fit's blocks otherwise
        self.block_size = block_size or INIT_CHUNK
        self.restart = restart
        self.precision_limit = precision_limit
        self.events = []
        self.reseeded_empty = set()  # components re-seeded because they lost their mass
        self.parked = set()  # ... and parked when they lost it again
        self._data_covariance = None

    def data_covariance(self):
        """Weighted covariance of the data, float64, computed in chunks once."""
        if self._data_covariance is None:
            _, scatter, total = weighted_mean_and_scatter(self.source, self.block_size)
            self._data_covariance = scatter / total
        return self._data_covariance

    def scale(self):
        """Mean per-feature variance of the data (positive; 1 for constant data).

        A variance below the rounding of the data's magnitude (identical rows
        whose mean was rounded) counts as constant data.
        """
        value = float(np.trace(self.data_covariance()) / self.source.shape[1])
        magnitude = self.source.max_abs()
        resolution = 4.0 * float(np.finfo(self.source.dtype).eps) * magnitude  # Python float
        if not (value > resolution * resolution and math.isfinite(value)):
            return 1.0
        return value


def _component_covariance(parameters, k, covariance_type):
    if covariance_type == "tied":
        return parameters.covariances
    return parameters.covariances[k]


def _set_component(parameters, k, covariance_type, covariance, precision_chol):
    if covariance_type == "tied":
        parameters.covariances = covariance
        parameters.precisions_chol = precision_chol
    else:
        parameters.covariances[k] = covariance
        parameters.precisions_chol[k] = precision_chol


def _loaded(covariance, loading, covariance_type):
    if covariance_type in ("full", "tied"):
        loaded = covariance.copy()
        loaded.flat[:: covariance.shape[0] + 1] += loading
        return loaded
    return covariance + loading


def _data_covariance_as(context, covariance_type, reg_covar):
    covariance = context.data_covariance().copy()
    covariance.flat[:: covariance.shape[0] + 1] += reg_covar
    if covariance_type == "diag":
        return np.diag(covariance).copy()
    if covariance_type == "spherical":
        return float(np.trace(covariance) / covariance.shape[0])
    return covariance


def _factor(covariance, covariance_type, limit=np.inf):
    """Precision factor of one component's covariance, or None (also if too large)."""
    if covariance_type in ("full", "tied"):
        factor = precision_cholesky(covariance, "tied")
    else:
        factor = precision_cholesky(np.atleast_1d(covariance), "diag")
        factor = None if factor is None else factor.reshape(np.shape(covariance))
    if factor is None or np.any(_too_large(factor, limit)):
        return None
    if covariance_type in ("full", "tied"):
        with np.errstate(over="ignore", invalid="ignore"):
            if _ill_conditioned(covariance[np.newaxis], factor[np.newaxis])[0]:
                return None
    return factor


def _repair(parameters, status, X, sample_weight, settings, random_state, context, iteration):
    """Apply the fallback to every flagged component, recording what was done."""
    covariance_type = settings.covariance_type
    reg_covar = settings.reg_covar
    flagged = np.flatnonzero(status != STATUS_OK)
    if covariance_type == "tied":
        # The shared covariance is repaired once; empty components are re-seeded.
        singular = [k for k in flagged if status[k] == STATUS_SINGULAR][:1]
        flagged = singular + [k for k in flagged if status[k] == STATUS_EMPTY]
    for k in flagged:
        event = {"restart": context.restart, "iteration": iteration, "component": int(k)}
        if settings.on_singular == "raise":
            detail = ": the component lost all its mass" if status[k] == STATUS_EMPTY else ""
            raise SingularCovarianceError(
                SINGULAR_MESSAGE.format(component=k, iteration=iteration, detail=detail)
            )
        if status[k] == STATUS_SINGULAR:
            covariance = _component_covariance(parameters, k, covariance_type)
            scale = context.scale()
            loading = max(reg_covar, LOADING_START * scale)
            while loading <= LOADING_LIMIT * scale:
                loading *= 10.0
                loaded = _loaded(covariance, loading - reg_covar, covariance_type)
                factor = _factor(loaded, covariance_type, context.precision_limit)
                if factor is not None:
                    _set_component(parameters, k, covariance_type, loaded, factor)
                    event.update(action="diagonal loading", loading=loading)
                    break
            else:
                _reseed(parameters, k, X, sample_weight, settings, random_state, context)
                event.update(action="re-seeded", reason="singular covariance")
        elif k in context.reseeded_empty:
            # Re-seeded once and emptied again (more components than the data
            # supports): park it with the data's covariance and a weight of
            # ~1e-16 instead of re-seeding it at every iteration.
            _park(parameters, k, X, settings, context)
            if k in context.parked:
                continue  # recorded when first parked
            context.parked.add(k)
            event.update(action="parked", reason="lost all its mass again after a re-seed")
        else:
            _reseed(parameters, k, X, sample_weight, settings, random_state, context)
            context.reseeded_empty.add(k)
            event.update(action="re-seeded", reason="lost all its mass")
        context.events.append(event)


def _reseed(parameters, k, X, sample_weight, settings, random_state, context):
    """Move component k to a random data point with the data's covariance."""
    covariance_type = settings.covariance_type
    source = context.source
    rank = _random_state(random_state).randint(source.n_positive())
    row = source.positive_rows([rank], context.block_size)[0]
    parameters.means[k] = source.rows([row])[0].astype(np.float64)
    if covariance_type != "tied":
        _set_data_covariance(parameters, k, X, settings, context)
    elif precision_cholesky(parameters.covariances, "tied") is None:
        _set_data_covariance(parameters, 0, X, settings, context)  # the shared one
    # Give the component a share of the weight so that it can pick up mass.
    share = 1.0 / settings.n_components
    parameters.weights = parameters.weights * (1.0 - share)
    parameters.weights[k] += share


def _set_data_covariance(parameters, k, X, settings, context):
    """Give component k (slot 0 for 'tied') the data's covariance plus reg_covar."""
    covariance_type = settings.covariance_type
    covariance = _data_covariance_as(context, covariance_type, settings.reg_covar)
    factor = _factor(covariance, covariance_type, context.precision_limit)
    if factor is None:
        # Constant data with reg_covar = 0: fall back to the loading limit.
        covariance = _loaded(covariance, LOADING_LIMIT * context.scale(), covariance_type)
        factor = _factor(covariance, covariance_type, context.precision_limit)
    if factor is None:
        raise _Breakdown("the data's covariance has no usable precision factor")
    _set_component(parameters, k, covariance_type, covariance, factor)


def _park(parameters, k, X, settings, context):
    """Keep an empty component where it is, with the data's covariance (its weight stays ~0)."""
    if settings.covariance_type != "tied":  # a tied model's shared covariance is fine
        _set_data_covariance(parameters, k, X, settings, context)


# --------------------------------------------------------------------------
# The EM loop


def _uses_compiled_loop(source, settings):
    """Whole stretches of iterations in one compiled call: small data in memory, no
    verbose output (nor progress callbacks: such fits take milliseconds)."""
    return (source.in_memory and settings.verbose == 0
            and is_small(source.shape[0], source.shape[1], settings.n_components))


def _compiled_iterations(X, sample_weight, parameters, settings, lower_bound, max_iter):
    """Run up to max_iter iterations in one serial compiled call.

    Returns (parameters, lower_bounds, status, converged) like _one_iteration.
    """
    covariance_type = settings.covariance_type
    n_features = X.shape[1]
    X, sample_weight = read_only(X), _sources.row_weights(sample_weight)
    precisions_chol = parameters.precisions_chol
    if covariance_type in ("full", "tied"):
        if covariance_type == "tied":
            precisions_chol = precisions_chol[np.newaxis]
        weights, means, covariances, precisions_chol, status, bounds, converged = (
            _kernels_loop.dense_em(
                X, sample_weight, parameters.weights, parameters.means,
                np.ascontiguousarray(precisions_chol), settings.reg_covar, max_iter,
                settings.tol, lower_bound,
            )
        )
    else:
        if covariance_type == "spherical":
            precisions_chol = np.repeat(precisions_chol[:, np.newaxis], n_features, axis=1)
        weights, means, covariances, precisions_chol, status, bounds, converged = (
            _kernels_loop.diagonal_em(
                X, sample_weight, parameters.weights, parameters.means,
                np.ascontiguousarray(precisions_chol), settings.reg_covar, max_iter,
                settings.tol, lower_bound, covariance_type == "spherical",
            )
        )
    if not math.isfinite(bounds[-1]):
        return parameters, list(bounds), status, False
    covariances, precisions_chol = _layout(covariances, precisions_chol, covariance_type)
    return Parameters(weights, means, covariances, precisions_chol), list(bounds), status, converged


def _one_iteration(source, total_weight, parameters, settings, lower_bound):
    """One E+M iteration through the block kernels, over any source.

    ``total_weight`` is the sum of the sample weights (summed once per fit,
    per block and then in block order: on P1 the sum took a seventh of an
    iteration).

    Returns (parameters, [lower_bound], status, converged); with a
    non-finite lower bound the parameters are returned unchanged.
    """
    covariance_type = settings.covariance_type
    statistics = source_statistics(source, parameters, covariance_type, settings.block_size)
    nk, sum_x, scatter, centres = (statistics.nk, statistics.sum_x, statistics.scatter,
                                   statistics.centres)
    new_bound = statistics.log_likelihood / total_weight
    if not math.isfinite(new_bound):
        return parameters, [new_bound], np.zeros(settings.n_components, np.int64), False
    parameters, status = maximization(
        nk, sum_x, scatter, centres, covariance_type, settings.reg_covar
    )
    return parameters, [new_bound], status, bool(abs(new_bound - lower_bound) < settings.tol)


def run_em(X, sample_weight, parameters, settings, random_state, context, lower_bound):
    """Iterate E+M from ``parameters`` until convergence or max_iter.

    Small data runs in serial compiled stretches (see SMALL_WORK_LIMIT),
    larger data one iteration of the block kernels at a time; both hand flagged
    components to the fallback between iterations.
    Returns (parameters, lower_bound, lower_bounds, n_iter, converged).
    Raises _Breakdown when the likelihood stops being finite.
    """
    source = as_source(X, sample_weight)
    compiled = _uses_compiled_loop(source, settings)
    if not compiled:
        total_weight = source.total_weight(settings.block_size)
    lower_bounds = []
    converged = False
    while len(lower_bounds) < settings.max_iter and not converged:
        if compiled:
            parameters, bounds, status, converged = _compiled_iterations(
                source.X, source.sample_weight, parameters, settings, lower_bound,
                settings.max_iter - len(lower_bounds),
            )
        else:
            started = time.perf_counter()
            parameters, bounds, status, converged = _one_iteration(
                source, total_weight, parameters, settings, lower_bound
            )
            if settings.progress is not None and bounds:
                settings.progress(len(lower_bounds) + 1, bounds[-1], bounds[-1] - lower_bound,
                                  time.perf_counter() - started)
        if settings.verbose == 0 and bounds and all(map(math.isfinite, bounds)):
            lower_bounds += bounds
            lower_bound = bounds[-1]
            bounds = ()  # recorded; the loop below prints and checks one at a time
        for bound in bounds:
            previous, lower_bound = lower_bound, bound
            lower_bounds.append(bound)
            n_iter = len(lower_bounds)
            if not math.isfinite(bound):
                raise _Breakdown(f"log-likelihood is {bound} at iteration {n_iter}")
            if settings.verbose >= 1 and n_iter % settings.verbose_interval == 0:
                message = f"  Iteration {n_iter}"
                if settings.verbose >= 2:
                    message += f"\t ll change {bound - previous:.5g}"
                print(message)
        status = _flag_unrepresentable(parameters, status, settings.covariance_type,
                                       context.precision_limit)
        if np.any(status != STATUS_OK):
            _repair(parameters, status, source, None, settings, random_state, context,
                    len(lower_bounds))
    return parameters, lower_bound, lower_bounds, len(lower_bounds), converged


def fit(X, sample_weight, settings, random_state, warm_parameters=None, warm_lower_bound=None):
    """Fit with restarts; returns the best restart as a FitResult.

    ``warm_parameters`` (warm start) replaces initialisation and restarts.
    Raises ValueError when every restart broke down, or when the fitted
    parameters cannot be represented in float64. Data whose spread is near
    the float64 (float32) limits is fitted at unit scale (see scale_exponent).
    """
    source = as_source(X, sample_weight)
    if not source.in_memory and source.summary is None:
        source.scan(settings.block_size)
    half_spread = _half_spread(source)
    exponent = scale_exponent(source, settings.reg_covar, half_spread)
    if exponent:
        source, settings, warm_parameters, warm_lower_bound = _to_unit_scale(
            source, settings, warm_parameters, warm_lower_bound, exponent
        )
        half_spread = None  # that of the rescaled X is computed afresh
    limit = precision_limit(source, None, half_spread)
    best = None
    events = []
    failures = []
    n_init = 1 if warm_parameters is not None else settings.n_init
    for restart in range(n_init):
        if settings.verbose:
            print(f"Initialization {restart}")
        context = _FitContext(source, None, restart, limit, settings.block_size)
        try:
            if warm_parameters is not None:
                parameters, lower_bound = warm_parameters, warm_lower_bound
            else:
                parameters = initialize(source, None, settings, random_state, context)
                lower_bound = -np.inf
            if settings.max_iter == 0:
                result = FitResult(parameters, -np.inf, [], 0, False)
            else:
                parameters, lower_bound, lower_bounds, n_iter, converged = run_em(
                    source, None, parameters, settings, random_state, context, lower_bound
                )
                result = FitResult(parameters, lower_bound, lower_bounds, n_iter, converged)
        except _Breakdown as error:
            failures.append(f"restart {restart}: {error}")
            events.extend(context.events)
            continue
        events.extend(context.events)
        if settings.verbose:
            print(f"Initialization converged: {result.converged}\t ll {result.lower_bound:.5g}")
        if best is None or result.lower_bound > best.lower_bound or best.lower_bound == -np.inf:
            best = result
    if best is None:
        raise ValueError(
            "Every restart of the EM fit broke down ("
            + "; ".join(failures)
            + "). Check the data for extreme values or duplicated rows, or increase reg_covar."
        )
    best.singular_events = events
    best.n_failed_restarts = len(failures)
    if exponent:
        _from_unit_scale(best, exponent, source.shape[1])
    if settings.covariance_type in ("full", "tied"):
        # Exactly symmetric, whatever path produced them. The M-step's are (its
        # scatter is mirrored, and its flags are stated: see FASTMATH in
        # _kernels_estep, whose absence once made a 'tied' covariance 1 ulp from
        # symmetric), but a covariance inverted from a user's precisions_init need
        # not be.
        best.parameters.covariances = _symmetric(best.parameters.covariances)
    best.precisions = _check_representable(best.parameters, settings.covariance_type)
    if events:
        warnings.warn(_events_summary(events), SingularCovarianceWarning, stacklevel=3)
    if not best.converged and settings.max_iter > 0:
        warnings.warn(
            "Best performing initialization did not converge. Try different init "
            "parameters, or increase max_iter, tol, or check for degenerate data.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return best


def _events_summary(events):
    shown = []
    for event in events[:5]:
        what = event["action"]
        if "loading" in event:
            what += f" {event['loading']:.3g}"
        if "reason" in event:
            what += f" ({event['reason']})"
        shown.append(
            f"component {event['component']} at iteration {event['iteration']} "
            f"of restart {event['restart']}: {what}"
        )
    more = f"; and {len(events) - 5} more" if len(events) > 5 else ""
    return (
        f"fastem repaired {len(events)} singular or empty component(s): "
        + "; ".join(shown) + more + ". See the fitted model's singular_events_."
    )
