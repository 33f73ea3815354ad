"""scikit-learn's k-means++ seeding in memory independent of the number of rows.

``sklearn.cluster.kmeans_plusplus`` holds several (N,) arrays at once (the
rows' squared norms, the closest squared distances, their cumsum, a copy of
the weights) and an (n_local_trials, N) matrix of distances to the
candidates: 1.25x the data on P2 (10^6 x 8 float64, K=16).
:func:`kmeans_plusplus_rows` picks the same rows from the same random state
and leaves the state where scikit-learn leaves it, streaming over the rows
instead (kernels in :mod:`fastem.kernels.kmeans_plusplus`):

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

Cost: step c computes c + n_local_trials squared distances per row where
scikit-learn, which keeps the closest ones, computes n_local_trials; plus
at most n_local_trials blocks re-read. Memory: the
centres, n_local_trials values per block (at most MAX_BLOCKS blocks: longer
data gets longer blocks), a few scalars; nothing grows with N.

Agreement with scikit-learn: the random state makes the same draws, and the
choices are the same operations on the same values except for two kinds of
sums, which are not bitwise scikit-learn's: the potentials (scikit-learn's
are BLAS products over all N rows, summed in the BLAS's order; here float64
left folds) and the dot products and norms inside each squared distance
(BLAS and einsum orders there, left folds here). The differences are at
rounding level, so a choice differs only when a random value lands that
close to a boundary of the cumsum, whose entries are about 1/N of the total
apart. In float64 that is never seen (P2: all 16 rows equal for seeds 0-2).
In float32, scikit-learn's own float32 potential is off by about 4e-7 of
itself on P2 (10^6 rows; boundaries 1e-6 apart), so any other order of that
sum picks other rows after the first few: on P2 float32, seeds 0-2, this
module picks 5, 1 and 12 of scikit-learn's 16 rows, and scikit-learn's own
code with 1-D ``np.dot`` for the potentials (another BLAS routine) 16, 5
and 12. On small data (the tests: up to 2,001 rows) they agree.
Data far from the origin relative to its spread (offset 10^6, unit spread)
make every squared distance a difference of large norms, dominated by
rounding, in scikit-learn as here: there too the choices follow the
rounding.
"""

import numpy as np

from fastem.kernels import kmeans_plusplus as _kernels

BLOCK_ROWS = 4096  # rows per block: re-reading one costs 4096 rows' distances
MAX_BLOCKS = 1024  # block ends kept per candidate (longer data: longer blocks)


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
    if int(block_rows) < 1:
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}.")
    n_samples = X.shape[0]
    block_rows = max(int(block_rows), -(-n_samples // MAX_BLOCKS))
    n_trials = n_local_trials(n_clusters)
    work = _Workspace(X, sample_weight, weight_step, n_clusters, n_trials, block_rows)
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = _first_row(work, random_state)
    if n_clusters == 1:
        return indices
    # the first centre as the one candidate of a step 0: its potential and cumsum
    best = work.candidate_pass(indices[:1], 0)
    for c in range(1, n_clusters):
        targets = random_state.uniform(size=n_trials) * work.potential(best)
        candidates = work.find_rows(c, best, targets)
        best = work.candidate_pass(candidates, c)
        indices[c] = candidates[best]
        work.keep(c, best)
    return indices


def _checked(X, sample_weight, n_clusters, random_state):
    """(X, weights, step): the weights as kernels read them, sample_weight[i * step]."""
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
        raise ValueError(
            f"n_samples={n_samples} should be >= n_clusters={n_clusters} >= 1."
        )
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}; expected ({n_samples},)."
        )
    if sample_weight.strides[0] == 0:  # broadcast: one value
        return X, np.array(sample_weight[:1]), 0
    return X, np.ascontiguousarray(sample_weight), 1  # other strides: copied


def _first_row(work, random_state):
    """``random_state.choice(n_samples, p=w / w.sum())``, w in X's dtype.

    numpy's choice: cdf = p.cumsum() (float64); cdf /= cdf[-1]; one
    random_sample(); cdf.searchsorted(it, side='right').
    """
    n_samples = work.X.shape[0]
    total = np.empty(1, dtype=work.X.dtype)
    tree = np.empty((3, _kernels.STACK_DEPTH), dtype=np.int64)
    partial = np.empty(_kernels.STACK_DEPTH, dtype=work.X.dtype)
    if _kernels.weight_sum(work.sample_weight, work.weight_step, n_samples, total, tree,
                           partial):
        raise ValueError("sample_weight must be non-negative (and not NaN).")
    if not 0 < total[0] < np.inf:
        raise ValueError(
            f"sample_weight must have a positive finite sum in X's dtype, got {total[0]!r}."
        )
    block_ends = np.empty(work.n_blocks)
    last = _kernels.probability_cumsum(work.sample_weight, work.weight_step, total, 0,
                                       n_samples, 0.0, work.block_rows, block_ends)
    target = random_state.random_sample()
    block = int(np.searchsorted(block_ends / last, target, side="right"))
    start = block * work.block_rows
    carry = block_ends[block - 1] if block else 0.0
    return _kernels.probability_search(
        work.sample_weight, work.weight_step, total, start,
        min(start + work.block_rows, n_samples), carry, last, target,
    )


