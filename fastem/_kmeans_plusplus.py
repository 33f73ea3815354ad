"""scikit-learn's k-means++ seeding in memory independent of the number of rows.

``sklearn.cluster.kmeans_plusplus`` holds several (N,) arrays at once (the
rows' squared norms, the closest squared distances, their cumsum, a copy of
the weights) and an (n_local_trials, N) matrix of distances to the
candidates: 1.25x the data on P2 (10^6 x 8 float64, K=16).
:func:`kmeans_plusplus_rows` picks the same rows from the same random state
and leaves the state where scikit-learn leaves it, streaming over the rows
instead (kernels in :mod:`fastem._kernels_kmeans_plusplus`):

* the first centre is ``random_state.choice(N, p=w / w.sum())``: the weights'
  sum is numpy's pairwise sum, the cdf a running float64 cumsum of
  ``w / sum``, and the one ``random_sample()`` is searched as ``choice`` does;
* each later step draws ``uniform(size=n_local_trials) * current_pot`` and
  searches them in ``cumsum(w * closest_dist_sq)``. Nothing of length N is
  kept: the closest squared distance of a row is recomputed from the centres
  chosen so far whenever it is needed (``min`` is exact, so it is bitwise the
  value a stored array would hold), and the cumsum is known only at the end
  of every block of rows. A step's one pass over the rows computes every
  candidate's potential and, for each candidate, the cumsum it would leave at
  each block end; once the best candidate is known, each new random value
  is placed in a block by those block ends and its row found by re-reading
  that block alone.

Cost: step c computes c + n_local_trials distances per row (scikit-learn
n_local_trials), plus at most n_local_trials blocks re-read. Memory: the
centres, n_local_trials values per block (at most MAX_BLOCKS blocks: longer
data gets longer blocks), a few scalars; nothing grows with N.

Agreement with scikit-learn: the choices and the random state's draws are
the same operations on the same values, except that two sums are not
bitwise scikit-learn's: the potentials (scikit-learn's are BLAS dot
products over all N rows, in the BLAS's order; these are float64 left folds)
and the dot products and norms inside each distance (BLAS and einsum
orders there, left folds here). The differences are at rounding level, so a
choice differs only when a random value lands that close to a boundary of
the cumsum: never seen on float64 data; in float32 the rounding of
scikit-learn's own float32 potential is large enough (about 1e-6 relative
over 10^6 rows) that on P2 in float32 the choices after the first few
differ, as they differ between BLAS builds for scikit-learn itself.
Data far from the origin relative to its spread (offset 10^6, unit spread)
make every squared distance a difference of large norms, dominated by
rounding, in scikit-learn as here: there the choices follow the rounding.
"""

import math

import numpy as np

from fastem import _kernels_kmeans_plusplus as _kernels

BLOCK_ROWS = 4096  # rows per block: re-reading one costs 4096 rows' distances
MAX_BLOCKS = 4096  # block ends kept per candidate (longer data: longer blocks)


def n_local_trials(n_clusters):
    """scikit-learn's default number of candidates per step: 2 + int(log(K))."""
    return 2 + int(np.log(n_clusters))


def kmeans_plusplus_rows(X, sample_weight, n_clusters, random_state,
                         block_rows=BLOCK_ROWS):
    """Row indices scikit-learn's k-means++ picks, in order, in bounded memory.

    The same as ``sklearn.cluster.kmeans_plusplus(X, n_clusters,
    sample_weight=sample_weight, random_state=random_state)[1]``, with
    ``random_state`` left in the same state (see the module docstring for
    where the two can differ).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        C-contiguous float32 or float64 data (finite).
    sample_weight : ndarray of shape (n_samples,)
        Non-negative float64 weights with a positive sum, converted to X's
        dtype as scikit-learn does. A zero-stride array (e.g.
        ``np.broadcast_to(1.0, (n_samples,))``) is read as one value.
    n_clusters : int
        Number of rows to pick, 1 <= n_clusters <= n_samples.
    random_state : numpy.random.RandomState
        Used in place: it draws one ``random_sample()`` and then
        ``uniform(size=2 + int(log(n_clusters)))`` per further centre.
    block_rows : int, default=BLOCK_ROWS
        Rows per block (more when n_samples > block_rows * MAX_BLOCKS): the
        block ends of the cumsum are kept, and finding a candidate re-reads
        one block.

    Returns
    -------
    indices : ndarray of shape (n_clusters,), dtype int64
    """
    X, sample_weight, weight_step = _checked(X, sample_weight, n_clusters, random_state)
    n_samples, n_features = X.shape
    block_rows = max(int(block_rows), -(-n_samples // MAX_BLOCKS))
    n_blocks = -(-n_samples // block_rows)
    n_trials = n_local_trials(n_clusters)
    indices = np.empty(n_clusters, dtype=np.int64)

    indices[0] = _first_row(sample_weight, weight_step, n_samples, X.dtype, random_state,
                            block_rows, n_blocks)

    # centres_t[:, :c] are the chosen centres, centres_t[:, c:c + n_trials] the
    # step's candidates (float64, one column each), centre_norms their |c|^2
    centres_t = np.empty((n_features, n_clusters + n_trials))
    centre_norms = np.empty(n_clusters + n_trials)
    scratch = (np.empty((n_features, _kernels.TILE_ROWS)), np.empty(_kernels.TILE_ROWS),
               np.empty(_kernels.TILE_ROWS))
    distances = np.empty((n_clusters + n_trials, _kernels.TILE_ROWS), dtype=X.dtype)
    closest = np.empty(_kernels.TILE_ROWS, dtype=X.dtype)
    potentials = np.empty(n_trials)
    carries = np.empty(n_trials, dtype=X.dtype)
    block_ends = np.empty((n_blocks, n_trials), dtype=X.dtype)
    found = np.empty(n_trials, dtype=np.int64)

    # the first centre as the one candidate of "step 0": its potential and cumsum
    _set_centres(X, indices[:1], centres_t, centre_norms, 0)
    best = _candidate_pass(X, sample_weight, weight_step, centres_t, centre_norms, 0, 1,
                           scratch, distances, closest, potentials, carries, block_rows, block_ends)
    current_pot = X.dtype.type(potentials[best])
    for c in range(1, n_clusters):
        targets = random_state.uniform(size=n_trials) * current_pot
        _find_rows(X, sample_weight, weight_step, centres_t, centre_norms, c, scratch,
                   distances, closest, block_rows, block_ends[:, best], targets, found)
        _set_centres(X, found, centres_t, centre_norms, c)
        best = _candidate_pass(X, sample_weight, weight_step, centres_t, centre_norms, c,
                               n_trials, scratch, distances, closest, potentials, carries,
                               block_rows, block_ends)
        current_pot = X.dtype.type(potentials[best])
        indices[c] = found[best]
        centres_t[:, c] = centres_t[:, c + best]
        centre_norms[c] = centre_norms[c + best]
    return indices


def _checked(X, sample_weight, n_clusters, random_state):
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype not in (
        np.float32, np.float64
    ):
        raise TypeError("X must be a 2-D float32 or float64 ndarray.")
    if not X.flags.c_contiguous:
        raise ValueError("X must be C-contiguous (np.ascontiguousarray(X)).")
    if not isinstance(random_state, np.random.RandomState):
        raise TypeError("random_state must be a numpy.random.RandomState (used in place).")
    n_samples = X.shape[0]
    if not 1 <= n_clusters <= n_samples:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters} >= 1.")
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}; expected ({n_samples},)."
        )
    if sample_weight.strides[0] == 0:  # broadcast: one value
        return X, np.array(sample_weight[:1]), 0
    return X, sample_weight, 1


