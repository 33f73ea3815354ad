"""Row-streaming kernels of the bounded-memory k-means++ (fastem.em.kmeans_plusplus).

Each kernel reads rows in order and keeps only scalars and the small arrays
it is given: no (N,) array. Arithmetic that decides which rows scikit-learn's
``kmeans_plusplus`` picks is reproduced operation for operation:

* numpy's sum of a contiguous 1-D array (``sample_weight.sum()``) is one
  pairwise sum over the whole array (numpy's ``pairwise_sum``: leaves of at
  most 128 values with 8 accumulators, halves split at a multiple of 8);
* ``cumsum`` is a left fold, so a running carry gives every partial sum
  bitwise, whatever the blocks;
* squared distances follow scikit-learn's ``_euclidean_distances``:
  ``(-2 x.c + |c|^2) + |x|^2`` in float64 (float32 data upcast), cast back to
  the data's dtype, then ``max(d, 0)``; ``|c|^2`` comes from the caller
  (numpy's einsum, as scikit-learn's row_norms). ``x.c`` and ``|x|^2`` are
  plain left folds over the features (no fastmath, so no reassociation and
  no FMA contraction; vectorised across rows, never across features). A
  distance therefore depends on the row and the centre only, never on which
  other centres or rows share the call (a BLAS matrix product promises no
  such thing), so a distance recomputed later is bitwise the one computed
  before, and so is the minimum over the chosen centres.

``sample_weight`` is read as ``sample_weight[i * weight_step]``: step 1 for an
array, step 0 with a one-element array for unit (broadcast) weights. Values
are converted to the data's dtype as scikit-learn's ``_check_sample_weight``
converts them.
"""

import numpy as np
from numba import njit

from fastem.kernels.cache import CACHE

# No reassociation, no contraction: every sum is a plain left fold.
_FLAGS = dict(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")

PAIRWISE_BLOCK = 128  # numpy's PW_BLOCKSIZE
STACK_DEPTH = 64  # the pairwise tree is at most log2(N / 128) + 1 deep
TILE_ROWS = 64  # rows whose distances are computed together (vectorised across rows)


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, **_FLAGS)
def _weight(sample_weight, weight_step, i, like):
    """sample_weight[i] in the dtype of the array ``like``."""
    return like.dtype.type(sample_weight[i * weight_step])


@njit(no_cpython_wrapper=True, no_cfunc_wrapper=True, **_FLAGS)
def _pairwise_leaf(sample_weight, weight_step, start, n, like):
    """numpy's pairwise_sum on a leaf (n <= 128) of the weights, in like's dtype."""
    if n < 8:
        total = like.dtype.type(0)
        for i in range(start, start + n):
            total += _weight(sample_weight, weight_step, i, like)
        return total
    r0 = _weight(sample_weight, weight_step, start, like)
    r1 = _weight(sample_weight, weight_step, start + 1, like)
    r2 = _weight(sample_weight, weight_step, start + 2, like)
    r3 = _weight(sample_weight, weight_step, start + 3, like)
    r4 = _weight(sample_weight, weight_step, start + 4, like)
    r5 = _weight(sample_weight, weight_step, start + 5, like)
    r6 = _weight(sample_weight, weight_step, start + 6, like)
    r7 = _weight(sample_weight, weight_step, start + 7, like)
    i = start + 8
    stop = start + n - n % 8
    while i < stop:
        r0 += _weight(sample_weight, weight_step, i, like)
        r1 += _weight(sample_weight, weight_step, i + 1, like)
        r2 += _weight(sample_weight, weight_step, i + 2, like)
        r3 += _weight(sample_weight, weight_step, i + 3, like)
        r4 += _weight(sample_weight, weight_step, i + 4, like)
        r5 += _weight(sample_weight, weight_step, i + 5, like)
        r6 += _weight(sample_weight, weight_step, i + 6, like)
        r7 += _weight(sample_weight, weight_step, i + 7, like)
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + n:
        total += _weight(sample_weight, weight_step, i, like)
        i += 1
    return total


