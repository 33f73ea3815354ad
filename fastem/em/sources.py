"""Where a fit's rows come from: memory, an array read block by block, or Dask.

A fit sees its data as consecutive *blocks* of ``block_size`` rows aligned to
row 0 (``block_size`` comes from the data's shape only, see
``_driver.default_block_size``). Every pass over the data (the E-step, the
checks, the data covariance, a sample-based start) computes one small result
per block with a function of that block's rows alone, and the results are
combined on the calling thread in block order with the same arithmetic
whatever the source. So a fit from the same start gives the same bits from
an ndarray, a memory-mapped ``.npy``, an ``h5py.Dataset``, a ``zarr.Array``
or a Dask array, for any chunking, number of threads, workers or retries.

Sources (``open_source``):

- :class:`MemorySource`: a C-contiguous float ndarray, today's path (the
  E-step's blocks run on the thread pool and are summed by the kernels'
  ``reduce_*``).
- :class:`StreamedSource`: anything with ``shape``, ``dtype``, ``ndim`` and
  row slicing (``np.memmap``, ``h5py.Dataset``, ``zarr.Array``, ...), read in
  *chunks* of whole blocks (about CHUNK_BYTES) by a reader thread that runs
  one chunk ahead of the kernels. Memory is O(chunk), not O(n_samples).
- ``fastem.em.dask_source.DaskSource``: a ``dask.array.Array``; each pass is one
  graph whose tasks run the serial block kernels on row chunks of whole
  blocks (imported only when a Dask array is given).

A chunk function is called as ``function(X, sample_weight, first_row,
block_size, *args)`` on rows [first_row, first_row + len(X)) where
``first_row`` is a multiple of ``block_size``; ``sample_weight`` is the
chunk's float64 weights (ones when none were given). It returns one result
per block, or anything the pass's combiner expects, and must be a
module-level function (Dask sends it to workers by name).
"""

from __future__ import annotations

import math
import mmap
import numbers
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from fastem.kernels import estep as _kernels_estep
from fastem.kernels.cache import read_only
from fastem.kernels.threads import current_threads, run_blocks

# Bytes of X a streamed source reads at a time (rounded to whole blocks, at
# least one block per thread): the reader thread holds the next chunk while
# the kernels work on this one, so a streamed fit holds about 2 * CHUNK_BYTES
# of data (none for a memory map in C order, whose chunks are views of the file's
# pages; one in Fortran order is read into C-ordered copies).
CHUNK_BYTES = 16 << 20

# A chunk of ours is read from a chunked store (zarr) in pieces of whole storage
# chunks of about this many bytes (at least one storage chunk): zarr holds about
# three times a read's bytes while decoding it (see StreamedSource._read_rows), and
# one read per storage chunk would cost zarr's fixed overhead per call (~2 ms)
# for every small chunk, and its parallel decoding.
PIECE_BYTES = 4 << 20

# A memory-mapped chunk is "read" by touching one element per page of it on the
# reader thread: its pages are then in memory (read from disk if need be) before
# the kernels reach them.
PAGE_BYTES = 4096

# Rows picked from a streamed source (the k-means sample) are read in one pass
# over its chunks when they are more than one in this many rows, else one run
# of nearby rows at a time.
DENSE_SAMPLE = 1000


class DataReadError(OSError):
    """Reading a block of a streamed or Dask source failed (names the block)."""


def unit_weights(n_samples):
    """The weights of a fit given none: every row's weight 1.0, as a read-only
    (n_samples,) view of a single value (zero stride), not an array of ones.

    numpy code reads it as it would read ones (the same values, so the same
    sums); the block kernels take it as one weight for every row
    (kernel_weights). An array of ones was 1/D of the data, held for the fit.
    """
    # np.ndarray on a read-only buffer: a read-only view, as np.broadcast_to makes,
    # in a sixth of its time (0.5 against 3 us, a part of every small fit)
    return np.ndarray((n_samples,), np.float64, _ONE, 0, (0,))


_ONE = np.ones(1)
_ONE.flags.writeable = False


def are_unit_weights(sample_weight):
    """Whether ``sample_weight`` is unit_weights' view (weights given by the caller are
    always copied into an array of their own, never a zero-stride view)."""
    return (isinstance(sample_weight, np.ndarray) and sample_weight.ndim == 1
            and sample_weight.strides == (0,) and sample_weight.size > 0
            and sample_weight[0] == 1.0)


def count_positive(sample_weight):
    """The number of rows of positive weight (no (N,) temporary for unit weights)."""
    if are_unit_weights(sample_weight):
        return sample_weight.shape[0]
    return int(np.count_nonzero(sample_weight > 0))


def first_positive(sample_weight):
    """The first row of positive weight (no (N,) temporary for unit weights)."""
    if are_unit_weights(sample_weight):
        return 0
    return int(np.argmax(sample_weight > 0))


def kernel_weights(sample_weight):
    """``sample_weight`` as the block kernels take it: read-only, and unit weights as
    the one weight every row takes (_kernels_estep.UNIT_WEIGHT)."""
    if are_unit_weights(sample_weight):
        return _kernels_estep.UNIT_WEIGHT
    return read_only(sample_weight)


def row_weights(sample_weight):
    """``sample_weight`` as the small-data kernels take it: one read-only float64 per
    row (unit weights become an array of ones: small data, small array)."""
    return read_only(np.ascontiguousarray(sample_weight))


def _rows_in_order(array):
    """Whether a 2-D ``array``'s rows follow one another in memory (C order, or a view
    of it): rows [start, stop) then lie in one range of bytes."""
    return array.strides[0] >= array.strides[1] * array.shape[1]


def _columns_in_order(array):
    """Whether a 2-D ``array``'s columns follow one another in memory, rows in order
    within each (Fortran order, or a view of it): rows [start, stop) then lie in one
    range of bytes per column."""
    row_stride, column_stride = array.strides
    return row_stride > 0 and column_stride >= row_stride * array.shape[0]