def _first_row(sample_weight, weight_step, n_samples, dtype, random_state, block_rows,
               n_blocks):
    """``random_state.choice(n_samples, p=w / w.sum())`` with w in ``dtype``."""
    total = np.empty(1, dtype=dtype)
    if _kernels.weight_sum(sample_weight, weight_step, n_samples, total):
        raise ValueError("sample_weight must be non-negative (and not NaN).")
    if not (0 < total[0] < np.inf):
        raise ValueError(
            "sample_weight must have a positive finite sum in X's dtype, "
            f"got {total[0]!r}."
        )
    block_ends = np.empty(n_blocks)
    last = _kernels.probability_cumsum(sample_weight, weight_step, total, 0, n_samples,
                                       0.0, block_rows, block_ends)
    target = random_state.random_sample()
    # numpy: cdf /= cdf[-1]; cdf.searchsorted(target, side='right')
    block = int(np.searchsorted(block_ends / last, target, side="right"))
    start = block * block_rows
    carry = block_ends[block - 1] if block else 0.0
    return _kernels.probability_search(sample_weight, weight_step, total, start,
                                       min(start + block_rows, n_samples), carry, last,
                                       target)


def _find_rows(X, sample_weight, weight_step, centres_t, centre_norms, n_chosen, scratch,
               distances, closest, block_rows, block_ends, targets, found):
    """found[t] = np.searchsorted(np.cumsum(w * closest_dist_sq), targets[t]), clipped
    to n_samples - 1, from the cumsum's ``block_ends``: the first block whose
    end reaches a target holds its row, found by re-reading that block."""
    n_samples = X.shape[0]
    n_blocks = block_ends.shape[0]
    blocks = np.searchsorted(block_ends, targets)  # float64 compare, as numpy's
    found[:] = -1
    found[blocks == n_blocks] = n_samples - 1  # rounding: past the end; sklearn clips
    # ascending blocks: a target still unfound when its block is read is in it
    for block in np.unique(blocks[blocks < n_blocks]).tolist():
        start = block * block_rows
        carry = block_ends[block - 1] if block else block_ends.dtype.type(0)
        _kernels.candidate_search(
            X, sample_weight, weight_step, centres_t, centre_norms, n_chosen, scratch,
            distances, closest, start, min(start + block_rows, n_samples), carry, targets, found,
        )


def _set_centres(X, rows, centres_t, centre_norms, first):
    """Columns first.. of centres_t = X[rows] in float64, with scikit-learn's norms."""
    points = X[rows].astype(np.float64)
    centres_t[:, first:first + len(rows)] = points.T
    # row_norms: einsum on the float64 rows (upcast first for float32 data)
    centre_norms[first:first + len(rows)] = np.einsum("ij,ij->i", points, points)


def _candidate_pass(X, sample_weight, weight_step, centres_t, centre_norms, n_chosen,
                    n_candidates, scratch, distances, closest, potentials, carries, block_rows,
                    block_ends):
    """Potentials of the candidates (and their cumsums' block ends); the best's index."""
    potentials[:] = 0.0
    carries[:] = 0
    _kernels.candidate_pass(
        X, sample_weight, weight_step, centres_t, centre_norms, n_chosen, n_candidates,
        scratch, distances, closest, potentials, carries, block_rows, block_ends,
    )
    # scikit-learn: argmin over the potentials in X's dtype (first of ties)
    return int(np.argmin(potentials[:n_candidates].astype(carries.dtype)))