@njit(**_FLAGS)
def weight_sum(sample_weight, weight_step, n_samples, out, tree, partial):
    """out[0] = numpy's ``sum`` of the first ``n_samples`` weights in out's dtype
    (the pairwise tree numpy uses for a contiguous array), without forming them.

    ``tree`` (int64, (3, STACK_DEPTH)) and ``partial`` (out's dtype,
    (STACK_DEPTH,)) are scratch for the open nodes. Returns True if a weight
    is negative or NaN (numpy's ``choice`` refuses such probabilities).
    """
    bad = False
    for i in range(n_samples if weight_step else min(n_samples, 1)):
        value = sample_weight[i * weight_step]
        if not value >= 0:
            bad = True
    # Depth-first over numpy's tree: a node (start, n) of more than 128 values
    # is the sum of its halves, split at n2 = n // 2 rounded down to a
    # multiple of 8. ``partial`` holds the finished left half of open nodes.
    starts, sizes, has_left = tree[0], tree[1], tree[2]
    depth = 0
    start = 0
    size = n_samples
    while True:
        # descend to the leftmost leaf of (start, size)
        while size > PAIRWISE_BLOCK:
            half = size // 2
            half -= half % 8
            starts[depth] = start
            sizes[depth] = size
            has_left[depth] = 0
            depth += 1
            size = half
        value = _pairwise_leaf(sample_weight, weight_step, start, size, out)
        # climb while the finished value is a right half
        while depth > 0 and has_left[depth - 1] == 1:
            depth -= 1
            value = partial[depth] + value
        if depth == 0:
            out[0] = value
            return bad
        # the finished value is the left half of node depth - 1: go right
        parent_start = starts[depth - 1]
        parent_size = sizes[depth - 1]
        half = parent_size // 2
        half -= half % 8
        partial[depth - 1] = value
        has_left[depth - 1] = 1
        start = parent_start + half
        size = parent_size - half


@njit(**_FLAGS)
def probability_cumsum(sample_weight, weight_step, total, start, stop, carry,
                       block_rows, block_ends):
    """The float64 ``cumsum`` of ``p = w / total[0]`` (in total's dtype, as
    ``sample_weight / sample_weight.sum()``) over rows [start, stop), from
    ``carry``; block_ends[b] = the cumsum at the last row of block b (blocks of
    ``block_rows`` rows from ``start``). Returns the last value."""
    cumulative = carry
    for i in range(start, stop):
        probability = _weight(sample_weight, weight_step, i, total) / total[0]
        cumulative += np.float64(probability)
        offset = i - start + 1
        if offset % block_rows == 0 or i == stop - 1:
            block_ends[(offset - 1) // block_rows] = cumulative
    return cumulative


@njit(**_FLAGS)
def probability_search(sample_weight, weight_step, total, start, stop, carry, last,
                       target):
    """The first row i in [start, stop) where cdf[i] / last > target (numpy's
    ``searchsorted(..., side='right')`` on ``cdf /= cdf[-1]``), the cdf of
    probability_cumsum running from ``carry``; ``stop`` if none."""
    cumulative = carry
    for i in range(start, stop):
        probability = _weight(sample_weight, weight_step, i, total) / total[0]
        cumulative += np.float64(probability)
        if cumulative / last > target:
            return i
    return stop


@njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, **_FLAGS)
def _tile_distances(X, start, n_rows, centres_t, centre_norms, n_chosen, n_centres,
                    scratch, distances, closest):
    """Squared distances of rows start..start + n_rows - 1 (n_rows <= TILE_ROWS).

    distances[m, r] = scikit-learn's squared distance of row start + r to
    centre m < n_centres, in X's dtype; closest[r] = the least over the
    chosen centres m < n_chosen (inf if none). ``centres_t`` is (D, M)
    float64, ``centre_norms`` their squared norms; ``scratch`` is three
    float64 arrays: (D, TILE_ROWS) for the tile's rows transposed, and
    (TILE_ROWS,) twice for their squared norms and one centre's dot products.
    Every dot product and norm is a left fold over the features, one centre
    at a time; the loops over rows are vectorised, each lane the same fold.
    """
    n_features = X.shape[1]
    tile, norms, dots = scratch
    for r in range(n_rows):
        norms[r] = 0.0
    for j in range(n_features):
        for r in range(n_rows):
            value = np.float64(X[start + r, j])
            tile[j, r] = value
            norms[r] += value * value
    for r in range(n_rows):
        closest[r] = np.inf
    for m in range(n_centres):
        for r in range(n_rows):
            dots[r] = 0.0
        for j in range(n_features):
            coordinate = centres_t[j, m]
            for r in range(n_rows):
                dots[r] += tile[j, r] * coordinate
        for r in range(n_rows):
            # -2 x.c + |c|^2 + |x|^2 in float64, cast to X's dtype, then
            # np.maximum(d, 0), which keeps d unless d < 0
            distances[m, r] = (-2.0 * dots[r] + centre_norms[m]) + norms[r]
            if distances[m, r] < 0:
                distances[m, r] = 0
        if m < n_chosen:
            for r in range(n_rows):
                closest[r] = min(closest[r], distances[m, r])