def _memory_map_of(array):
    """``(map, address of its first byte)`` when ``array`` is a view, rows in order or
    columns in order (C or Fortran order), of a memory map whose pages may be dropped
    once read (np.memmap in mode 'r', 'r+' or 'w+', e.g. ``np.load(path,
    mmap_mode="r")``); else None.

    A copy-on-write map (mode 'c') is left alone: its pages may hold the caller's
    changes, which dropping them would lose. Elsewhere dropping a page only unmaps
    it: the kernel keeps the file's data in its page cache, and the next access maps
    it again (see StreamedSource.release_rows).
    """
    if not hasattr(mmap.mmap, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    if array.ndim != 2 or not (_rows_in_order(array) or _columns_in_order(array)):
        return None
    base = array
    while base is not None:
        if isinstance(base, np.memmap) and isinstance(base.base, mmap.mmap):
            if base.mode not in ("r", "r+", "w+", "readonly", "readwrite", "write"):
                return None
            # np.memmap maps from offset rounded down to ALLOCATIONGRANULARITY
            skipped = base.offset % mmap.ALLOCATIONGRANULARITY
            return base.base, base.__array_interface__["data"][0] - skipped
        base = getattr(base, "base", None)
    return None


def _is_memory_mapped(array):
    """Whether ``array`` is a view of a memory map (np.memmap, np.load(mmap_mode=...))."""
    base = array
    while base is not None:
        if isinstance(base, mmap.mmap) or isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


def as_float_rows(X, dtype, first_row=0):
    """Rows [first_row, first_row + len(X)) of a streamed or Dask X as a C-contiguous
    array of the fit's ``dtype``.

    An array of dtype object is converted as an in-memory X of dtype object is
    (``_validation``): numbers become floats, None NaN (which the checks name),
    and an element that is not a number (a string, say) is a TypeError naming its
    row, counted from the data's first row, and its column.
    """
    if X.dtype == object:
        from fastem import _validation  # _validation imports this module

        _validation.check_object_numbers(X, first_row)
    return np.ascontiguousarray(X, dtype=dtype)


def n_blocks_of(n_samples, block_size):
    return -(-n_samples // block_size)


# --------------------------------------------------------------------------
# Folding per-block statistics in block order


class StatisticsFold:
    """The E-step's per-block partial statistics summed in block order.

    ``add(parts)`` takes the parts of consecutive blocks (as the ``*_blocks``
    kernels write them) and adds them one block at a time to running totals
    that start at zero: the same additions, in the same order, as the
    kernels' ``reduce_dense`` / ``reduce_diagonal`` over all the blocks at
    once, so the result is bitwise the same however the blocks were grouped
    into chunks. ``result()`` trims the padding and mirrors the dense scatter
    as ``reduce_dense`` does.
    """

    def __init__(self, dense, n_components, n_features, n_padded, n_factors):
        self.dense = dense
        self.n_features = n_features
        self.nk = np.zeros(n_components)
        self.sum_x = np.zeros((n_components, n_padded))
        if dense:
            self.scatter = np.zeros((n_factors, n_padded, n_padded))
        else:
            self.scatter = np.zeros((n_components, n_padded))
        self.sums = np.zeros(3)

    def add(self, parts):
        nk_parts, sum_x_parts, scatter_parts, sums_parts = parts
        for block in range(len(nk_parts)):
            self.nk += nk_parts[block]
            self.sum_x += sum_x_parts[block]
            self.scatter += scatter_parts[block]
            self.sums += sums_parts[block]

    def result(self):
        """``(nk, sum_x, scatter, sums)`` as ``reduce_dense`` / ``reduce_diagonal``."""
        n_features = self.n_features
        sum_x = np.ascontiguousarray(self.sum_x[:, :n_features])
        if not self.dense:
            return self.nk, sum_x, self.scatter, self.sums
        scatter = np.ascontiguousarray(self.scatter[:, :n_features, :n_features])
        lower = np.tril_indices(n_features, -1)
        for slot in range(len(scatter)):
            scatter[slot][lower] = scatter[slot].T[lower]
        return self.nk, sum_x, scatter, self.sums


def statistics_inputs(dense, means, precisions_chol, log_norm):
    """The kernels' parameter inputs, padded for the dense kernels."""
    if dense:
        means, precisions_chol = _kernels_estep.pad_dense(means, precisions_chol)
    return means, precisions_chol, log_norm


def chunk_statistics(X, sample_weight, first_row, block_size, dense, inputs,
                     with_entropy):
    """Partial statistics of the chunk's blocks: (nk, sum_x, scatter, sums) parts
    (sums[:, 1], sum r log r, 0 unless ``with_entropy``).

    Runs the serial ``*_statistics_blocks`` kernel over the chunk's blocks on the
    kernels' threads, with work arrays per thread (``dense_blocks``,
    ``diagonal_blocks``; one thread inside a Dask task, see
    ``fastem.em.dask_source``).
    """
    means, factors, log_norm = inputs
    n_blocks = n_blocks_of(X.shape[0], block_size)
    n_components, n_padded = means.shape
    nk_parts = np.zeros((n_blocks, n_components))
    sum_x_parts = np.zeros((n_blocks, n_components, n_padded))
    if dense:
        scatter_parts = np.zeros((n_blocks, factors.shape[0], n_padded, n_padded))
        kernel = _kernels_estep.dense_blocks
    else:
        scatter_parts = np.zeros((n_blocks, n_components, n_padded))
        kernel = _kernels_estep.diagonal_blocks
    sums_parts = np.zeros((n_blocks, 3))
    run_blocks(kernel, n_blocks, read_only(X), kernel_weights(sample_weight), means,
               factors, log_norm, block_size, nk_parts, sum_x_parts, scatter_parts,
               sums_parts, _kernels_estep.STATISTICS_ONLY, bool(with_entropy))
    return nk_parts, sum_x_parts, scatter_parts, sums_parts


def fold_statistics(source, block_size, dense, means, precisions_chol, log_norm,
                    with_entropy):
    """(nk, sum_x, scatter, sums) of the whole source, folded in block order (sums[1]
    0 unless ``with_entropy``)."""
    inputs = statistics_inputs(dense, means, precisions_chol, log_norm)
    n_padded = inputs[0].shape[1]
    fold = StatisticsFold(dense, means.shape[0], means.shape[1], n_padded,
                          inputs[1].shape[0])
    for parts in source.map_chunks(chunk_statistics, block_size, dense, inputs,
                                   with_entropy):
        fold.add(parts)
    return fold.result()


# --------------------------------------------------------------------------
# Per-block sums of the sample weights


def chunk_weight_sums(X, sample_weight, first_row, block_size):
    """Sum of the weights of each block of the chunk (numpy's pairwise sum per block)."""
    n_rows = sample_weight.shape[0]
    return [float(sample_weight[start:start + block_size].sum())
            for start in range(0, n_rows, block_size)]


def fold_in_order(values):
    """A left fold from zero: ((0 + v0) + v1) + ... in float64."""
    total = 0.0
    for value in values:
        total += value
    return total


# --------------------------------------------------------------------------
# Passes of the initialisation and the singular-covariance fallback


def _block_starts(n_rows, block_size):
    return range(0, n_rows, block_size)


def chunk_weighted_sums(X, sample_weight, first_row, block_size, shift):
    """Per block: sum_i w_i (x_i - shift), float64 (D,)."""
    return [sample_weight[start:start + block_size]
            @ (X[start:start + block_size].astype(np.float64) - shift)
            for start in _block_starts(X.shape[0], block_size)]


def chunk_weighted_scatters(X, sample_weight, first_row, block_size, mean):
    """Per block: sum_i w_i (x_i - mean)(x_i - mean)^T, float64 (D, D)."""
    out = []
    for start in _block_starts(X.shape[0], block_size):
        diff = X[start:start + block_size].astype(np.float64) - mean
        out.append((sample_weight[start:start + block_size, np.newaxis] * diff).T @ diff)
    return out


def nearest_centre(X, centres, block_size):
    """Index of the nearest centre (Euclidean; the first of equals) of every row of X,
    by the dense kernel's log-densities with unit precisions and equal weights."""
    n_components, n_features = centres.shape
    means = np.ascontiguousarray(centres, dtype=X.dtype)
    factors = np.eye(n_features, dtype=X.dtype)[np.newaxis]
    weighted = _kernels_estep.dense_weighted_log_prob(read_only(X), means, factors,
                                                      np.zeros(n_components), block_size)
    return weighted.argmax(axis=1)


def chunk_hard_statistics(X, sample_weight, first_row, block_size, covariance_type,
                          centres):
    """Per block: (nk, sum_x, scatter) of the rows given to their nearest centre,
    around the centres, float64 (scatter as the M-step takes it)."""
    labels = nearest_centre(X, centres, block_size)
    n_components, n_features = centres.shape
    out = []
    for start in _block_starts(X.shape[0], block_size):
        rows = X[start:start + block_size]
        weights = sample_weight[start:start + block_size]
        block_labels = labels[start:start + block_size]
        nk = np.zeros(n_components)
        sum_x = np.zeros((n_components, n_features))
        if covariance_type == "full":
            scatter = np.zeros((n_components, n_features, n_features))
        elif covariance_type == "tied":
            scatter = np.zeros((1, n_features, n_features))
        else:
            scatter = np.zeros((n_components, n_features))
        for k in range(n_components):
            chosen = np.flatnonzero(block_labels == k)
            if len(chosen) == 0:
                continue
            w = weights[chosen]
            diff = rows[chosen].astype(np.float64) - centres[k]
            weighted = w[:, np.newaxis] * diff
            nk[k] = w.sum()
            sum_x[k] = weighted.sum(axis=0)
            if covariance_type == "full":
                scatter[k] = weighted.T @ diff
            elif covariance_type == "tied":
                scatter[0] += weighted.T @ diff
            else:
                scatter[k] = (weighted * diff).sum(axis=0)
        out.append((nk, sum_x, scatter))
    return out


def fold_hard_statistics(source, block_size, covariance_type, centres):
    """(nk, sum_x, scatter) of chunk_hard_statistics over the source, in block order;
    a dense scatter is made exactly symmetric (its upper triangle mirrored)."""
    total = None
    for parts in source.map_chunks(chunk_hard_statistics, block_size, covariance_type,
                                   centres):
        for part in parts:
            if total is None:
                total = [np.zeros_like(value) for value in part]
            for running, value in zip(total, part, strict=True):
                running += value
    nk, sum_x, scatter = total
    if covariance_type in ("full", "tied"):
        lower = np.tril_indices(centres.shape[1], -1)
        for slot in range(len(scatter)):
            scatter[slot][lower] = scatter[slot].T[lower]
    return nk, sum_x, scatter


# --------------------------------------------------------------------------
# The 'random' start: scikit-learn's uniform responsibilities, drawn block by block
#
# scikit-learn draws random_state.uniform(size=(n_samples, K)) at once and
# normalises the rows. A RandomState draws its doubles one after another, so
# drawing the rows of each block in row order, with successive calls on the
# same RandomState, gives the same numbers (and leaves the RandomState where
# the one big draw leaves it) while holding one block of them at a time.


def draw_resp(random_state, n_rows, n_components):
    """Uniform responsibilities of the next ``n_rows`` rows, each row normalised."""
    resp = random_state.uniform(size=(n_rows, n_components))
    resp /= resp.sum(axis=1)[:, np.newaxis]
    return resp


def skip_draws(random_state, n_draws, piece=1 << 20):
    """Advance ``random_state`` past ``n_draws`` uniform doubles, ``piece`` at a
    time."""
    while n_draws > 0:
        random_state.uniform(size=min(n_draws, piece))
        n_draws -= piece


def as_random_state(draws):
    """The RandomState a chunk draws from: ``draws`` itself, or a new one set to the
    state ``draws`` (``RandomState.get_state()``, as a Dask task receives it)."""
    if isinstance(draws, np.random.RandomState):
        return draws
    random_state = np.random.RandomState()
    random_state.set_state(draws)
    return random_state


def chunk_random_sums(X, sample_weight, first_row, block_size, draws, n_components,
                      shift):
    """Per block of the 'random' start: (nk, sum_i w_i r_ik (x_i - shift)), float64,
    as ``_driver.parameters_from_resp``'s first pass computes them per chunk."""
    random_state = as_random_state(draws)
    out = []
    for start in _block_starts(X.shape[0], block_size):
        stop = min(X.shape[0], start + block_size)
        weighted_resp = draw_resp(random_state, stop - start, n_components)
        weighted_resp *= sample_weight[start:stop, np.newaxis]
        out.append((weighted_resp.sum(axis=0),
                    weighted_resp.T @ np.subtract(X[start:stop], shift, dtype=np.float64)))
    return out


def chunk_random_scatters(X, sample_weight, first_row, block_size, draws, means,
                          covariance_type):
    """Per block of the 'random' start: each component's term of the scatter around
    ``means`` (K, D, D) for 'full' and 'tied', (K, D) otherwise, as the second pass
    of ``_driver.parameters_from_resp`` computes them."""
    random_state = as_random_state(draws)
    n_components, n_features = means.shape
    dense = covariance_type in ("full", "tied")
    out = []
    for start in _block_starts(X.shape[0], block_size):
        stop = min(X.shape[0], start + block_size)
        weighted_resp = draw_resp(random_state, stop - start, n_components)
        weighted_resp *= sample_weight[start:stop, np.newaxis]
        rows = X[start:stop].astype(np.float64, copy=False)
        terms = np.empty((n_components, n_features, n_features) if dense
                         else (n_components, n_features))
        # the arithmetic of parameters_from_resp, into two arrays reused for every k
        diff = np.empty((stop - start, n_features))
        weighted_diff = np.empty_like(diff)
        for k in range(n_components):
            np.subtract(rows, means[k], out=diff)
            np.multiply(weighted_resp[:, k, np.newaxis], diff, out=weighted_diff)
            if dense:
                terms[k] = weighted_diff.T @ diff
            else:
                weighted_diff *= diff
                terms[k] = weighted_diff.sum(axis=0)
        out.append(terms)
    return out


def fold_random_sums(source, block_size, random_state, n_components, shift):
    """(nk, weighted sum around ``shift``) of the 'random' start, in block order;
    draws the responsibilities from ``random_state`` (advancing it by
    n_samples * n_components doubles)."""
    nk = np.zeros(n_components)
    weighted_sum = np.zeros((n_components, source.n_features))
    for parts in source.map_chunks_drawing(chunk_random_sums, block_size, random_state,
                                           n_components, n_components, shift):
        for block_nk, block_sum in parts:
            nk += block_nk
            weighted_sum += block_sum
    return nk, weighted_sum


def zero_covariances(covariance_type, n_components, n_features):
    """Zeros in scikit-learn's covariance layout: (K, D, D) 'full', (D, D) 'tied',
    (K, D) 'diag' and 'spherical' (per feature until the spherical mean is taken)."""
    if covariance_type == "full":
        return np.zeros((n_components, n_features, n_features))
    if covariance_type == "tied":
        return np.zeros((n_features, n_features))
    return np.zeros((n_components, n_features))


def fold_random_scatters(source, block_size, random_state, means, covariance_type):
    """The 'random' start's scatter around ``means`` in block order, then component
    order ('tied' sums the components' terms), from the same draws again."""
    n_components, n_features = means.shape
    scatter = zero_covariances(covariance_type, n_components, n_features)
    for parts in source.map_chunks_drawing(chunk_random_scatters, block_size,
                                           random_state, n_components, means,
                                           covariance_type):
        for terms in parts:
            if covariance_type == "tied":
                for term in terms:
                    scatter += term
            else:
                scatter += terms
    return scatter


# --------------------------------------------------------------------------
# One pass of checks: non-finite values, spreads, weights


def chunk_scan(X, sample_weight, first_row, block_size):
    """What the checks need from a chunk, as a dict (see Summary.combine)."""
    result = {"n_rows": X.shape[0], "first_row": first_row, "bad": None, "n_bad": 0}
    finite = np.isfinite(X)
    if not finite.all():
        bad = ~finite
        flat = int(np.flatnonzero(bad.ravel())[0])
        row, column = divmod(flat, X.shape[1])
        result["bad"] = (first_row + row, column, float(X[row, column]))
        result["n_bad"] = int(bad.sum())
        return result
    weights = sample_weight
    finite_weights = np.isfinite(weights)
    if not finite_weights.all():  # the first non-finite weight
        index = int(np.flatnonzero(~finite_weights)[0])
        result["bad_weight"] = (first_row + index, float(weights[index]))
        return result
    if len(weights) and weights.min() < 0:  # the smallest weight (its first row)
        index = int(np.argmin(weights))
        result["bad_weight"] = (first_row + index, float(weights[index]))
        return result
    positive = weights > 0
    result["n_positive"] = int(np.count_nonzero(positive))
    result["first_positive"] = (first_row + int(np.argmax(positive))
                                if result["n_positive"] else None)
    result["weight_max"] = float(weights.max()) if len(weights) else 0.0
    if X.shape[0]:
        result["high"] = X.max(axis=0).astype(np.float64)
        result["low"] = X.min(axis=0).astype(np.float64)
        result["max_abs"] = float(max(np.abs(result["high"]).max(),
                                      np.abs(result["low"]).max()))
        if result["n_positive"] == X.shape[0]:
            result["weighted_high"], result["weighted_low"] = result["high"], result["low"]
        elif result["n_positive"]:
            result["weighted_high"] = X[positive].max(axis=0).astype(np.float64)
            result["weighted_low"] = X[positive].min(axis=0).astype(np.float64)
    return result


def where_rows(start, stop, block_size=None):
    """Rows [start, stop) named as 'block 7 (rows 3584 to 4095)' or 'blocks 6 to 7
    (rows ...)'."""
    where = f"rows {start} to {stop - 1}"
    if block_size:
        first, last = start // block_size, (stop - 1) // block_size
        where = (f"block {first} ({where})" if first == last
                 else f"blocks {first} to {last} ({where})")
    return where


def _where_row(row, block_size):
    return f"row {row} (block {row // block_size})" if block_size else f"row {row}"


class Summary:
    """The checks' results over all blocks: first NaN/inf, spreads, weight counts."""

    def __init__(self, n_samples, n_features, n_positive, first_positive, weight_max,
                 high, low, weighted_high, weighted_low, max_abs):
        self.n_samples = n_samples
        self.n_features = n_features
        self.n_positive = n_positive
        self.first_positive = first_positive
        self.weight_max = weight_max
        self.high, self.low = high, low
        self.weighted_high, self.weighted_low = weighted_high, weighted_low
        self.max_abs = max_abs

    @classmethod
    def combine(cls, results, n_features, block_size=None, name="X"):
        """Combine chunk_scan results (in row order); raises the first problem found."""
        n_bad = sum(result["n_bad"] for result in results)
        for result in results:
            if result["bad"] is not None:
                row, column, value = result["bad"]
                kind = "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
                counted = all(other["bad"] is not None or "high" in other or
                              other["n_rows"] == 0 for other in results)
                count = (f" ({n_bad} non-finite value(s) in all)" if counted
                         else "")
                raise ValueError(
                    f"Input {name} contains {kind} at {_where_row(row, block_size)}, "
                    f"column {column}{count}. Remove or impute those entries before "
                    "fitting."
                )
        # the weights' problem that _validation.check_sample_weight names in memory:
        # the first non-finite weight, else the smallest weight (its first row)
        bad_weights = [result["bad_weight"] for result in results
                       if "bad_weight" in result]
        for index, value in bad_weights:
            if not math.isfinite(value):
                raise ValueError(f"sample_weight contains {value} at index {index}; "
                                 "weights must be finite.")
        if bad_weights:
            index, value = min(bad_weights, key=lambda bad: (bad[1], bad[0]))
            raise ValueError(f"sample_weight must be non-negative; found {value} at "
                             f"index {index}.")
        n_positive = sum(result["n_positive"] for result in results)
        if n_positive == 0:
            raise ValueError(
                "sample_weight sums to zero: at least one sample must have weight."
            )
        first_positive = next(result["first_positive"] for result in results
                              if result["first_positive"] is not None)
        weight_max = max(result["weight_max"] for result in results)
        with_rows = [result for result in results if "high" in result]
        high = np.max([result["high"] for result in with_rows], axis=0)
        low = np.min([result["low"] for result in with_rows], axis=0)
        weighted = [result for result in with_rows if "weighted_high" in result]
        weighted_high = np.max([result["weighted_high"] for result in weighted], axis=0)
        weighted_low = np.min([result["weighted_low"] for result in weighted], axis=0)
        max_abs = max(result["max_abs"] for result in with_rows)
        n_samples = sum(result["n_rows"] for result in results)
        return cls(n_samples, n_features, n_positive, first_positive, weight_max, high,
                   low, weighted_high, weighted_low, max_abs)

    def scaled(self, exponent):
        """The summary of X * 2**exponent (exact)."""
        return Summary(self.n_samples, self.n_features, self.n_positive,
                       self.first_positive, self.weight_max,
                       np.ldexp(self.high, exponent), np.ldexp(self.low, exponent),
                       np.ldexp(self.weighted_high, exponent),
                       np.ldexp(self.weighted_low, exponent),
                       float(np.ldexp(self.max_abs, exponent)))


def half_spread(high, low):
    """Half the largest per-feature spread from the per-feature maxima and minima
    (float64): _driver._half_spread's, and the streamed checks'."""
    return float(np.max(0.5 * high - 0.5 * low))


def weight_exponent(weight_max, weight_sum_scaled, n_samples):
    """The power of two _validation._normalise_weights divides the weights by, from
    the largest weight and the sum of weights * 2**-top (top: weight_max's exponent)."""
    top = math.frexp(weight_max)[1]
    mean = weight_sum_scaled / n_samples
    return top + math.frexp(mean)[1] - 1


def chunk_scaled_weight_sums(X, sample_weight, first_row, block_size, shift):
    """Per-block sums of sample_weight * 2**shift."""
    return chunk_weight_sums(X, np.ldexp(sample_weight, shift), first_row, block_size)


# --------------------------------------------------------------------------
# Sources

# Positive-weight rows are drawn with RandomState.choice (as scikit-learn does,
# a permutation of all of them) up to this many, and with a Generator's
# O(sample) algorithm beyond (the rule depends on the data only, so every
# source draws the same rows).
PERMUTATION_LIMIT = 1 << 24

# Rows of the chunks an in-memory pass hands its chunk functions
# (MemorySource.map_chunks) and of its other chunked lookups: what such a pass
# holds per row is this many rows' worth. (The size of _driver.INIT_CHUNK, so
# that a 'random' start's chunk is one of its blocks.)
MEMORY_CHUNK_ROWS = 1 << 14


class MemorySource:
    """An in-memory C-contiguous float32/float64 ndarray and its weights (ndarray, or
    unit_weights' view).

    The E-step runs the block kernels over the whole array on the thread pool
    (_driver.estep_statistics); the other passes (starts, the data covariance)
    hand their chunk functions chunks of whole blocks (map_chunks).
    """

    in_memory = True

    def __init__(self, X, sample_weight):
        self.X = X
        self.sample_weight = sample_weight
        self.shape = X.shape
        self.dtype = X.dtype

    @property
    def n_samples(self):
        return self.shape[0]

    @property
    def n_features(self):
        return self.shape[1]

    def map_chunks(self, function, block_size, *args, weights_only=False):
        """``function`` over chunks of MEMORY_CHUNK_ROWS rows (whole blocks, at least
        one), in order, as a streamed source maps it over the chunks it reads (the
        same per-block results): what the function holds per row (labels, a block's
        deviations, unit weights as an array) is a chunk's worth, not N rows'."""
        step = max(1, MEMORY_CHUNK_ROWS // block_size) * block_size
        ones = None
        if are_unit_weights(self.sample_weight):
            # an array of ones, contiguous as numpy's BLAS calls need
            ones = np.ones(min(step, self.n_samples))
            ones.flags.writeable = False
        for start in range(0, self.n_samples, step):
            stop = min(self.n_samples, start + step)
            weights = (self.sample_weight[start:stop] if ones is None
                       else ones[:stop - start])
            yield function(self.X[start:stop], weights, start, block_size, *args)

    def map_chunks_drawing(self, function, block_size, random_state, draws_per_row,
                           *args):
        """``map_chunks`` whose function draws ``draws_per_row`` uniform doubles per
        row from ``random_state`` (its first argument after ``block_size``), in row
        order: the chunks run in order on this thread, so it draws from the
        RandomState itself."""
        return self.map_chunks(function, block_size, random_state, *args)

    def rows(self, indices):
        """The rows at sorted ``indices``, as an ndarray of X's dtype."""
        return self.X[np.asarray(indices, dtype=np.int64)]

    def weights_at(self, indices):
        return self.sample_weight[np.asarray(indices, dtype=np.int64)]

    def scaled(self, exponent):
        """The source of X * 2**exponent (exact)."""
        return MemorySource(np.ldexp(self.X, exponent), self.sample_weight)

    def n_positive(self):
        return count_positive(self.sample_weight)

    def positive_rows(self, ranks, block_size=None):
        """Rows of the positive-weight rows of the given sorted ranks (0: the first such
        row). When every weight is positive (no weights given), the ranks themselves;
        otherwise found a chunk of weights at a time: no (N,) index array."""
        ranks = np.asarray(ranks, dtype=np.int64)
        if self.n_positive() == len(self.sample_weight):
            return ranks.copy()
        weights = self.sample_weight
        return rows_of_positive_ranks(
            ((start, weights[start:start + MEMORY_CHUNK_ROWS])
             for start in range(0, len(weights), MEMORY_CHUNK_ROWS)),
            ranks,
        )

    def first_positive_row(self):
        return first_positive(self.sample_weight)

    def max_abs(self):
        return float(np.max(np.abs(self.X))) if self.X.size else 0.0

    def total_weight(self, block_size):
        """Sum of the weights, per block (numpy) and then in block order."""
        return fold_in_order(chunk_weight_sums(None, self.sample_weight, 0, block_size))


class ChunkedSource:
    """What streamed and Dask sources share: passes made of ``map_chunks``.

    ``summary`` (:class:`Summary`, from :meth:`scan`) holds the checks' results.
    """

    in_memory = False
    summary = None
    sample_weight = None

    @property
    def n_samples(self):
        return self.shape[0]

    @property
    def n_features(self):
        return self.shape[1]

    def scan(self, block_size, name="X"):
        """Check every block (NaN/inf naming the row, weights) and keep a Summary."""
        results = list(self.map_chunks(chunk_scan, block_size))
        self.summary = Summary.combine(results, self.n_features, block_size, name)
        return self.summary

    map_chunks_drawing = MemorySource.map_chunks_drawing

    def max_abs(self):
        return self.summary.max_abs

    def n_positive(self):
        return self.summary.n_positive

    def first_positive_row(self):
        return self.summary.first_positive

    def total_weight(self, block_size):
        if self.sample_weight is None:
            return float(self.n_samples)
        sums = self.map_chunks(chunk_weight_sums, block_size, weights_only=True)
        return fold_in_order(value for chunk in sums for value in chunk)

    def weight_exponent(self, block_size):
        """The exponent _validation._normalise_weights would divide the weights by."""
        if self.sample_weight is None:
            return 0
        top = math.frexp(self.summary.weight_max)[1]
        sums = self.map_chunks(chunk_scaled_weight_sums, block_size, -top,
                               weights_only=True)
        total = fold_in_order(value for chunk in sums for value in chunk)
        return weight_exponent(self.summary.weight_max, total, self.n_samples)

    def positive_rows(self, ranks, block_size):
        """Rows of the positive-weight rows of the given sorted ranks."""
        ranks = np.asarray(ranks, dtype=np.int64)
        if self.sample_weight is None or self.summary.n_positive == self.n_samples:
            return ranks
        return self._positive_rows(ranks, block_size)

    def _scaled_summary(self, source, exponent):
        if self.summary is not None:
            source.summary = self.summary.scaled(exponent)
        return source


def chunk_positive_counts(X, sample_weight, first_row, block_size):
    """Number of positive weights in the chunk."""
    return int(np.count_nonzero(sample_weight > 0))


def rows_of_positive_ranks(chunks, ranks):
    """Rows whose rank among the positive-weight rows is in ``ranks`` (sorted), from
    ``(first row, weights)`` of consecutive chunks of the weights."""
    found = []
    before = 0
    for start, weights in chunks:
        found.append(chunk_positive_rows(None, weights, start, None, ranks, before))
        before += int(np.count_nonzero(weights > 0))
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)


def chunk_positive_rows(X, sample_weight, first_row, block_size, ranks, before):
    """Rows of this chunk whose rank among the positive-weight rows is in ``ranks``
    (sorted, global); ``before``: positive rows before the chunk."""
    positive = np.flatnonzero(sample_weight > 0)
    local = ranks[(ranks >= before) & (ranks < before + len(positive))] - before
    return first_row + positive[local]


class StreamedSource(ChunkedSource):
    """Rows read block by block from an array-like with ``shape``, ``dtype`` and slicing.

    ``X[start:stop]`` must return the rows [start, stop) (anything
    ``np.asarray`` takes). ``sample_weight`` is None (every weight one) or a
    1-D array-like sliced the same way; its values are multiplied by
    ``2**-weight_exponent`` as they are read (the normalisation of
    ``_validation.check_sample_weight``), and X's by ``2**exponent`` (the
    driver's fit at unit scale). Both are exact.
    """

    def __init__(self, X, sample_weight=None, dtype=None, exponent=0, weight_exponent=0,
                 chunk_bytes=None):
        self.X = X
        self.sample_weight = sample_weight
        self.shape = (int(X.shape[0]), int(X.shape[1]))
        self.dtype = np.dtype(dtype if dtype is not None else X.dtype)
        self.exponent = exponent
        self.weight_exponent_ = weight_exponent
        self.chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        self.storage_rows = storage_chunk_rows(X)
        self._read_into = _zarr_read_into(X) if self.storage_rows else None
        self._ones = np.ones(0)
        self._map = _memory_map_of(X) if isinstance(X, np.ndarray) else None

    def _with(self, **changes):
        fields = dict(sample_weight=self.sample_weight, dtype=self.dtype,
                      exponent=self.exponent, weight_exponent=self.weight_exponent_,
                      chunk_bytes=self.chunk_bytes)
        fields.update(changes)
        return StreamedSource(self.X, **fields)

    def scaled(self, exponent):
        return self._scaled_summary(self._with(exponent=self.exponent + exponent), exponent)

    def with_weight_exponent(self, weight_exponent):
        source = self._with(weight_exponent=weight_exponent)
        source.summary = self.summary
        return source

    def chunk_rows(self, block_size):
        """Rows per read: whole blocks, about chunk_bytes, one block per thread at least."""
        row_bytes = max(1, self.n_features * self.dtype.itemsize)
        if not block_size:
            return int(max(1, self.chunk_bytes // row_bytes))
        n_blocks = max(current_threads(), self.chunk_bytes // (block_size * row_bytes))
        return int(n_blocks * block_size)

    def read_weights(self, start, stop, block_size=None):
        """Weights of rows [start, stop), float64, normalised (ones when none given)."""
        if self.sample_weight is None:
            # one read-only array of ones for every chunk, not a new one per chunk
            ones = self._ones
            if len(ones) < stop - start:
                ones = np.ones(stop - start)
                ones.flags.writeable = False
                self._ones = ones
            return ones[:stop - start]
        where = where_rows(start, stop, block_size)
        try:
            weights = np.asarray(self.sample_weight[start:stop], dtype=np.float64)
        except Exception as error:
            if block_size and stop - start > block_size:
                # name the first block that cannot be read on its own (as read does)
                for first in range(start, stop, block_size):
                    self.read_weights(first, min(stop, first + block_size), block_size)
            raise DataReadError(
                f"Reading {where} of sample_weight failed: {type(error).__name__}: "
                f"{error}."
            ) from error
        if weights.shape != (stop - start,):
            raise DataReadError(
                f"Reading {where} of sample_weight gave shape {weights.shape}, "
                f"expected {(stop - start,)}."
            )
        if self.weight_exponent_:
            weights = np.ldexp(weights, -self.weight_exponent_)
        return weights

    def read(self, start, stop, block_size=None, out=None):
        """(X rows, weights) of [start, stop) as C-contiguous arrays; errors name the
        block. ``out``: an array of at least stop - start rows of X's dtype that a
        chunked store's rows may be read into (see chunks)."""
        where = where_rows(start, stop, block_size)
        try:
            X = self._read_rows(start, stop, out)
        except Exception as error:
            if block_size and stop - start > block_size:
                # name the first block that cannot be read on its own
                for first in range(start, stop, block_size):
                    self.read(first, min(stop, first + block_size), block_size)
            raise DataReadError(
                f"Reading {where} of X failed: {type(error).__name__}: {error}. Check that "
                "the file is complete and readable."
            ) from error
        if X.shape != (stop - start, self.n_features):
            raise DataReadError(
                f"Reading {where} of X gave an array of shape {X.shape}, expected "
                f"{(stop - start, self.n_features)}: the data changed or is truncated."
            )
        X = as_float_rows(X, self.dtype, start)
        if self.exponent:
            X = np.ldexp(X, self.exponent).astype(self.dtype, copy=False)
        elif _is_memory_mapped(X) and X.size:
            X.reshape(-1)[:: max(1, PAGE_BYTES // X.itemsize)].sum()  # fault pages in
        return X, self.read_weights(start, stop, block_size)

    def release_rows(self, start, stop):
        """Unmap the pages of a memory-mapped X that hold only rows before ``stop``
        from ``start``'s page on (madvise MADV_DONTNEED; see _memory_map_of).

        Without it every page a pass has read stays in the process's resident
        set, so a streamed fit of a memory map grew to the size of the file (the
        page cache, which the kernel can reclaim, but which memory limits and
        monitors such as a Dask nanny's count as the process's). The next pass
        maps the pages again from the page cache (a minor fault per few pages).

        In C order the rows are one range of the file; in Fortran order they are
        one range of each column, each unmapped alike (adjacent ranges in one
        call). A page shared by a column's last rows and the next column's first
        ones may then be unmapped before the last rows are read: they are mapped
        again when read, from the page cache.
        """
        if self._map is None or stop <= start:
            return
        memory_map, first_byte = self._map
        address = self.X.__array_interface__["data"][0] - first_byte
        row_stride, column_stride = self.X.strides
        if _rows_in_order(self.X):
            column_starts = [address]
        else:  # columns in order (_memory_map_of)
            column_starts = [address + column * column_stride
                             for column in range(self.n_features)]
        ranges = []
        for column_start in column_starts:
            low = column_start + start * row_stride
            high = column_start + stop * row_stride
            low -= low % mmap.PAGESIZE
            high -= high % mmap.PAGESIZE  # the page holding row stop is still in use
            if high <= low:
                continue
            if ranges and low <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], high)
            else:
                ranges.append([low, high])
        for low, high in ranges:
            try:
                memory_map.madvise(mmap.MADV_DONTNEED, low, high - low)
            except (OSError, ValueError):  # a closed map: the next read says so
                return

    def _read_rows(self, start, stop, out=None):
        """Rows [start, stop) of X as an ndarray. From a chunked store (zarr), in
        pieces of whole storage chunks (about PIECE_BYTES, at least one chunk)
        copied into one array: zarr decodes every storage chunk a read touches at
        once, each as its compressed bytes, a decoded copy and its share of the
        result, so one read of a whole chunk of ours held about three times its
        size on top of it."""
        step = self.storage_rows
        if step:  # whole storage chunks, about PIECE_BYTES (at least one chunk)
            row_bytes = max(1, self.n_features * np.dtype(self.X.dtype).itemsize)
            step *= max(1, PIECE_BYTES // (step * row_bytes))
        if not step or (start // step == (stop - 1) // step and not self._read_into):
            return np.asarray(self.X[start:stop])
        if out is None:
            out = np.empty((stop - start, self.n_features),
                           dtype=np.dtype(self.X.dtype))
        out = out[:stop - start]
        for first in range(start - start % step, stop, step):
            low, high = max(start, first), min(stop, first + step)
            if self._read_into:  # decoded straight into out, not into a new array
                self._read_into(low, high, out[low - start:high - start])
                continue
            piece = np.asarray(self.X[low:high])
            if piece.shape != (high - low, self.n_features):
                return piece  # read() names the block and the shape
            out[low - start:high - start] = piece
            del piece
        return out

    def chunks(self, block_size, weights_only=False):
        """(first_row, X, weights) of consecutive chunks, read one ahead on a thread
        (X is None with ``weights_only``). A chunk's arrays are valid until the next
        chunk is asked for: a chunked store's X is then read into again."""
        n_samples = self.n_samples
        step = self.chunk_rows(block_size)
        if weights_only:
            step *= max(1, self.n_features)  # weights are 1/D of the rows' bytes

        # A chunked store's rows are read into two arrays used in turn for the whole
        # pass, not into a new one per chunk: a chunk is used only until the next
        # one is asked for, when its array is read into again. (Fresh arrays of
        # many MiB per chunk, freed by another thread than the one that
        # allocated them, grew the process by tens of MiB beyond what was in
        # use: glibc keeps freed blocks in per-thread arenas.)
        buffers = {}

        def read(start, slot):
            stop = min(n_samples, start + step)
            if weights_only:
                return None, self.read_weights(start, stop, block_size)
            if self.storage_rows and slot not in buffers:
                buffers[slot] = np.empty((step, self.n_features),
                                         dtype=np.dtype(self.X.dtype))
            return self.read(start, stop, block_size, buffers.get(slot))

        starts = list(range(0, n_samples, step))
        if len(starts) <= 1:
            for start in starts:
                yield (start, *read(start, 0))
                self.release_rows(start, n_samples)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastem-reader") as reader:
            pending = reader.submit(read, starts[0], 0)
            try:
                for index, start in enumerate(starts):
                    X, weights = pending.result()
                    if index + 1 < len(starts):
                        pending = reader.submit(read, starts[index + 1],
                                                (index + 1) % 2)
                    yield start, X, weights
                    del X, weights
                    if not weights_only:
                        self.release_rows(start, min(n_samples, start + step))
            finally:
                pending.cancel()

    def map_chunks(self, function, block_size, *args, weights_only=False):
        """``function`` over the chunks, in order. A pass that ends early (``function``
        raises, or this generator is closed) stops the reader thread of ``chunks``
        and drops its next chunk and buffers at once, whatever still refers to this
        generator's frame (an error's traceback does)."""
        chunks = self.chunks(block_size, weights_only)
        try:
            for start, X, weights in chunks:
                yield function(X, weights, start, block_size, *args)
        finally:
            chunks.close()

    def _runs(self, indices, read, release=None):
        """``read(first, stop)`` over runs of nearby sorted indices; the indexed rows
        (copies). ``release(first, stop)`` after each run, if given."""
        indices = np.asarray(indices, dtype=np.int64)
        pieces = []
        # runs: consecutive indices no more than 64 rows apart are read together
        breaks = np.flatnonzero(np.diff(indices) > 64) + 1
        for run in np.split(indices, breaks):
            if len(run):
                first = int(run[0])
                pieces.append(read(first, int(run[-1]) + 1)[run - first])
                if release is not None:
                    release(first, int(run[-1]) + 1)
        return pieces

    def _picked(self, indices, step, read, release=None):
        """The entries at sorted ``indices`` of ``read(start, stop)``: read in runs of
        nearby rows, or, when they are more than one in DENSE_SAMPLE rows, picked from
        one pass over chunks of ``step`` rows (a few large reads instead of many
        small ones). A list of pieces."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) * DENSE_SAMPLE <= self.n_samples:
            return self._runs(indices, read, release)
        pieces = []
        for start in range(0, self.n_samples, step):
            stop = min(self.n_samples, start + step)
            chosen = indices[(indices >= start) & (indices < stop)]
            if len(chosen):
                pieces.append(read(start, stop)[chosen - start])
                if release is not None:
                    release(start, stop)
        return pieces

    def rows(self, indices):
        """The rows at sorted ``indices``, as an ndarray of X's dtype (_picked)."""
        pieces = self._picked(indices, self.chunk_rows(None),
                              lambda start, stop: self.read(start, stop)[0],
                              self.release_rows)
        if not pieces:
            return np.empty((0, self.n_features), dtype=self.dtype)
        return np.concatenate(pieces)

    def weights_at(self, indices):
        """The (normalised) weights of the rows at sorted ``indices`` (_picked: a dense
        sample's in one pass, as its rows)."""
        if self.sample_weight is None:
            return np.ones(len(indices))
        pieces = self._picked(indices, max(1, int(self.chunk_bytes) // 8),
                              self.read_weights)
        return np.concatenate(pieces) if pieces else np.empty(0)

    def _positive_rows(self, ranks, block_size):
        return rows_of_positive_ranks(
            ((start, weights)
             for start, _, weights in self.chunks(block_size, weights_only=True)),
            ranks,
        )

    def materialise(self):
        """The whole source read into memory, as a MemorySource."""
        X, weights = self.read(0, self.n_samples)
        return MemorySource(X, weights)


def storage_chunk_rows(X):
    """Rows per storage chunk of a chunked store that decodes all the chunks of a read
    at once (``zarr.Array.chunks``), or None: an h5py.Dataset (HDF5 decodes one
    chunk at a time into the result, ``read_direct``), a memory map, or no chunks."""
    if hasattr(X, "read_direct") or isinstance(X, np.ndarray):
        return None
    chunks = getattr(X, "chunks", None)
    try:
        rows = chunks[0]
    except (TypeError, IndexError, KeyError):
        return None
    if isinstance(rows, numbers.Integral) and not isinstance(rows, bool) and rows > 0:
        return int(rows)
    return None


def _zarr_read_into(X):
    """``read_into(low, high, out)``: rows [low, high) of a zarr (3) Array decoded
    into ``out`` (``get_basic_selection(..., out=...)``), instead of into a new
    array that is then copied; None for anything else (zarr 2 included)."""
    if not (type(X).__module__ or "").startswith("zarr") or not hasattr(
            X, "get_basic_selection"):
        return None
    try:
        from zarr.buffer import default_buffer_prototype
    except ImportError:
        return None
    nd_buffer = default_buffer_prototype().nd_buffer

    def read_into(low, high, out):
        X.get_basic_selection((slice(low, high), slice(None)),
                              out=nd_buffer.from_numpy_array(out))

    return read_into


# --------------------------------------------------------------------------
# Recognising sources


def is_dask_array(X):
    module = type(X).__module__ or ""
    return module.startswith("dask.") and hasattr(X, "chunks") and hasattr(X, "dask")


def is_streamable(X):
    """Whether X is read block by block: an np.memmap, or a non-numpy array-like with
    shape, dtype and ndim (h5py.Dataset, zarr.Array, ...) other than sparse matrices and
    pandas objects."""
    if isinstance(X, np.memmap):
        return True
    if isinstance(X, np.ndarray) or is_dask_array(X):
        return False
    if not all(hasattr(X, name) for name in ("shape", "dtype", "ndim")):
        return False
    module = type(X).__module__ or ""
    if module.startswith(("scipy.sparse", "pandas.", "polars.")):
        return False
    try:
        np.dtype(X.dtype)
    except TypeError:
        return False
    return True


def check_shape(X):
    """Shape, dtype and row slicing of a streamed or Dask X; returns the fit's dtype
    (float64 for integers, float16 and objects, which are converted block by block:
    as_float_rows)."""
    shape = tuple(X.shape)
    if X.ndim != 2 or len(shape) != 2:
        advice = (" Reshape your data: X.reshape(-1, 1) if it holds one feature, or "
                  "X.reshape(1, -1) if it holds one sample." if X.ndim == 1 else "")
        raise ValueError(
            "X must be a 2-D array of shape (n_samples, n_features); got a "
            f"{X.ndim}-D array of shape {shape}.{advice}"
        )
    if any(not isinstance(size, numbers.Integral) or math.isnan(size) for size in shape):
        raise ValueError(
            f"X has an unknown shape {shape}; compute the chunk sizes first "
            "(dask: X.compute_chunk_sizes())."
        )
    dtype = np.dtype(X.dtype)
    if dtype.kind not in "iufO":  # objects: numbers, checked block by block
        raise TypeError(
            f"X has dtype {dtype}; fastem fits real numbers (float32, float64 or "
            "integers). Convert X first."
        )
    if not is_dask_array(X):
        if not hasattr(type(X), "__getitem__"):
            raise TypeError(
                f"X ({type(X).__name__}) has a shape and dtype but cannot be sliced by "
                "rows (X[start:stop]); pass an ndarray, np.memmap, h5py.Dataset, "
                "zarr.Array or dask array."
            )
        try:
            first = np.asarray(X[0:1])
        except Exception as error:
            raise TypeError(
                f"X ({type(X).__name__}) cannot be sliced by rows: X[0:1] raised "
                f"{type(error).__name__}: {error}. Pass an ndarray, np.memmap, "
                "h5py.Dataset, zarr.Array or dask array."
            ) from error
        if first.shape != (min(1, shape[0]), shape[1]):
            raise TypeError(
                f"X ({type(X).__name__}) cannot be sliced by rows: X[0:1] has shape "
                f"{first.shape}, expected {(1, shape[1])}."
            )
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _check_weights_like(sample_weight, n_samples):
    """Shape and dtype of a streamed fit's sample_weight (values are checked block by
    block); lists and other sequences become float64 arrays."""
    if not all(hasattr(sample_weight, name) for name in ("shape", "dtype", "ndim")):
        sample_weight = np.asarray(sample_weight)
    dtype = np.dtype(sample_weight.dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got an array of dtype {dtype}.")
    if sample_weight.ndim != 1 or tuple(sample_weight.shape) != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X, got "
            f"{tuple(sample_weight.shape)}."
        )
    return sample_weight


def open_source(X, sample_weight=None, chunk_bytes=None):
    """A StreamedSource or DaskSource of X, after checking its shape, dtype and slicing."""
    dtype = check_shape(X)
    n_samples = int(X.shape[0])
    if sample_weight is not None:
        sample_weight = _check_weights_like(sample_weight, n_samples)
    if is_dask_array(X):
        from fastem.em.dask_source import DaskSource  # dask is an optional dependency

        return DaskSource(X, sample_weight, dtype)
    return StreamedSource(X, sample_weight, dtype, chunk_bytes=chunk_bytes)


# --------------------------------------------------------------------------
# Inference over sources


def chunk_estimate(X, sample_weight, first_row, block_size, what, parameters,
                   covariance_type, log_weights=None, small=False):
    """Per-row results of the inference kernels on a chunk (rows are independent):
    'labels' (n,), 'weighted_log_prob' (n, K), 'log_prob' (n,), 'resp' (n, K).
    ``log_weights`` as in ``_driver.kernel_inputs`` (None: log(parameters.weights)).
    ``small``: the whole X is small data, which in memory takes the row kernels
    (float64 whatever X's dtype): so do its chunks, for the in-memory bits."""
    from scipy.special import logsumexp

    from fastem.em import driver as _driver  # the driver imports this module

    if not np.isfinite(X).all():
        row, column = divmod(int(np.flatnonzero(~np.isfinite(X).ravel())[0]), X.shape[1])
        value = X[row, column]
        kind = "NaN" if np.isnan(value) else ("+inf" if value > 0 else "-inf")
        raise ValueError(
            f"Input X contains {kind} at {_where_row(first_row + row, block_size)}, "
            f"column {column}. Remove or impute those entries first."
        )
    weighted = _driver.estimate_weighted_log_prob(X, parameters, covariance_type,
                                                  block_size, log_weights, small)
    if what == "labels":  # as _driver.estimate_labels
        return weighted.argmax(axis=1)
    if what == "weighted_log_prob":
        return weighted
    if what == "log_prob":
        return logsumexp(weighted, axis=1)
    _, log_resp = _kernels_estep.log_resp_from_weighted(weighted, block_size)
    return np.exp(log_resp)


def estimate(source, what, parameters, covariance_type, block_size, log_weights=None,
             small=False):
    """chunk_estimate over a source: an ndarray (streamed) or a lazy Dask array.

    A streamed source's chunks are written into one output array as they come,
    so that what inference holds is the output and one chunk's results, not all
    the chunks' results and their concatenation (twice the output).
    """
    if hasattr(source, "estimate_lazy"):
        return source.estimate_lazy(what, parameters, covariance_type, block_size,
                                    log_weights, small)
    n_components = parameters.means.shape[0]
    one_per_row = what in ("labels", "log_prob")
    output = np.empty((source.n_samples,) if one_per_row
                      else (source.n_samples, n_components),
                      dtype=np.int64 if what == "labels" else np.float64)
    first_row = 0
    for piece in source.map_chunks(chunk_estimate, block_size, what, parameters,
                                   covariance_type, log_weights, small):
        output[first_row:first_row + len(piece)] = piece
        first_row += len(piece)
        del piece
    return output