class _Workspace:
    """The data, the centres chosen so far and the few buffers of the kernels.

    ``centres_t[:, :c]`` are the chosen centres and ``centres_t[:, c:]`` the
    step's candidates (float64, one column each), ``centre_norms`` their
    squared norms; ``potentials[t]`` and ``block_ends[:, t]`` are candidate
    t's potential and the block ends of its cumsum.
    """

    def __init__(self, X, sample_weight, weight_step, n_clusters, n_trials, block_rows):
        n_samples, n_features = X.shape
        tile_rows = _kernels.TILE_ROWS
        self.X = X
        self.sample_weight = sample_weight
        self.weight_step = weight_step
        self.block_rows = block_rows
        self.n_blocks = -(-n_samples // block_rows)
        self.centres_t = np.empty((n_features, n_clusters + n_trials))
        self.centre_norms = np.empty(n_clusters + n_trials)
        self.scratch = (np.empty((n_features, tile_rows)), np.empty(tile_rows),
                        np.empty(tile_rows))
        self.distances = np.empty((n_clusters + n_trials, tile_rows), dtype=X.dtype)
        self.closest = np.empty(tile_rows, dtype=X.dtype)
        self.potentials = np.empty(n_trials)
        self.carries = np.empty(n_trials, dtype=X.dtype)
        self.block_ends = np.empty((self.n_blocks, n_trials), dtype=X.dtype)

    def potential(self, candidate):
        """Candidate's potential in X's dtype (scikit-learn's ``current_pot``)."""
        return self.X.dtype.type(self.potentials[candidate])

    def candidate_pass(self, rows, n_chosen):
        """Candidates X[rows] after ``n_chosen`` chosen centres: one pass for their
        potentials and cumsums' block ends; returns the best one's position
        (numpy's argmin of the potentials in X's dtype: the first of ties)."""
        points = self.X[rows].astype(np.float64)
        self.centres_t[:, n_chosen:n_chosen + len(rows)] = points.T
        # scikit-learn's row_norms of the (upcast) centres: einsum
        self.centre_norms[n_chosen:n_chosen + len(rows)] = np.einsum(
            "ij,ij->i", points, points
        )
        self.potentials[:] = 0.0
        self.carries[:] = 0
        _kernels.candidate_pass(
            self.X, self.sample_weight, self.weight_step, self.centres_t,
            self.centre_norms, n_chosen, len(rows), self.scratch, self.distances,
            self.closest, self.potentials, self.carries, self.block_rows, self.block_ends,
        )
        return int(np.argmin(self.potentials[:len(rows)].astype(self.X.dtype)))

    def keep(self, n_chosen, candidate):
        """Candidate becomes chosen centre number ``n_chosen``."""
        self.centres_t[:, n_chosen] = self.centres_t[:, n_chosen + candidate]
        self.centre_norms[n_chosen] = self.centre_norms[n_chosen + candidate]

    def find_rows(self, n_chosen, candidate, targets):
        """np.searchsorted(np.cumsum(w * closest_dist_sq), targets), clipped to
        n_samples - 1, where closest_dist_sq is over the ``n_chosen`` chosen
        centres (candidate ``candidate`` of the last pass was the last one).

        The first block whose end reaches a target holds its row: that block
        alone is read again, from the cumsum at the end of the block before.
        """
        n_samples = self.X.shape[0]
        block_ends = self.block_ends[:, candidate]
        blocks = np.searchsorted(block_ends, targets)  # a float64 compare, as numpy's
        found = np.full(len(targets), -1, dtype=np.int64)
        found[blocks == self.n_blocks] = n_samples - 1  # past the end: scikit-learn clips
        # ascending blocks: a target still unfound when its block is read is in it
        for block in np.unique(blocks[blocks < self.n_blocks]).tolist():
            start = block * self.block_rows
            carry = block_ends[block - 1] if block else self.X.dtype.type(0)
            _kernels.candidate_search(
                self.X, self.sample_weight, self.weight_step, self.centres_t,
                self.centre_norms, n_chosen, self.scratch, self.distances, self.closest,
                start, min(start + self.block_rows, n_samples), carry, targets, found,
            )
        return found