@njit(**_FLAGS)
def candidate_pass(X, sample_weight, weight_step, centres_t, centre_norms, n_chosen,
                   n_candidates, scratch, distances, closest, potentials, carries,
                   block_rows, block_ends):
    """One pass over all rows for the candidates of a k-means++ step.

    Centres 0..n_chosen-1 of ``centres_t`` are chosen, the next
    ``n_candidates`` are candidates. With d the distance to the closest chosen
    centre (inf if none) and e_t = min(d, distance to candidate t), this adds
    ``w * e_t`` (in X's dtype) to potentials[t] (float64) and folds it into
    carries[t] (X's dtype, as ``cumsum(w * closest_dist_sq)``), recording
    block_ends[b, t] = carries[t] at the last row of each block of
    ``block_rows`` rows. Scratch as _tile_distances.
    """
    n_samples = X.shape[0]
    n_centres = n_chosen + n_candidates
    for block in range((n_samples + block_rows - 1) // block_rows):
        block_stop = min((block + 1) * block_rows, n_samples)
        for start in range(block * block_rows, block_stop, TILE_ROWS):
            n_rows = min(TILE_ROWS, block_stop - start)
            _tile_distances(X, start, n_rows, centres_t, centre_norms, n_chosen,
                            n_centres, scratch, distances, closest)
            for t in range(n_candidates):
                potential = potentials[t]
                carry = carries[t]  # X's dtype
                for r in range(n_rows):
                    weight = _weight(sample_weight, weight_step, start + r, carries)
                    product = weight * min(closest[r], distances[n_chosen + t, r])
                    potential += np.float64(product)
                    carry += product
                potentials[t] = potential
                carries[t] = carry
        for t in range(n_candidates):
            block_ends[block, t] = carries[t]


@njit(**_FLAGS)
def candidate_search(X, sample_weight, weight_step, centres_t, centre_norms, n_chosen,
                     scratch, distances, closest, start, stop, carry, targets, found):
    """Rows of the next candidates within [start, stop): with c the ``cumsum`` of
    ``w * closest_dist_sq`` (closest over the ``n_chosen`` chosen centres)
    running from ``carry``, found[t] = the first row with c >= targets[t]
    (``searchsorted``, side 'left'), for every t still -1 on entry."""
    cumulative = carry
    for tile_start in range(start, stop, TILE_ROWS):
        n_rows = min(TILE_ROWS, stop - tile_start)
        _tile_distances(X, tile_start, n_rows, centres_t, centre_norms, n_chosen,
                        n_chosen, scratch, distances, closest)
        for r in range(n_rows):
            weight = _weight(sample_weight, weight_step, tile_start + r, distances)
            cumulative += weight * closest[r]
            for t in range(targets.shape[0]):
                if found[t] < 0 and np.float64(cumulative) >= targets[t]:
                    found[t] = tile_start + r
