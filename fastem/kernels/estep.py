"""Fused E-step kernels: data + parameters -> sufficient statistics.

Two families cover the four covariance types:

* ``dense``: 'full' (one (D, D) precision Cholesky factor per component) and
  'tied' (a single factor shared by all components). The precision factor is
  passed with shape (n_factors, D, D), n_factors being K or 1; the scatter
  output likewise has K or 1 slots.
* ``diagonal``: 'diag' and 'spherical' (the driver expands the spherical
  precisions to (K, D)). The scatter is the per-feature diagonal (K, D).

Conventions shared by every kernel here:

* ``X`` is C-contiguous float32 or float64; ``means`` and ``precisions_chol``
  have the dtype of ``X`` (distances are computed in the data's precision).
  Statistics are summed over a tile of points in the data's dtype
  and accumulated across tiles and blocks in float64 (the 'diag' moments
  lane by lane across a block's tiles: _diagonal_sums; with 32 vector
  registers the dense scatter lane by lane within a tile, a block's sums
  added up together: _dense_scatter_4x4).
* ``log_norm[k] = log(weights[k]) + log_det_chol[k] - D/2 log(2 pi)`` is
  precomputed by the driver in float64.
* Samples are split into blocks of ``block_size`` rows. Each block writes its
  own partial statistics; blocks are reduced in order afterwards, so the
  result does not depend on the number of threads. The compiled kernels are
  serial (``*_blocks``: one call computes a contiguous range of blocks, with
  the GIL released); the Python functions without the suffix hand block
  ranges to threads (fastem.kernels.threads.run_blocks). No ``prange``: numba's
  parallel loops took most of the cold compile time, and a parallel loop's
  body compiled in one process and loaded from the cache in another rounded
  differently in the last bits.
* Inside a block, samples are processed in tiles (``STATISTICS_TILE`` points
  by dtype) stored
  transposed (feature-major), so that the inner loops run over points and
  vectorise. Features are padded with zeros to a multiple of 4 so that the
  two O(D^2) loops (the triangular projection and the scatter update) work
  on 4x4 blocks held in registers (one or two features: padded to 2, with
  their own 2x2 code). With 512-bit vectors the tile arrays start a cache
  line (_work_arrays); every stack array does (vector.stack_array). Arrays a
  loop writes are the function's own stack arrays where they can be
  (_project_column): LLVM then needs no run-time overlap checks.
* Statistics are accumulated around the means passed in (the current ones):
  ``sum_x[k] = sum w r (x - m_k)``, ``scatter[k] = sum w r (x - m_k)(x - m_k)^T``.
  For 'full'/'tied' with 13 or more features, a component that has non-zero
  responsibility for at most SPARSE_TILE of a tile's points gets the
  statistics of just those points (gathered point-major); with exactly 8
  features, one with at most COMPACT_TILE points gets the dense statistics of
  those points moved into a narrower tile (_compact_tile); the others add
  exact zeros, so only the summation order changes.
* Kernels never raise: a sample whose log-density is -inf under every
  component contributes nothing to the statistics and -inf to the
  log-likelihood, which the driver reads.
* Hot loops index arrays directly (no slices): a slice of a shared array
  costs an atomic reference-count update that concurrent threads fight over.
* Helpers are ``forceinline`` (LLVM inlines them into the one kernel that
  calls them), not numba's ``inline="always"``, which copies and re-types a
  helper's body at every call site: that halved the cold compile time.
* The statistics kernels (``*_statistics_blocks``) run the loop over tiles
  themselves, on work arrays that numpy allocates (``*_tile_arrays``;
  ``dense_blocks`` and ``diagonal_blocks`` call the two, so each thread has its
  own). numba optimises a compiled function's module again
  with every jitted function it calls inlined, and turns it into machine code
  again: a function between the kernel and its tile loop costs its compile
  time once more (dense_statistics_blocks).
* Where the builds for 32 and for 16 vector registers differ, kernels branch
  on module globals (VECTOR_REGISTERS, WIDEST_GROUP), which numba prunes by
  before typing: a build compiles only the helpers it runs.
* Helpers that neither allocate nor return arrays are compiled without
  numba's reference counting (``_nrt=False``; their callers hold every array
  they pass). With it, each call increments and decrements the count of each
  array argument, an atomic operation each, which numba's pruning pass left
  in every helper with several loops: called per component and per 4x4 block
  of a tile, they took 4-15% of an E-step pass (a perf profile on a Zen 4
  EPYC: P1 15%, P2 11%, P3 8%, P5 4% of the kernel's samples). Without them,
  one pass, one thread, N/2 (benchmarks/estep_ab.py --checkouts): P1 0.87x
  the time in float64 and 0.85x in float32, P2 0.92x / 0.90x, P3 0.92x /
  0.93x, P5 0.97x / 0.95x. tests/test_kernels_estep.py checks that numba's
  allocation counts balance.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from fastem.kernels.cache import CACHE, read_only
from fastem.kernels.exp import (
    exp64,
    exp_constants_typed,
    exp_nonpositive_with_typed,
    held_constants,
    log64,
    log_of_product64,
    reciprocal_typed,
)
from fastem.kernels.threads import run_blocks
from fastem.kernels.vector import (
    add_lanes,
    compress_width,
    gather_nonzero,
    lane_sums,
    lane_totals,
    prefer_512_bit_vectors,
    prefetch,
    shaped,
    stack_array,
    stack_vector,
    transpose_rows8,
    transpose_square8,
    vector_lanes,
    vector_registers,
)

# Points per tile of the statistics kernels, by dtype: wider tiles spread the
# per-tile costs (horizontal sums, loop set-up) over more points. Measured (one
# E-step pass, one thread; widths 64 / 128 / 256): float64 P2 32.8 / 31.7 / 36.1 ms,
# P5 48.3 / 43.8 / 44.2, P3 87.9 / 89.7 / 92.6; float32 P2 25.7 / 22.4 / 19.9,
# P5 33.0 / 31.2 / 28.5, P3 53.3 / 42.9 / 38.8. Again for float32 once its
# responsibilities were float32 (widths 128 / 256 / 512; 2, 3 and 1 runs): P2 16.2-18.3 /
# 14.9-15.8 / 19.9, P3 39.7-40.1 / 33.6-37.0 / 41.1, P5 23.2-23.8 / 19.3-22.4 / 20.6.
STATISTICS_TILE = {np.dtype(np.float64): 128, np.dtype(np.float32): 256}
LARGEST_TILE = max(STATISTICS_TILE.values())  # block sizes are multiples of it
BLOCK = 4  # register block of the O(D^2) loops
# A component whose responsibilities in a tile are non-zero for at most this many
# points gets the statistics of just those points, gathered point-major (see
# _sparse_statistics): once clusters separate, most of a tile's points have
# exactly zero responsibility (below the flush of _weight_responsibilities) for
# most components, and the O(D^2) scatter of all the tile's points would be wasted.
# Measured (one E-step pass, one thread): P3 (D = 32) 118 -> 88 ms in float64,
# 73 -> 54 ms in float32; wider limits (32, 48) were no faster.
SPARSE_TILE = 16
# ... from this many (padded) features on. At D = 8 (P2) the dense 64-point
# scatter is cheaper than gathering: float32 P2 got 8% slower with the limit at 8
# (eight features compact their tiles instead: COMPACT_TILE).
SPARSE_MIN_FEATURES = 16
# With exactly COMPACT_FEATURES features (P2), a component whose responsibilities
# in a tile are non-zero for at most COMPACT_TILE points gets the dense statistics
# of those points alone, moved into a narrower tile (_compact_tile): on P2 after
# five iterations a median 23 of a 128-point tile's points (98% of tiles and
# components at most 64). One E-step pass of P2, one thread, N/2, parameters after
# five iterations (benchmarks/estep_ab.py, 7 rounds, Intel Xeon family 6 model
# 167), time against 68bc44e (no compaction), float64 / float32: at most 32
# points 0.941 / 0.915, 48 0.913 / 0.913, 64 0.907 / 0.910, 96 0.910 / 0.942; the
# AVX2 build ('skylake') of the same CPU at 64: 0.840 / 0.911. The tile moved by
# vector gathers from X_tile in place of the transpositions: 1.041 / 1.014. With
# one call site for both tiles (8796a8b), 9 rounds: 0.922 / 0.923 (P3 1.012 /
# 1.009), AVX2 build 0.827 / 0.856 (P3 1.016 / 0.987).
COMPACT_FEATURES = 8
COMPACT_TILE = 64
# The 'diag' and 'spherical' statistics of a component with at most this many
# points of non-zero responsibility in a tile are those points' alone
# (_sparse_diagonal_sums). One E-step pass of P5 (D = 16), one thread, N/2, after
# five iterations (benchmarks/estep_ab.py, 7 rounds, Intel Xeon family 6 model 167,
# AVX-512 build), time against no gathering, float64 / float32: at most 16 points
# 0.86 / 0.87, 32 0.84 / 0.83, 64 0.86 / 0.86; after one iteration (denser) 0.97 /
# 0.86, 0.97 / 0.82, 1.03 / 0.83. The same limit for both tile widths (128, 256).
SPARSE_DIAGONAL_TILE = 32
# _add_tile_sums multiplies a tile's sums of exps down to this many products.
PRODUCT_LANES = 16
# Most bytes of partial sums kept lane by lane through a block (_lane_rows), a
# fraction of a core's second-level cache (1-2 MiB on the CPUs measured): the 'diag'
# moments of P5 take 64 KiB in float64, 128 KiB in float32. More (K D > 2048 with
# AVX-512): each component's are added up after each tile, as before.
LANE_BYTES = 256 * 1024
# see _weighted_responsibility
NEGLIGIBLE = 2.0 ** -140
# _negligible_weight: NEGLIGIBLE, or the square root of the smallest normal number
# where that is larger (float32: 2**-63)
NEGLIGIBLE32 = max(math.sqrt(float(np.finfo(np.float32).tiny)), NEGLIGIBLE)
NEGLIGIBLE64 = max(math.sqrt(float(np.finfo(np.float64).tiny)), NEGLIGIBLE)

# Reassociation lets LLVM vectorise the reductions over a tile; no nnan/ninf:
# log-densities legitimately reach -inf. Every kernel also uses numpy's error
# model: a division by zero gives inf/NaN instead of a check-and-raise branch
# that would stop the loop from vectorising (the kernels guard their divisions).
#
# Every kernel that is not inline="always" states both fastmath and error_model,
# also where it wants neither (fastmath=False). numba compiles a jitted callee
# that leaves them unset with its *caller's* flags, and keeps that compilation as
# the callee's only one for those argument types, in memory and in the disk
# cache. The M-step called from the compiled EM loop then ran with this FASTMATH,
# and so did every later call of it from Python in that process: whether the
# M-step reassociated (and a 'tied' covariance came out 1 ulp from symmetric)
# depended on which caller happened to compile it first.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# The vector registers of the CPU numba compiles for (vector_registers: 32 with
# AVX-512 and on AArch64, 16 with AVX2), read once at import (a few milliseconds:
# LLVM assembles one instruction). Kernels branch on this global, not on the call:
# numba's dead-branch pruning takes a module global as a constant and drops the
# other branch before typing it, so a build neither types nor compiles the other
# instruction set's helpers (each forceinline helper is compiled on its own as
# well as inlined: the AVX2 build compiled _dense_scatter_4x4 and
# _dense_scatter_upper4, the AVX-512 build _dense_scatter_4x2 and
# _dense_scatter_upper2, none of which it runs). numba keys its cache on the same
# CPU, so cached kernels and this value agree.
VECTOR_REGISTERS = vector_registers()
# Features per pass of the 'diag' passes over a tile (_diagonal_sums,
# _diagonal_mahalanobis): 8 on a target with 32 vector registers (AVX-512,
# AArch64), 4 with 16 (AVX2), so that the statistics pass's 2 x group sums (one
# register each, see vector_lanes) take half the registers and the deviations
# and products the rest. The pass with 16 sums spilled them on AVX2: P5 took
# 0.44-0.93 times as long with four features per pass as with eight, measured on
# a Zen 4 EPYC (one E-step pass at N/4 or N/2, in-process alternation, four
# runs), while the AVX-512 build took 1.01-1.07 times as long with four.
WIDEST_GROUP = 8 if VECTOR_REGISTERS >= 32 else 4



def statistics_tile(X):
    """Tile width of the statistics kernels for X's dtype (a constant when compiled)."""
    return STATISTICS_TILE[np.dtype(X.dtype)]


@overload(statistics_tile, inline="always")
def _statistics_tile_compiled(X):
    width = STATISTICS_TILE[np.dtype(as_dtype(X.dtype))]
    return lambda X: width


@intrinsic
def stack_tile(typingctx, rows, dtype):
    """An uninitialised (rows, statistics_tile) C array of ``dtype`` on the stack of
    the calling function (``rows`` a constant; see vector.stack_array). LLVM
    knows that no other array reaches it, so loops that store to it and read
    other arrays need no run-time overlap checks."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(dtype, types.DType)):
        return None
    element = dtype.dtype
    shape = (rows.literal_value, STATISTICS_TILE[np.dtype(as_dtype(element))])

    def codegen(context, builder, signature, args):
        return stack_array(context, builder, element, shape)

    return types.Array(element, 2, "C")(rows, dtype), codegen


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _transpose_tile(X_flat, n_features, start, n_points, X_tile, width):
    """X_tile[i, t] = X[start + t, i]; columns past n_points repeat point 0.

    ``X_flat`` is X's rows end to end (a 1-D view of C-contiguous X): indexing
    a 1-D array, LLVM knows the stride of two features is two elements and
    vectorises their transposition; through X's runtime row stride it stays
    scalar (a tenth of a P1 iteration). Rows past the data's features
    (padding) are left as they are (zero).

    With more features LLVM kept the loops scalar however they were written
    (one load and one store per element; 7% of P2's kernel samples, 9% of
    P5's). Squares of 8 points by 8 features are now moved by vector shuffles
    (transpose_square8). One E-step pass, one thread, N/2, in-process
    alternation, on a Zen 4: P2 0.98x the time in float64 (0.96x in float32),
    P3 0.99x (0.98x), P5 0.99x (0.97x); the loads of each new tile then
    waited on memory, which _prefetch_next_tile takes care of.
    """
    prefer_512_bit_vectors()
    # Unsigned indices: numba wraps negative signed indices around, a select per
    # load that also keeps LLVM from vectorising.
    first = np.uint64(start * n_features)
    if n_features == 2:
        for t in range(n_points):
            X_tile[0, t] = X_flat[first + np.uint64(2 * t)]
            X_tile[1, t] = X_flat[first + np.uint64(2 * t + 1)]
    else:
        # 8x8 squares by vector shuffles, the rest (features past a multiple of 8,
        # points past a multiple of 8) one element at a time
        square_points = n_points - n_points % 8
        square_features = n_features - n_features % 8
        for t0 in range(0, square_points, 8):
            row = first + np.uint64(t0 * n_features)
            for i0 in range(0, square_features, 8):
                transpose_square8(X_flat, row + np.uint64(i0), n_features, X_tile, i0,
                                  t0)
        for t in range(square_points):
            row = first + np.uint64(t * n_features)
            for i in range(square_features, n_features):
                X_tile[i, t] = X_flat[row + np.uint64(i)]
        for t in range(square_points, n_points):
            row = first + np.uint64(t * n_features)
            for i in range(n_features):
                X_tile[i, t] = X_flat[row + np.uint64(i)]
    for i in range(n_features):
        for t in range(n_points, width):
            X_tile[i, t] = X_tile[i, 0]


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _prefetch_next_tile(X_flat, n_features, start, end_row, part, n_parts, width):
    """Prefetch part ``part`` of ``n_parts`` of the cache lines of the block's next
    tile (rows [start + width, min(end_row, start + 2 width))).

    The tile loop reads X only in _transpose_tile, a tile at a time with the
    whole tile's arithmetic in between: the hardware prefetcher, which follows
    a stream of reads, had stopped by then, and the transposition waited on
    memory for each new tile (most of its 7.5% of P5's kernel samples sat on
    its loads). The kernels call this once per component of the current tile,
    so the next tile's lines are requested a few at a time.
    """
    prefer_512_bit_vectors()
    line = 64 // X_flat.itemsize  # elements per cache line
    first = (start + width) * n_features
    end = min(end_row, start + 2 * width) * n_features
    n_lines = (end - first + line - 1) // line
    per_part = (n_lines + n_parts - 1) // n_parts
    for index in range(part * per_part, min(n_lines, (part + 1) * per_part)):
        prefetch(X_flat, first + index * line)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _project_column(X_tile, means, k, precisions_chol, slot, j0, mahalanobis):
    """Add the squares of column block j0:j0+4 of (x_t - m_k)^T P to mahalanobis[t]
    (set it, for the first column block), summed one 4x4 block of P at a time.

    One 4x4 block of the factor in registers: 16 multiply-adds per 4 loads of
    the tile. The column block's partial sums s_j (j0 <= j < j0+4) live in
    ``partial`` between blocks: the first block (i0 = 0) writes them without
    reading, and the last (i0 = j0, the diagonal block of the triangular
    factor) adds their squares to mahalanobis[t] instead of storing them. So a
    column block of one row block (j0 = 0, and all of D <= 4) never touches
    ``partial``. One loop per case, written out (LLVM does not unswitch a loop
    on them: it masked the loads and stores instead, two to three times
    slower). Against one loop that always loaded and stored the partial sums
    (after zeroing them), on an AVX2 Zen 3 EPYC, one E-step pass, one thread,
    N/2, in-process alternation: P2 (D = 8) 0.965x the time in float64,
    0.95-1.0x in float32; P3 (D = 32) within +-2% (noise).

    ``partial`` is this function's own array, on its stack (stack_tile), and
    the loop over a column's blocks is here. Passed in by the caller (a tile
    array, ``projection``, as it was), ``partial`` could have been any memory
    to LLVM, so before each block's loop it checked at run time that the four
    rows overlapped neither each other nor the tile's: some 50 instructions per
    block, component and tile, about 6% of P2's kernel samples on an Intel
    Xeon. A stack array is known to overlap nothing. It starts a cache line
    (vector.STACK_ALIGNMENT): 8 bytes past one, as an alloca first came out,
    P2 took 1.008x as long in float64 as before the change. One E-step pass,
    one thread, N/2, parameters after 5 EM iterations, in-process alternation
    (benchmarks/estep_ab.py --checkouts, 11 rounds), Intel Xeon (family 6,
    model 167), AVX-512 build, against c28b837, together with the scatter's
    lane sums (_dense_scatter_4x4, _dense_scatter_upper4), time after / before
    in float64 and float32: P2 0.965 and 0.933, P3 0.884 and 0.874 (the lane
    sums alone: P2 0.98 and 0.97, P3 1.006 and 0.995).

    The 4x4 blocks replaced seven hand-unrolled variants that summed eight rows
    at a time (32 factor entries live) and fused the first and last chunks of a
    column block. Measured on a Zen 4 EPYC (AVX-512), one E-step pass, 2
    threads: P2 (D = 8) about 7% slower in float64, P3 (D = 32) 2-4% faster; the
    cold compile of a dtype and family 27 -> 18 s CPU (with the other changes of
    that commit). Vector spills to the stack in the dense statistics kernel (its
    assembly, as tests/test_kernels_asm.py builds it): AVX2 ('znver3', 16 ymm
    registers) 243 stores / 319 reloads -> 115 / 86, AVX-512 ('skylake-avx512',
    32 zmm) 122 / 169 -> 63 / 57: the eight-row blocks did not fit AVX2's
    registers.
    """
    prefer_512_bit_vectors()
    partial = stack_tile(4, X_tile.dtype)
    width = statistics_tile(X_tile)
    for i0 in range(0, j0 + BLOCK, BLOCK):
        centre = _four(means, k, i0)
        p00 = precisions_chol[slot, i0, j0]
        p01 = precisions_chol[slot, i0, j0 + 1]
        p02 = precisions_chol[slot, i0, j0 + 2]
        p03 = precisions_chol[slot, i0, j0 + 3]
        p10 = precisions_chol[slot, i0 + 1, j0]
        p11 = precisions_chol[slot, i0 + 1, j0 + 1]
        p12 = precisions_chol[slot, i0 + 1, j0 + 2]
        p13 = precisions_chol[slot, i0 + 1, j0 + 3]
        p20 = precisions_chol[slot, i0 + 2, j0]
        p21 = precisions_chol[slot, i0 + 2, j0 + 1]
        p22 = precisions_chol[slot, i0 + 2, j0 + 2]
        p23 = precisions_chol[slot, i0 + 2, j0 + 3]
        p30 = precisions_chol[slot, i0 + 3, j0]
        p31 = precisions_chol[slot, i0 + 3, j0 + 1]
        p32 = precisions_chol[slot, i0 + 3, j0 + 2]
        p33 = precisions_chol[slot, i0 + 3, j0 + 3]
        factor = (p00, p01, p02, p03, p10, p11, p12, p13,
                  p20, p21, p22, p23, p30, p31, p32, p33)
        if i0 == 0 and j0 == 0:  # the one row block of the first column block
            for t in range(width):
                s0, s1, s2, s3 = _diagonal_block_products(X_tile, t, i0, centre, factor)
                mahalanobis[t] = (s0 * s0 + s1 * s1) + (s2 * s2 + s3 * s3)
        elif i0 == 0:  # the first of several: write the partial sums
            for t in range(width):
                s0, s1, s2, s3 = _block_products(X_tile, t, i0, centre, factor)
                partial[0, t] = s0
                partial[1, t] = s1
                partial[2, t] = s2
                partial[3, t] = s3
        elif i0 == j0:  # the last: finish the sums and add their squares
            for t in range(width):
                s0, s1, s2, s3 = _diagonal_block_products(X_tile, t, i0, centre, factor)
                s0 += partial[0, t]
                s1 += partial[1, t]
                s2 += partial[2, t]
                s3 += partial[3, t]
                mahalanobis[t] += (s0 * s0 + s1 * s1) + (s2 * s2 + s3 * s3)
        else:
            for t in range(width):
                s0, s1, s2, s3 = _block_products(X_tile, t, i0, centre, factor)
                partial[0, t] += s0
                partial[1, t] += s1
                partial[2, t] += s2
                partial[3, t] += s3


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _block_products(X_tile, t, i0, centre, factor):
    """(x_t[i0:i0+4] - centre) times a 4x4 block of the factor (``factor``: its 16
    entries row by row, a tuple, so they stay in registers): four sums."""
    d0 = X_tile[i0, t] - centre[0]
    d1 = X_tile[i0 + 1, t] - centre[1]
    d2 = X_tile[i0 + 2, t] - centre[2]
    d3 = X_tile[i0 + 3, t] - centre[3]
    return (d0 * factor[0] + d1 * factor[4] + d2 * factor[8] + d3 * factor[12],
            d0 * factor[1] + d1 * factor[5] + d2 * factor[9] + d3 * factor[13],
            d0 * factor[2] + d1 * factor[6] + d2 * factor[10] + d3 * factor[14],
            d0 * factor[3] + d1 * factor[7] + d2 * factor[11] + d3 * factor[15])


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _diagonal_block_products(X_tile, t, i0, centre, factor):
    """_block_products of a block on the factor's diagonal, which is upper
    triangular: the six entries below its diagonal are zero and not multiplied
    (10 multiply-adds instead of 16). With the scatter's diagonal blocks summing
    only their upper triangles (_dense_scatter_upper2, _dense_scatter_upper4),
    on an AVX2 Zen 3 EPYC, one E-step pass, N/2, in-process alternation: P2
    (D = 8) 0.95x the time in float64 (2 threads; 0.98x with 1), 0.94x in
    float32 (1 thread); P3 (D = 32, 8 of its 36 blocks on the diagonal) 0.98-1.06x
    in float64, 0.98x in float32: within this machine's noise. AVX-512 Zen 4, one
    thread, N/2, 15 rounds (benchmarks/estep_ab.py --checkouts): P2 0.88x in both
    dtypes, P3 0.96x / 0.94x."""
    d0 = X_tile[i0, t] - centre[0]
    d1 = X_tile[i0 + 1, t] - centre[1]
    d2 = X_tile[i0 + 2, t] - centre[2]
    d3 = X_tile[i0 + 3, t] - centre[3]
    return (d0 * factor[0],
            d0 * factor[1] + d1 * factor[5],
            d0 * factor[2] + d1 * factor[6] + d2 * factor[10],
            d0 * factor[3] + d1 * factor[7] + d2 * factor[11] + d3 * factor[15])


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _project_only2(X_tile, means, k, precisions_chol, slot, mahalanobis, width):
    """mahalanobis[t] = |(x_t - m_k)^T P|^2 for two (padded) features."""
    prefer_512_bit_vectors()
    component = _component2(means, k, precisions_chol, slot)
    for t in range(width):
        mahalanobis[t] = _distance2(X_tile, t, component)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _component2(means, k, precisions_chol, slot):
    """Component k's two means and three factor entries (P is upper triangular), a
    tuple, so that they stay in registers (see _distance2)."""
    return (means[k, 0], means[k, 1], precisions_chol[slot, 0, 0],
            precisions_chol[slot, 0, 1], precisions_chol[slot, 1, 1])


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _distance2(X_tile, t, component):
    """|(x_t - m)^T P|^2 of point t of a two-feature tile (``component`` from
    _component2)."""
    m0, m1, p00, p01, p11 = component
    d0 = X_tile[0, t] - m0
    d1 = X_tile[1, t] - m1
    s0 = d0 * p00
    s1 = d0 * p01 + d1 * p11
    return s0 * s0 + s1 * s1


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _log_prob2(X_tile, means, k, precisions_chol, slot, log_norm, shift, n_points,
               log_prob, peak_before, peak, width):
    """_project_only2 and _store_log_prob in one pass over the tile (two features,
    statistics): log_prob[k, t] = log_norm[k] - shift - |(x_t - m_k)^T P|^2 / 2
    and peak[t] = max(peak_before[t], log_prob[k, t]).

    The distances are not stored and read back. One E-step pass of P1, one thread,
    N/2, after five iterations, in-process alternation on a Zen 4 EPYC
    (benchmarks/estep_ab.py --checkouts, 15 rounds): 0.955x the time in float64
    and 0.952x in float32 with the AVX-512 build (0.96x / 0.956x in a first run of
    11 rounds), 1.002x / 0.979x with the AVX2 build ('znver3'). Inference keeps
    the two passes (its float64 weighted_log_prob rows, _store_log_prob).
    """
    prefer_512_bit_vectors()
    component = _component2(means, k, precisions_chol, slot)
    offset = log_prob.dtype.type(log_norm[k] - shift)
    half = log_prob.dtype.type(0.5)
    for t in range(width):
        value = offset - half * _distance2(X_tile, t, component)
        log_prob[k, t] = value
        peak[t] = max(peak_before[t], value)
    for t in range(n_points, width):
        log_prob[k, t] = -np.inf


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_mahalanobis(X_tile, means, k, precisions_chol, slot, mahalanobis, width):
    """mahalanobis[t] = |(x_t - m_k)^T P|^2 with P upper triangular, padded to 4s.

    The deviations x_t - m_k are formed on the fly from the transposed tile.
    Column block j0:j0+4 of (x - m)^T P needs rows i < j0 + 4 of P: it is
    summed one 4x4 block of P at a time (_project_column), whose last block adds
    its squares to the norm.
    """
    prefer_512_bit_vectors()
    n_padded = X_tile.shape[0]
    if n_padded == 2:
        _project_only2(X_tile, means, k, precisions_chol, slot, mahalanobis, width)
        return
    for j0 in range(0, n_padded, BLOCK):
        _project_column(X_tile, means, k, precisions_chol, slot, j0, mahalanobis)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _responsibilities(log_prob, n_points, top, peak, scale, entropy, tile_weight,
                      with_entropy, log_uniform, width):
    """Weighted log-probabilities (K, width) -> unnormalised responsibilities, in place.

    ``peak[t]``: the largest log_prob[., t], from _store_log_prob.

    log_prob[k, t] becomes e_tk = exp(log_prob[k, t] - top_t), with top_t the
    peak (0 for a point whose entries are all -inf, which no component
    explains: its exps are all 0), and scale[t] the factor w_t / S_t, S_t =
    sum_k e_tk, that turns it into the weighted responsibility w_t r_tk (see
    _weight_responsibilities; no separate normalising pass). ``top[t]``
    receives top_t and ``peak[t]`` S_t, in [1, K] (the peak's exp is exactly
    1) or 0 for an unexplained point: log p(x_t) = top_t + log S_t, which
    _add_tile_sums sums without a log per point. ``entropy[t]`` receives
    (sum_k e_tk (l_tk - top_t)) / S_t if ``with_entropy`` (else 0: only the
    variational bound needs it, and its term per point and component took
    5-9% of P1's pass), -log K for an unexplained point: with r_k = e_k / S,
    sum_k r_k log r_k = (sum_k e_k (l_k - top)) / S - log S and log max_k r_k =
    -log S, so no (N, K) array of log-responsibilities is needed for either
    (and an unexplained point's responsibilities are uniform by convention).
    ``log_uniform`` is -log K in float64 (see _log_uniform).

    All of it is computed in log_prob's dtype, the data's (exp32 for float32
    data: 16 lanes per vector and half the memory of float64), except
    scale[t]: the float64 sample weight (tile_weight[t], see _tile_weights)
    times 1 / S_t, rounded once to the data's dtype (per point, not per
    component).
    """
    prefer_512_bit_vectors()
    total = scale
    n_components = log_prob.shape[0]
    zero = log_prob.dtype.type(0.0)  # typed constants: no float64 arithmetic per entry
    uniform = log_prob.dtype.type(log_uniform)
    for t in range(width):
        total[t] = zero
        entropy[t] = zero
    for t in range(n_points, width):
        peak[t] = -np.inf  # (_store_log_prob has put -inf there)
    # The shift of each point's exps, written to another array than peak, and
    # every value loaded before a condition uses it: a store of "this if c else
    # what is there" or a load in one branch only becomes a masked store or load
    # (see _store_log_prob).
    for t in range(width):
        # A point that no component can explain: every exp below gives 0.
        value = peak[t]
        top[t] = zero if value == -np.inf else value
    # the exp's constants as values, broadcast once before each loop (see
    # held_constants), not from memory in every iteration
    constants = exp_constants_typed(zero)
    for k in range(n_components):
        if with_entropy:
            for t in range(width):
                shifted = log_prob[k, t] - top[t]
                value = exp_nonpositive_with_typed(shifted, constants)
                log_prob[k, t] = value
                total[t] += value
                # 0 log 0 = 0 (shifted may be -inf where value is 0)
                entropy[t] += value * shifted if value > zero else zero
        else:
            for t in range(width):
                value = exp_nonpositive_with_typed(log_prob[k, t] - top[t], constants)
                log_prob[k, t] = value
                total[t] += value
    for t in range(width):
        sum_exp = total[t]
        sum_shifted = entropy[t]
        explained = sum_exp > zero
        # 1 / S_t within an ulp, without a float64 division (see reciprocal64);
        # not finite for an unexplained point, where it is not used
        inverse = reciprocal_typed(sum_exp)
        # (stored either way: a store under a condition is a masked store)
        ratio = sum_shifted * inverse if explained else uniform
        entropy[t] = ratio if with_entropy else zero
        peak[t] = sum_exp
        total[t] = inverse if explained else zero
    for t in range(n_points):
        scale[t] = tile_weight[t] * total[t]
    for t in range(n_points, width):
        scale[t] = 0.0


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _log_uniform(n_components):
    """-log K: the log-responsibility of each component for a point none explains
    (the convention of _responsibilities), in float64. Computed once per block and
    passed down, so that a kernel has one call of log, outside its loops, whatever
    LLVM makes of the tile loop (the AArch64 build of tests/test_kernels_asm.py
    kept two calls once the tile arrays were aligned, with the log in each helper)."""
    return -math.log(n_components)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _log_norm_shift(log_norm):
    """The largest entry of log_norm (0 if all are -inf), subtracted from them all
    before the log-probabilities are rounded to the data's dtype.

    log_norm holds log weights, log-determinants and -D log(2 pi) / 2, which
    can be large (D log 2 per factor of 2 in the data's scale): rounded to
    float32 as they are, they would shift every log-probability of a
    component by up to half a float32 ulp of that size, and the
    log-likelihood with them. Their differences are what the responsibilities
    need; the shift goes back into the log-likelihood in float64
    (_add_tile_sums).
    """
    prefer_512_bit_vectors()
    shift = -np.inf
    for k in range(log_norm.shape[0]):
        shift = max(shift, log_norm[k])
    return 0.0 if shift == -np.inf else shift


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _store_log_prob(log_norm, shift, k, mahalanobis, start, n_points, log_prob, peak_before,
                    peak, weighted_log_prob, width):
    """log_prob[k, t] = log_norm[k] - shift - mahalanobis[t] / 2; -inf past the
    tile's points (see _log_norm_shift).

    peak[t] becomes max(peak_before[t], log_prob[k, t]): the largest log_prob[., t]
    so far (start at -inf). Two arrays, not one updated in place: LLVM turns
    ``peak[t] = max(peak[t], value)`` into a store only where value is larger, a
    masked store, which AVX2 has only as ``vmaskmovpd``, microcoded and slow on
    AMD's cores (the caller alternates two arrays).
    Computed in log_prob's dtype (log_norm and shift are float64).

    Inference (``weighted_log_prob`` has rows) sets weighted_log_prob[start + t, k]
    = log_norm[k] - mahalanobis[t] / 2 in float64 instead (no shift).
    """
    prefer_512_bit_vectors()
    if weighted_log_prob.shape[0] > 0:
        for t in range(n_points):
            weighted_log_prob[start + t, k] = log_norm[k] - 0.5 * mahalanobis[t]
        return
    offset = log_prob.dtype.type(log_norm[k] - shift)
    half = log_prob.dtype.type(0.5)
    for t in range(width):
        value = offset - half * mahalanobis[t]
        log_prob[k, t] = value
        peak[t] = max(peak_before[t], value)
    for t in range(n_points, width):
        log_prob[k, t] = -np.inf


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _tile_weights(sample_weight, start, n_points, tile_weight):
    """tile_weight[t] = the weight of row start + t: sample_weight[start + t], or
    its one entry for every row (UNIT_WEIGHT).

    The loops that use the weights (_responsibilities, _add_tile_sums) read them
    from here, so that they are the same code whichever way the weights come: a
    loop reading one weight for all rows is vectorised differently (its sums in
    another order) from one reading a weight per row, and a fit given no weights
    must give the bits of one given ones (and the streamed and Dask sources, whose
    chunks carry arrays of ones).
    """
    prefer_512_bit_vectors()
    if sample_weight.shape[0] == 1:
        weight = sample_weight[0]
        for t in range(n_points):
            tile_weight[t] = weight
    else:
        first = np.uint64(start)  # unsigned: no wraparound select (see _transpose_tile)
        for t in range(n_points):
            tile_weight[t] = sample_weight[first + np.uint64(t)]
    for t in range(n_points, tile_weight.shape[0]):
        tile_weight[t] = 0.0  # (read by _add_tile_sums' loops over the whole tile)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _add_tile_sums(tile_weight, n_points, shift, top, entropy, sum_exp, products,
                   log_uniform, with_entropy, sums, width):
    """Add the tile's weighted sums, in float64, to ``sums``: [0] sum_t w_t log p(x_t),
    [1] sum_t w_t sum_k r log r (if ``with_entropy``, else 0) and [2] sum_t w_t log
    max_k r, from _responsibilities' ``top``, ``entropy`` and ``sum_exp`` (its
    ``peak``): log p(x_t) = shift + top_t + log S_t (see _log_norm_shift), sum_k r
    log r = entropy_t - log S_t and log max_k r = -log S_t for a point some
    component explains (S_t > 0); -inf, -log K and -log K (``log_uniform``)
    for one none does. Zero-weight points are left out, even at -inf.

    All three need L = sum_t w_t log S_t over the explained points, which takes
    no log per point: S_t is in [1, K], so the S_t of the points of weight 1 are
    multiplied together in float64 (``products``, width entries), pairwise
    halving the tile to PRODUCT_LANES products of at most width / PRODUCT_LANES
    factors each (K**16 at most: finite for any K < 10**19), and L is their
    product's log, taken once (log_of_product64: their mantissas multiplied and
    their binary exponents added). A log of each of the 16, as before, was
    unrolled by LLVM into 16 scalar logs with their divisions, about 10% of P1's
    kernel samples on an Intel Xeon; one log: one E-step pass, one thread, N/2,
    after 5 EM iterations, in-process alternation, AVX-512 build, P1 0.951 and
    0.94 the time of c28b837 in float64 and float32 (P2 0.885 and 0.872 with
    this commit's parents' changes, 0.911 and 0.878 without it; P5 0.998 and
    0.995). Points of other weights (sample weights) add w_t log S_t one by
    one, in a loop that runs only for a tile that has any. A fit given no weights
    and one given an array of ones take the same path, and the same bits.

    The log per point it replaced was, with the division next to it, 13-18% of
    P1's kernel samples (benchmarks/estep_profile.py). One E-step pass, one
    thread, N/2, after five iterations, in-process alternation on a Zen 4 EPYC
    (benchmarks/estep_ab.py --checkouts, 15-21 rounds), float64 / float32:
    AVX-512 build P1 0.95-0.965x / 0.965-0.98x the time, P2 0.99x / 0.97-1.01x,
    P5 0.98-0.99x / 0.99x; AVX2 build ('znver3') P1 0.88-0.90x / 0.91x, P2
    1.0-1.02x / 1.03-1.045x, P3 float32 0.95x, P5 0.99-1.0x / 0.99x. With the
    checkouts named in the other order, AVX2 P2: 0.98x / 1.0x (the harness
    favours one position there; see "sum r log r only where it is needed" in
    docs/performance.md).
    """
    prefer_512_bit_vectors()
    log_likelihood = 0.0
    entropy_sum = 0.0
    unexplained = 0.0  # the weight of the points no component explains
    n_weighted = 0  # explained points of a weight other than 0 and 1
    # Over the whole tile, with no condition on a load (a masked load on AVX2):
    # tile_weight is 0 past the tile's points, and top and entropy are finite, so
    # a point of weight 0 adds exact zeros.
    for t in range(width):
        weight = tile_weight[t]
        value = sum_exp[t]
        log_likelihood += weight * (shift + top[t])
        entropy_sum += weight * entropy[t]
        explained = value > 0.0
        unexplained += 0.0 if explained else weight
        n_weighted += 1 if explained and weight > 0.0 and weight != 1.0 else 0
        products[t] = np.float64(value) if explained and weight == 1.0 else 1.0
    half = width // 2
    while half >= PRODUCT_LANES:
        for t in range(half):
            products[t] *= products[t + half]
        half //= 2
    log_total = log_of_product64(products[:PRODUCT_LANES])
    if n_weighted > 0:
        for t in range(n_points):
            weight = tile_weight[t]
            value = np.float64(sum_exp[t])
            term = weight * log64(value)
            log_total += term if weight > 0.0 and weight != 1.0 and value > 0.0 else 0.0
    sums[0] += log_likelihood + log_total + (-np.inf if unexplained > 0.0 else 0.0)
    if with_entropy:
        sums[1] += entropy_sum - log_total
    sums[2] += unexplained * log_uniform - log_total


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _negligible_weight(weighted_resp):
    """The smallest weighted responsibility not counted as zero (see
    _weighted_responsibility), in weighted_resp's dtype: 2**-140 in float64, 2**-63
    in float32 (exact). (By the item size, a constant to numba: np.finfo took 0.04 s
    of a cold compile.) Held (held_constants), as the exp's constants: the AVX2
    build's P1 moments loop broadcast it from memory in every iteration (one E-step
    pass 0.985 of the time; AVX-512 0.991)."""
    negligible = NEGLIGIBLE32 if weighted_resp.itemsize == 4 else NEGLIGIBLE64
    return held_constants((weighted_resp.dtype.type(negligible),))[0]


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _weighted_responsibility(resp, k, t, scale, negligible, weighted_resp):
    """weighted_resp[t] = w_t r_tk = resp[k, t] scale[t] (see _responsibilities),
    in the data's dtype; returns it as a float64 (for nk's float64 sum).

    Values below ``negligible`` (_negligible_weight) are counted as zero, and a
    component's statistics then skip the point (_gather_points):

    - float32: 2**-63 (1.1e-19), the square root of the smallest normal number.
      Products with deviations would be subnormal, and every arithmetic
      instruction with a subnormal lane takes a microcode assist (~100 cycles),
      which made float32 fits with many well-separated components ten times
      slower than float64.
    - float64: NEGLIGIBLE = 2**-140 (7.2e-43; it was the square root of the
      smallest normal, 1.5e-154, until the 'diag' kernel gathered). N rows drop
      less than N 2**-140 of a component's mass; weights are scaled to a mean in
      [1, 2) (fastem._validation), so a component that is not empty has more
      than 1e-13 N (mstep._component_is_empty) and loses less than 7.2e-30 of
      its mass, far below float64's rounding (1.1e-16); its moments lose as
      little relative to the same points' deviations. On P5 after five
      iterations 89% of the responsibilities were above 1.5e-154 and 11% are
      above 2**-140 (P2: 80% and 21%; P3: 4.4% and 3.1%), so the 'diag'
      statistics of most tiles and components take the gathered path.
    """
    value = resp[k, t] * scale[t]
    value = value if value >= negligible else weighted_resp.dtype.type(0.0)
    weighted_resp[t] = value
    return np.float64(value)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _weight_responsibilities(scale, n_points, resp, k, weighted_resp, width):
    """weighted_resp[t] = w_t r_tk for the tile (_weighted_responsibility; zero past
    the tile's points); returns their float64 sum and how many are non-zero."""
    prefer_512_bit_vectors()
    negligible = _negligible_weight(weighted_resp)
    total = 0.0
    count = 0
    for t in range(n_points):
        value = _weighted_responsibility(resp, k, t, scale, negligible, weighted_resp)
        total += value
        count += 1 if value != 0.0 else 0
    for t in range(n_points, width):
        weighted_resp[t] = 0.0
    return total, count


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _gather_points(weighted_resp, n_points, index, gathered_resp):
    """The points of the tile with non-zero weighted_resp; returns how many.

    index[c] is the tile column of the c-th of them and gathered_resp[c] its
    weighted responsibility. Both have the tile's width (gather_nonzero writes
    whole vectors past the count); weighted_resp is zero from n_points to the
    width.

    A vector compress per 8 (float64) or 16 (float32) points with AVX-512,
    elsewhere one store per point without a branch (see gather_nonzero). The
    loop with a branch per point mispredicted on P5's responsibilities (about
    a tenth non-zero, scattered): with the 'diag' kernel's gathered path
    (_sparse_diagonal_sums) it took 20% of the pass's samples in a perf profile,
    11% branch-free, and the pass took 1.20, 0.94 and 0.89 times as long as
    without the gathered path (one E-step pass of P5, one thread, N/2,
    parameters after five iterations, benchmarks/estep_ab.py, Intel Xeon
    family 6 model 167).
    """
    prefer_512_bit_vectors()
    count = 0
    for first in range(0, n_points, compress_width(weighted_resp.dtype)):
        count = gather_nonzero(weighted_resp, first, index, gathered_resp, count)
    return count


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _sparse_statistics(X, start, index, gathered_resp, count, means_padded, k, diff,
                       weighted_diff, sum_x, scatter, slot):
    """sum_x[k] and scatter[slot] of the gathered points (see _gather_points), point-major.

    diff[c, i] = x_i - m_i of the c-th gathered point (zero for padded
    features), weighted_diff[c, i] = w r diff[c, i]. The scatter takes rank-4
    updates, four of its rows at a time, vectorised along the rows: row i gets
    sum_c weighted_diff[c, i] diff[c, :] for four points c per pass, from the
    diagonal block's first column rounded down to whole vectors (8 or 16
    columns; so also some entries below the diagonal, which reduce_dense and
    the sources' fold never read).

    It replaced 4x4 blocks of scalar sums over the gathered points (16 sums in
    registers per block, point after point: not vectorised, and for the few
    points a component has in a tile, about six on P3, mostly the blocks' set-up
    and their 16 additions to the scatter: 15% of the pass in a perf profile,
    benchmarks/estep_profile.py). One E-step pass of P3 (D = 32) from the
    parameters after five iterations, one thread, N/2, on a Zen 4 EPYC
    (benchmarks/estep_ab.py --checkouts ... --iterations 5): 0.96x the time in
    float64 and 0.95x in float32 with the AVX-512 build, 0.89x in both with the
    AVX2 build ('znver3'). One row at a time with eight points per pass was no
    faster: a chain of eight dependent multiply-adds per vector, and a scalar
    remainder.
    """
    prefer_512_bit_vectors()
    n_features = X.shape[1]
    n_padded = means_padded.shape[1]
    for c in range(count):
        t = index[c]
        weight = gathered_resp[c]
        for i in range(n_features):
            deviation = X[start + t, i] - means_padded[k, i]
            diff[c, i] = deviation
            weighted_diff[c, i] = weight * deviation
        for i in range(n_features, n_padded):
            diff[c, i] = 0.0
            weighted_diff[c, i] = 0.0
    for i in range(n_padded):
        first = weighted_diff[0, i] - weighted_diff[0, i]
        for c in range(count):
            first += weighted_diff[c, i]
        sum_x[k, i] += first
    # Four rows of the scatter at a time take the points four at a time: four
    # independent sums per column, each row read and written once per four points.
    # The last group is padded with points whose deviations and weights are zero,
    # which add exact zeros.
    n_grouped = -(-count // 4) * 4
    for c in range(count, n_grouped):
        for i in range(n_padded):
            diff[c, i] = 0.0
            weighted_diff[c, i] = 0.0
    for i0 in range(0, n_padded, BLOCK):
        # From the first column of the diagonal block on, rounded down to a vector
        # register's worth of X's dtype (vector_lanes), at least 8 (16 for float32
        # with AVX-512, else 8: whole vectors; the entries left of the diagonal
        # are not read).
        # Rounded down to 8 with AVX-512, float32 rows whose columns started at 8
        # or 24 mod 32 ran LLVM's scalar remainder loop (a third of the vector
        # loop's samples in a profile of P3): rounded to 16, one E-step pass of
        # float32 P3 took 0.96 of the time (one thread, N/2, estep_ab.py, 9
        # rounds, after one and after five iterations, Intel Xeon); the AVX2 build
        # took 1.017 of the time with 16, so it keeps 8.
        first_column = i0 - i0 % max(2 * BLOCK, vector_lanes(X.dtype))
        for c in range(0, n_grouped, 4):
            u00 = weighted_diff[c, i0]
            u01 = weighted_diff[c, i0 + 1]
            u02 = weighted_diff[c, i0 + 2]
            u03 = weighted_diff[c, i0 + 3]
            u10 = weighted_diff[c + 1, i0]
            u11 = weighted_diff[c + 1, i0 + 1]
            u12 = weighted_diff[c + 1, i0 + 2]
            u13 = weighted_diff[c + 1, i0 + 3]
            u20 = weighted_diff[c + 2, i0]
            u21 = weighted_diff[c + 2, i0 + 1]
            u22 = weighted_diff[c + 2, i0 + 2]
            u23 = weighted_diff[c + 2, i0 + 3]
            u30 = weighted_diff[c + 3, i0]
            u31 = weighted_diff[c + 3, i0 + 1]
            u32 = weighted_diff[c + 3, i0 + 2]
            u33 = weighted_diff[c + 3, i0 + 3]
            for j in range(first_column, n_padded):
                j = np.uint64(j)  # unsigned: no wraparound select (see _transpose_tile)
                d0 = diff[c, j]
                d1 = diff[c + 1, j]
                d2 = diff[c + 2, j]
                d3 = diff[c + 3, j]
                scatter[slot, i0, j] += ((u00 * d0 + u10 * d1)
                                         + (u20 * d2 + u30 * d3))
                scatter[slot, i0 + 1, j] += ((u01 * d0 + u11 * d1)
                                               + (u21 * d2 + u31 * d3))
                scatter[slot, i0 + 2, j] += ((u02 * d0 + u12 * d1)
                                               + (u22 * d2 + u32 * d3))
                scatter[slot, i0 + 3, j] += ((u03 * d0 + u13 * d1)
                                               + (u23 * d2 + u33 * d3))


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _compact_tile(X_flat, start, index, count, gathered_resp, compact_tile):
    """compact_tile[i, c] = X[start + index[c], i] for the ``count`` gathered points
    (see _gather_points) of a tile of COMPACT_FEATURES features, by 8x8
    transpositions of their rows of X (transpose_rows8); returns the columns it
    fills: ``count`` rounded up to whole vectors (at least 8), the extra
    columns copies of the last point with gathered_resp zero (so they add
    exact zeros). The dense statistics then take compact_tile and
    gathered_resp for the tile and its weighted responsibilities, over those
    columns alone (see COMPACT_TILE)."""
    prefer_512_bit_vectors()
    group = max(8, vector_lanes(compact_tile.dtype))
    n_columns = -(-count // group) * group
    for c in range(count, n_columns):
        index[c] = index[count - 1]
        gathered_resp[c] = 0.0
    for c0 in range(0, n_columns, 8):
        transpose_rows8(X_flat, start, index, c0, COMPACT_FEATURES, 0, compact_tile, 0,
                        c0)
    return n_columns


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_statistics2(scale, resp, k, X_tile, means_padded, weighted_resp, sum_x, scatter,
                       slot, width):
    """Component k's statistics of a tile of two (padded) features, in one pass.

    What _weight_responsibilities, the centring pass and _dense_scatter do
    for wider data, with the sums in registers: weighted_resp[t] = w_t r_tk
    (see _weighted_responsibility), sum_x[k] += sum_t
    weighted_resp[t] (x_t - m_k), scatter[slot] += the weighted outer
    products. Returns the float64 sum of the weighted responsibilities.
    """
    prefer_512_bit_vectors()
    negligible = _negligible_weight(weighted_resp)
    m0 = means_padded[k, 0]
    m1 = means_padded[k, 1]
    zero = X_tile[0, 0] - X_tile[0, 0]
    total = 0.0
    f0 = f1 = a00 = a01 = a11 = zero
    for t in range(width):  # past the tile's points, resp[k, t] and scale[t] are 0
        total += _weighted_responsibility(resp, k, t, scale, negligible, weighted_resp)
        u = weighted_resp[t]  # in the data's dtype
        d0 = X_tile[0, t] - m0
        d1 = X_tile[1, t] - m1
        u0 = u * d0
        u1 = u * d1
        f0 += u0
        f1 += u1
        a00 += u0 * d0
        a01 += u0 * d1
        a11 += u1 * d1
    sum_x[k, 0] += f0
    sum_x[k, 1] += f1
    scatter[slot, 0, 0] += a00
    scatter[slot, 0, 1] += a01
    scatter[slot, 1, 1] += a11
    return total


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_statistics(weighted_resp, X_tile, means, k, weighted_diff, sum_x, scatter,
                      slot, width):
    """Component k's sum_x and scatter of a tile from its weighted responsibilities
    (see _weight_responsibilities): weighted_diff[i, t] = weighted_resp[t] (x_ti -
    m_ki), centred and weighted in one pass, then the scatter (_dense_scatter).

    With 32 vector registers the pass stores all but the last four rows and sums
    nothing: the scatter's diagonal blocks sum sum_x lane by lane, and the last
    one weights its rows itself (_dense_scatter_upper4). With 16 (AVX2) it
    stores every row and sums sum_x[k] in the same loop.
    """
    prefer_512_bit_vectors()
    if VECTOR_REGISTERS >= 32:  # summed and (last block row) weighted there
        # whole vectors (so LLVM knows no remainder is left)
        columns = width - width % vector_lanes(X_tile.dtype)
        for i in range(X_tile.shape[0] - BLOCK):  # see _dense_scatter_upper4
            centre = means[k, i]
            for t in range(columns):
                weighted_diff[i, t] = weighted_resp[t] * (X_tile[i, t] - centre)
        _dense_scatter(weighted_resp, weighted_diff, X_tile, means, k, sum_x, scatter,
                       slot, width)
        return
    for i in range(X_tile.shape[0]):
        centre = means[k, i]
        first = weighted_resp[0] - weighted_resp[0]
        for t in range(width):
            value = weighted_resp[t] * (X_tile[i, t] - centre)
            weighted_diff[i, t] = value
            first += value
        sum_x[k, i] += first
    _dense_scatter(weighted_resp, weighted_diff, X_tile, means, k, sum_x, scatter, slot,
                   width)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_scatter(weighted_resp, weighted_diff, X_tile, means, k, sum_x, scatter, slot,
                   width):
    """scatter[i, j] += sum_t weighted_diff[i, t] (x_tj - m_kj), upper 4x4 blocks.

    The deviations x - m of the right-hand side are formed here from the tile,
    not stored by the centring pass.

    A 4x4 block keeps 16 sums in registers: on a target with 16 vector registers
    (AVX2) they spilled to the stack, so there each block is summed as two 4x2
    halves (_dense_scatter_4x2). Measured on a Zen 4 EPYC running the AVX2 build,
    one E-step pass: see "The AVX2 build, timed" in docs/performance.md. Forming
    x - m here instead of reading a stored array (one subtraction per loaded row; the
    centring pass then stores one array, not two, and a tile's arrays take 8 KiB
    less of the 32 KiB L1 of AMD's cores): on an AVX2 Zen 3 EPYC, one E-step
    pass, 2 threads, P2 (D = 8) 0.875x the time in float64 and 0.944x in float32,
    P3 (D = 32) 1.008x and 0.945x, the same bits. AVX-512 Zen 4, one thread,
    N/2, together with the projection's split first and last row blocks: P2
    0.865x / 0.877x, P3 0.974x / 0.980x ("The AVX-512 build, timed on a
    Zen 4" in docs/performance.md).

    With 32 vector registers (AVX-512, AArch64) the blocks sum lane by lane
    (_dense_scatter_4x4, _dense_scatter_upper4): a sum per vector lane through
    the tile (lane_sums), all of a block's sums added up together at its end
    (lane_totals), in place of a horizontal sum per scatter entry; the diagonal
    blocks also sum sum_x (the centring pass then only stores). With 16
    (AVX2) the 4x2 and 2x2 halves sum into scalars as before: their float64
    has one lane (vector_lanes), and 16 lane sums would not fit the registers.
    """
    prefer_512_bit_vectors()
    n_padded = X_tile.shape[0]
    if VECTOR_REGISTERS < 32:
        for i0 in range(0, n_padded, BLOCK):
            # the diagonal block's left half: its lower two rows are below the diagonal
            _dense_scatter_upper2(weighted_diff, X_tile, means, k, scatter, slot, i0,
                                  width)
            _dense_scatter_4x2(weighted_diff, X_tile, means, k, scatter, slot, i0,
                               i0 + 2, width)
            for j0 in range(i0 + BLOCK, n_padded, BLOCK):
                _dense_scatter_4x2(weighted_diff, X_tile, means, k, scatter, slot,
                                   i0, j0, width)
                _dense_scatter_4x2(weighted_diff, X_tile, means, k, scatter, slot,
                                   i0, j0 + 2, width)
        return
    last = n_padded - BLOCK
    # np.bool_: with the literals False and True numba compiled the helper twice
    # (0.4 s); LLVM still sees the constant once the helper is inlined
    for i0 in range(0, last, BLOCK):
        _dense_scatter_upper4(weighted_resp, weighted_diff, X_tile, means, k, sum_x,
                              scatter, slot, i0, np.bool_(False), width)
        for j0 in range(i0 + BLOCK, n_padded, BLOCK):
            _dense_scatter_4x4(weighted_diff, X_tile, means, k, scatter, slot, i0, j0,
                               width)
    _dense_scatter_upper4(weighted_resp, weighted_diff, X_tile, means, k, sum_x,
                          scatter, slot, last, np.bool_(True), width)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_scatter_4x4(weighted_diff, X_tile, means, k, scatter, slot, i0, j0, width):
    """scatter[i, j] += sum_t weighted_diff[i, t] (x_tj - m_kj) for the 4x4 block at
    (i0, j0), lane by lane (lane_sums), the 16 sums added up together
    (lane_totals): a zmm's eight float64 lanes of 8 rows take 7 pairs of two
    shuffles and an addition, where 8 horizontal sums took 24 of each (and 16
    float32 lanes of 16 rows 15 pairs, against 64 of each).

    The loop over the tile runs to a constant (statistics_tile), left early at
    ``width`` columns (fewer for a compacted tile, _compact_tile), and the sums
    are this function's own, as in _diagonal_sums (else LLVM left the loop over
    lanes scalar there). With ``width`` as the loop's bound, the full tiles'
    pass of P2 took 1.08 and 1.07 times as long (float64, float32; one thread,
    N/2, estep_ab.py). One E-step pass, one thread, N/2, after 5 EM iterations,
    in-process alternation, Intel Xeon (AVX-512), against c28b837, time
    after / before in float64 and float32: P2 1.000 and 0.959, P3 0.993 and
    0.997 (this block alone; with _dense_scatter_upper4 and _project_column
    see the latter)."""
    prefer_512_bit_vectors()
    sums = lane_sums(16, X_tile.dtype)
    lanes = sums.shape[1]
    for q in range(16):
        for lane in range(lanes):
            sums[q, lane] = 0.0
    m0, m1, m2, m3 = _four(means, k, j0)
    for first in range(0, statistics_tile(X_tile), lanes):
        if first >= width:
            break
        for lane in range(lanes):
            t = first + lane
            u0 = weighted_diff[i0, t]
            u1 = weighted_diff[i0 + 1, t]
            u2 = weighted_diff[i0 + 2, t]
            u3 = weighted_diff[i0 + 3, t]
            v0 = X_tile[j0, t] - m0
            v1 = X_tile[j0 + 1, t] - m1
            v2 = X_tile[j0 + 2, t] - m2
            v3 = X_tile[j0 + 3, t] - m3
            sums[0, lane] += u0 * v0
            sums[1, lane] += u0 * v1
            sums[2, lane] += u0 * v2
            sums[3, lane] += u0 * v3
            sums[4, lane] += u1 * v0
            sums[5, lane] += u1 * v1
            sums[6, lane] += u1 * v2
            sums[7, lane] += u1 * v3
            sums[8, lane] += u2 * v0
            sums[9, lane] += u2 * v1
            sums[10, lane] += u2 * v2
            sums[11, lane] += u2 * v3
            sums[12, lane] += u3 * v0
            sums[13, lane] += u3 * v1
            sums[14, lane] += u3 * v2
            sums[15, lane] += u3 * v3
    totals = lane_totals(sums, 16)
    for r in range(4):
        for c in range(4):
            scatter[slot, i0 + r, j0 + c] += totals[4 * r + c]


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_scatter_4x2(weighted_diff, X_tile, means, k, scatter, slot, i0, j0, width):
    """scatter[i, j] += sum_t weighted_diff[i, t] (x_tj - m_kj) for i0 <= i < i0 + 4,
    j0 <= j < j0 + 2: eight sums in registers (see _dense_scatter)."""
    prefer_512_bit_vectors()
    m0 = means[k, j0]
    m1 = means[k, j0 + 1]
    zero = weighted_diff[0, 0] - weighted_diff[0, 0]
    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = zero
    for t in range(width):
        v0 = X_tile[j0, t] - m0
        v1 = X_tile[j0 + 1, t] - m1
        u0 = weighted_diff[i0, t]
        u1 = weighted_diff[i0 + 1, t]
        u2 = weighted_diff[i0 + 2, t]
        u3 = weighted_diff[i0 + 3, t]
        a00 += u0 * v0
        a01 += u0 * v1
        a10 += u1 * v0
        a11 += u1 * v1
        a20 += u2 * v0
        a21 += u2 * v1
        a30 += u3 * v0
        a31 += u3 * v1
    scatter[slot, i0, j0] += a00
    scatter[slot, i0, j0 + 1] += a01
    scatter[slot, i0 + 1, j0] += a10
    scatter[slot, i0 + 1, j0 + 1] += a11
    scatter[slot, i0 + 2, j0] += a20
    scatter[slot, i0 + 2, j0 + 1] += a21
    scatter[slot, i0 + 3, j0] += a30
    scatter[slot, i0 + 3, j0 + 1] += a31


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_scatter_upper2(weighted_diff, X_tile, means, k, scatter, slot, i0, width):
    """scatter[i, j] += sum_t weighted_diff[i, t] (x_tj - m_kj) for i0 <= i <= j <
    i0 + 2: the upper triangle of a 2x2 block on the diagonal (the M-step reads
    only the scatter's upper triangle)."""
    prefer_512_bit_vectors()
    m0 = means[k, i0]
    m1 = means[k, i0 + 1]
    zero = weighted_diff[0, 0] - weighted_diff[0, 0]
    a00 = a01 = a11 = zero
    for t in range(width):
        v0 = X_tile[i0, t] - m0
        v1 = X_tile[i0 + 1, t] - m1
        u0 = weighted_diff[i0, t]
        u1 = weighted_diff[i0 + 1, t]
        a00 += u0 * v0
        a01 += u0 * v1
        a11 += u1 * v1
    scatter[slot, i0, i0] += a00
    scatter[slot, i0, i0 + 1] += a01
    scatter[slot, i0 + 1, i0 + 1] += a11


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _dense_scatter_upper4(weighted_resp, weighted_diff, X_tile, means, k, sum_x,
                          scatter, slot, i0, weighted, width):
    """The upper triangle of the 4x4 block on the diagonal at i0 (10 sums, not 16;
    see _dense_scatter_upper2), and sum_x[k, i0:i0 + 4] += sum_t weighted_diff[i,
    t], lane by lane (lane_sums), the 14 sums added up together (lane_totals;
    see _dense_scatter_4x4).

    The centring pass (_dense_statistics) summed sum_x itself, a horizontal sum
    per feature, component and tile: on an Intel Xeon the largest of its
    costs, about 8% of P2's kernel samples. It cannot sum lane by lane and
    store the weighted deviations in one loop: LLVM left that loop scalar in
    float64 (P2 took 2.9x as long), so the sums are here, where the weighted
    deviations are read anyway, and the centring pass only stores them.

    ``weighted`` (a constant at each call): the last block row's weighted
    deviations u = w (x - m) are formed here from the deviations this block
    forms anyway (four multiplications for four loads), so the centring pass
    stores all rows but those four (no other block reads them): for P2 (D =
    8) half its work. One E-step pass, one thread, N/2, after 5 EM
    iterations, in-process alternation, Intel Xeon (AVX-512), against c28b837,
    time after / before in float64 and float32 with the rest of this change
    (lane sums, _project_column): P2 0.911 and 0.878, P3 0.896 and 0.871
    (0.946 and 0.921, 0.897 and 0.883 without this)."""
    prefer_512_bit_vectors()
    sums = lane_sums(16, X_tile.dtype)
    lanes = sums.shape[1]
    for q in range(14):
        for lane in range(lanes):
            sums[q, lane] = 0.0
    m0, m1, m2, m3 = _four(means, k, i0)
    if weighted:  # the last block row: u = w (x - m) here, not stored
        for first in range(0, statistics_tile(X_tile), lanes):
            if first >= width:
                break
            for lane in range(lanes):
                t = first + lane
                weight = weighted_resp[t]
                v0 = X_tile[i0, t] - m0
                v1 = X_tile[i0 + 1, t] - m1
                v2 = X_tile[i0 + 2, t] - m2
                v3 = X_tile[i0 + 3, t] - m3
                _add_upper4(sums, lane, weight * v0, weight * v1, weight * v2,
                            weight * v3, v0, v1, v2, v3)
    else:
        for first in range(0, statistics_tile(X_tile), lanes):
            if first >= width:
                break
            for lane in range(lanes):
                t = first + lane
                _add_upper4(sums, lane, weighted_diff[i0, t], weighted_diff[i0 + 1, t],
                            weighted_diff[i0 + 2, t], weighted_diff[i0 + 3, t],
                            X_tile[i0, t] - m0, X_tile[i0 + 1, t] - m1,
                            X_tile[i0 + 2, t] - m2, X_tile[i0 + 3, t] - m3)
    totals = lane_totals(sums, 14)
    q = 0
    for r in range(4):
        for c in range(r, 4):
            scatter[slot, i0 + r, i0 + c] += totals[q]
            q += 1
        sum_x[k, i0 + r] += totals[10 + r]


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _four(values, k, first):
    """values[k, first:first + 4] as a tuple (kept in registers)."""
    return (values[k, first], values[k, first + 1], values[k, first + 2],
            values[k, first + 3])


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _add_upper4(sums, lane, u0, u1, u2, u3, v0, v1, v2, v3):
    """One point's terms of _dense_scatter_upper4's 14 sums, in lane ``lane``."""
    sums[0, lane] += u0 * v0
    sums[1, lane] += u0 * v1
    sums[2, lane] += u0 * v2
    sums[3, lane] += u0 * v3
    sums[4, lane] += u1 * v1
    sums[5, lane] += u1 * v2
    sums[6, lane] += u1 * v3
    sums[7, lane] += u2 * v2
    sums[8, lane] += u2 * v3
    sums[9, lane] += u3 * v3
    sums[10, lane] += u0
    sums[11, lane] += u1
    sums[12, lane] += u2
    sums[13, lane] += u3


def n_padded(n_features):
    """Features padded to a multiple of 4 (the register blocks), or to 2 for D <= 2,
    which has its own 2x2 code (a 4x4 block would be three-quarters padding)."""
    if n_features <= 2:
        return 2
    return (n_features + BLOCK - 1) // BLOCK * BLOCK


def pad_dense(means, precisions_chol):
    """means (K, D) and precision factors (n_factors, D, D) zero-padded to n_padded(D)
    features, in their own dtype and C order (what the dense kernels take)."""
    n_components, n_features = means.shape
    width = n_padded(n_features)
    means_padded = np.zeros((n_components, width), dtype=means.dtype)
    means_padded[:, :n_features] = means
    factors = np.zeros((precisions_chol.shape[0], width, width), dtype=precisions_chol.dtype)
    factors[:, :n_features, :n_features] = precisions_chol
    return means_padded, factors


def n_blocks_of(n_samples, block_size):
    """Number of blocks of ``block_size`` rows (the last one may be short)."""
    return -(-n_samples // block_size)


CACHE_LINE = 64  # bytes
# where each work array starts (see _work_arrays): a cache line with 512-bit
# vectors, else 32 bytes (numba's arrays' alignment, one AVX2 vector)
WORK_ALIGNMENT = CACHE_LINE if VECTOR_REGISTERS >= 32 else 32
# bytes between two work arrays: the tile arrays' sizes are multiples of 4 KiB
# with 4 or 8 features, so back to back (or a line apart) a loop that reads one
# and writes another would store to addresses whose low 12 bits equal those of
# a load a vector or so later, which an Intel core mistakes for a dependence
# ("4K aliasing") and stalls; 17 lines apart they differ by 1088 bytes
WORK_GAP = 17 * CACHE_LINE


def _work_arrays(specs):
    """Zeroed C arrays of the ``(shape, dtype)`` pairs in ``specs`` (shapes as
    tuples), cut from one buffer: each starts at a multiple of WORK_ALIGNMENT
    bytes, WORK_GAP or a little more after the end of the one before it.

    One allocation, not one per array: numpy's arrays start at multiples of 16
    bytes only, and aligning each of 17 took 23 microseconds a call (Intel
    Xeon; 5.9 with the compiled function that allocated them before, 9.6 now).

    With 512-bit vectors (a target with 32 vector registers) each starts a cache
    line, so every 64-byte vector of the tile arrays' rows (whose lengths are
    multiples of 64 bytes) lies in one line. numba aligns arrays to 32 bytes
    only, and the tile arrays came out 32 bytes past a line, so each 512-bit
    load or store of them touched two lines, which an Intel core does at half
    speed. One E-step pass, one thread, N/2, parameters after 5 EM iterations,
    in-process alternation (benchmarks/estep_ab.py --checkouts, 11-15 rounds,
    three or four runs), Intel Xeon (family 6, model 167), AVX-512 build, time
    after / before in float64 and float32: P1 0.89-0.93 and 0.91-0.95, P2
    0.83-0.96 and 0.92-1.02, P3 0.83-0.93 and 0.85-0.91, P5 0.87-0.97 and
    0.88-0.97. The times before moved from run to run (P5 float64 72-83 ms),
    those after less (70-72 ms): where numba's allocator put the arrays decided
    how many vectors straddled lines. The results are bitwise the same. A
    32-byte (AVX2) vector never crosses a line at 32-byte alignment, so other
    targets get that, numba's own: the AVX2 build of the same CPU took 1.3-2.4%
    longer with every array starting a line (15 rounds), 0.96-1.01 times as long
    as before with numba's. A Zen 4 runs a 512-bit access as two 256-bit
    halves, so it should gain less; not measured there.
    """
    steps = [-(-(math.prod(shape) * np.dtype(dtype).itemsize + WORK_GAP)
               // WORK_ALIGNMENT) * WORK_ALIGNMENT for shape, dtype in specs]
    buffer = np.zeros(sum(steps) + WORK_ALIGNMENT, dtype=np.uint8)
    offset = -buffer.ctypes.data % WORK_ALIGNMENT
    arrays = []
    for (shape, dtype), step in zip(specs, steps, strict=True):
        arrays.append(np.ndarray(shape, dtype, buffer, offset))
        offset += step
    return arrays


def _tile_specs(dtype, n_components, width):
    """The ``(shape, dtype)`` of the per-tile arrays of both block kernels, for
    _work_arrays: ``vectors`` (7, width), whose rows are mahalanobis, tile_top,
    tile_peak, other_peak (see _store_log_prob), tile_scale, tile_entropy and
    weighted_resp; resp (K, width); ``wide`` (2, width) float64, whose rows are
    tile_weight and products (see _add_tile_sums)."""
    return [((7, width), dtype), ((n_components, width), dtype),
            ((2, width), np.float64)]


def _tile_arrays(vectors, resp, wide):
    """The ten per-tile arguments of both block kernels from the arrays of
    _tile_specs, in their order: mahalanobis, resp, tile_top, tile_peak,
    other_peak, tile_scale, tile_entropy, tile_weight, weighted_resp, products."""
    return (vectors[0], resp, vectors[1], vectors[2], vectors[3], vectors[4],
            vectors[5], wide[0], vectors[6], wide[1])


def dense_tile_arrays(dtype, n_components, n_padded, width):
    """The work arrays of dense_statistics_blocks for data of ``dtype`` (its
    statistics_tile ``width``), zeroed, in the order it takes them: X_tile
    (n_padded, width; its padded features stay 0), weighted_diff (n_padded,
    width), the ten of _tile_arrays, index (width, int64), gathered_resp
    (width), gathered_diff and gathered_weighted_diff (SPARSE_TILE, n_padded),
    compact_tile (n_padded, width).

    Allocated by numpy (_work_arrays), not by a compiled function: compiling one
    (with numba's np.empty and np.zeros for each of its array types) took 1.3 s
    of the cold compile of 'full'/'tied' (numba's compile events, Intel Xeon).
    """
    (X_tile, weighted_diff, vectors, resp, wide, index, gathered_resp, gathered_diff,
     gathered_weighted_diff, compact_tile) = _work_arrays([
         ((n_padded, width), dtype), ((n_padded, width), dtype),
         *_tile_specs(dtype, n_components, width),
         # the narrow tile of a component with few non-zero responsibilities
         ((width,), np.int64), ((width,), dtype),  # width: see _gather_points
         ((SPARSE_TILE, n_padded), dtype), ((SPARSE_TILE, n_padded), dtype),
         ((n_padded, width), dtype)])
    return (X_tile, weighted_diff, *_tile_arrays(vectors, resp, wide), index,
            gathered_resp, gathered_diff, gathered_weighted_diff, compact_tile)


# Glue shared by the two statistics kernels, inlined by numba (inline="always"):
# typed in each kernel as if written there, never compiled as a function of its
# own (a forceinline helper would be, with _responsibilities and _add_tile_sums
# inlined into it: the cost "The statistics kernels" in the module docstring
# avoids).
@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _store_log_prob_in_turn(log_norm, shift, k, mahalanobis, start, n_points, resp,
                            tile_peak, other_peak, weighted_log_prob, width):
    """_store_log_prob of component k, the running peaks in tile_peak and other_peak
    in turn (see _store_log_prob)."""
    if k % 2 == 0:
        _store_log_prob(log_norm, shift, k, mahalanobis, start, n_points, resp,
                        tile_peak, other_peak, weighted_log_prob, width)
    else:
        _store_log_prob(log_norm, shift, k, mahalanobis, start, n_points, resp,
                        other_peak, tile_peak, weighted_log_prob, width)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _tile_responsibilities(sample_weight, start, n_points, shift, log_uniform,
                           with_entropy, resp, tile_top, tile_peak, other_peak,
                           tile_scale, tile_entropy, tile_weight, products, sums,
                           width):
    """Once every component's log-probabilities of a tile are in resp: the tile's
    weights, its scaled responsibilities (_responsibilities) and its three sums
    (_add_tile_sums). The last peak is in tile_peak (with an odd K it was in
    other_peak)."""
    prefer_512_bit_vectors()
    if resp.shape[0] % 2 == 1:
        for t in range(width):
            tile_peak[t] = other_peak[t]
    _tile_weights(sample_weight, start, n_points, tile_weight)
    _responsibilities(resp, n_points, tile_top, tile_peak, tile_scale, tile_entropy,
                      tile_weight, with_entropy, log_uniform, width)
    _add_tile_sums(tile_weight, n_points, shift, tile_top, tile_entropy, tile_peak,
                   products, log_uniform, with_entropy, sums, width)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def dense_statistics_blocks(X, sample_weight, means_padded, factors, log_norm,
                            block_size, nk_parts, sum_x_parts, scatter_parts,
                            sums_parts, weighted_log_prob, with_entropy, X_tile,
                            weighted_diff, mahalanobis, resp, tile_top, tile_peak,
                            other_peak, tile_scale, tile_entropy, tile_weight,
                            weighted_resp, products, index, gathered_resp,
                            gathered_diff, gathered_weighted_diff, compact_tile,
                            first_block, end_block):
    """Partial statistics of blocks [first_block, end_block) of X ('full' and 'tied'),
    given the work arrays of dense_tile_arrays (see dense_blocks).

    Block b (rows [b * block_size, min(N, (b + 1) * block_size))) writes its
    own nk_parts[b] (K,), sum_x_parts[b] (K, D padded), scatter_parts[b]
    (n_factors, D padded, D padded; upper triangle) and sums_parts[b] (3,):
    weighted log-likelihood, sum w r log r (if ``with_entropy``, a bool: only
    the variational bound needs it; else 0), sum w log max r. The parts must be
    zeroed by the caller. ``sample_weight`` holds one weight per row of X, or
    a single weight that every row takes (UNIT_WEIGHT). Serial: threads
    (fastem.kernels.threads.run_blocks) and Dask tasks each call it on their own
    range of blocks; the parts are then
    summed in block order (reduce_dense), so the result does not depend on
    who computed which block.

    Inference uses the same kernel (one compiled kernel, not two: the
    Mahalanobis code is most of the compile time): given a ``weighted_log_prob``
    (N, K) float64 array with rows, it fills its rows of the blocks (see
    _store_log_prob) and computes no statistics; sample_weight is
    then not read and the parts need one row, which is not written
    (dense_weighted_log_prob). For statistics pass a (0, 0) array.
    ``means_padded`` and ``factors`` are padded to a multiple of 4 features (see
    pad_dense).

    Without reference counting (_nrt=False): it allocates nothing; its caller
    holds every array. The work arrays come from its caller (dense_tile_arrays,
    numpy's arrays; a compiled function of their own until it was found to
    take 1.3 s of the cold compile), not from this one: numba counts the references of
    the arrays a function allocates up and down around its calls of helpers
    (2.7% of P2's kernel samples in a perf profile when the tile loop was
    written in the function that allocated them), and a compiled function
    between the two (the tile loop in a helper, the arrays allocated in the
    kernel that called it, as before) had its module, with the whole tile loop
    inlined, optimised and turned into machine code again, besides the helper's
    own: the cold compile of 'full'/'tied' (a small and a large fit, predict,
    score_samples; fresh processes, empty caches, three alternations, Intel Xeon)
    took 15.6-16.0 s of CPU against 17.3-17.5 in float64, 15.2-16.1 against
    16.7-18.5 in float32; 'diag'/'spherical' 12.4-12.9 against 13.7-14.6 and
    12.1-13.6 against 14.0-15.5. One E-step pass, one thread, N/2, after five
    iterations (benchmarks/estep_ab.py, 15 rounds), time after / before in
    float64 and float32: P1 1.013 and 1.002, P2 0.989 and 0.986, P3 0.993 and
    1.0, P5 0.941 and 0.951; AVX2 build 0.992 / 0.992, 1.007 / 1.009, 1.006 /
    1.017, 0.997 / 1.0.
    """
    prefer_512_bit_vectors()
    n_samples, n_features = X.shape
    width = statistics_tile(X)
    # X's rows end to end, made once per call (with reference counting, a view
    # costs an update of the count that parallel threads contend for)
    X_flat = X.reshape(n_samples * n_features)
    n_components, n_padded = means_padded.shape
    shared = factors.shape[0] == 1
    inference = weighted_log_prob.shape[0] > 0
    sparse = width > SPARSE_TILE and n_padded >= SPARSE_MIN_FEATURES
    compact = n_features == COMPACT_FEATURES and width > COMPACT_TILE
    shift = _log_norm_shift(log_norm)
    log_uniform = _log_uniform(n_components)
    # The work arrays with their shapes as constants of the compiled code, as when
    # they were allocated here: as arguments their shapes (and so their row strides
    # and some trip counts) are run-time values, and LLVM made a loop of 16
    # (log_of_product64's) a strided loop: P1 1.5-2.5% slower. (reshape would
    # not do: its shape comes back from a C helper.)
    X_tile = shaped(X_tile, (n_padded, width))
    weighted_diff = shaped(weighted_diff, (n_padded, width))
    compact_tile = shaped(compact_tile, (n_padded, width))
    resp = shaped(resp, (n_components, width))
    gathered_diff = shaped(gathered_diff, (SPARSE_TILE, n_padded))
    gathered_weighted_diff = shaped(gathered_weighted_diff, (SPARSE_TILE, n_padded))
    mahalanobis, tile_top = shaped(mahalanobis, width), shaped(tile_top, width)
    tile_peak, other_peak = shaped(tile_peak, width), shaped(other_peak, width)
    tile_scale, tile_entropy = shaped(tile_scale, width), shaped(tile_entropy, width)
    tile_weight = shaped(tile_weight, width)
    weighted_resp = shaped(weighted_resp, width)
    products, index = shaped(products, width), shaped(index, width)
    gathered_resp = shaped(gathered_resp, width)
    for block in range(first_block, end_block):
        part = block % nk_parts.shape[0]  # block, or 0 for inference
        nk, sum_x, scatter = nk_parts[part], sum_x_parts[part], scatter_parts[part]
        sums = sums_parts[part]
        end_row = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, end_row, width):
            n_points = min(width, end_row - start)
            _transpose_tile(X_flat, n_features, start, n_points, X_tile, width)
            for t in range(width):
                tile_peak[t] = -np.inf
            for k in range(n_components):
                _prefetch_next_tile(X_flat, n_features, start, end_row, k, n_components,
                                    width)
                slot = 0 if shared else k
                if n_padded == 2 and not inference:
                    if k % 2 == 0:  # two arrays in turn (see _store_log_prob)
                        _log_prob2(X_tile, means_padded, k, factors, slot, log_norm,
                                   shift, n_points, resp, tile_peak, other_peak, width)
                    else:
                        _log_prob2(X_tile, means_padded, k, factors, slot, log_norm,
                                   shift, n_points, resp, other_peak, tile_peak, width)
                    continue
                _dense_mahalanobis(X_tile, means_padded, k, factors, slot, mahalanobis,
                                   width)
                _store_log_prob_in_turn(log_norm, shift, k, mahalanobis, start,
                                        n_points, resp, tile_peak, other_peak,
                                        weighted_log_prob, width)
            if inference:
                continue
            _tile_responsibilities(sample_weight, start, n_points, shift, log_uniform,
                                   with_entropy, resp, tile_top, tile_peak, other_peak,
                                   tile_scale, tile_entropy, tile_weight, products,
                                   sums, width)
            for k in range(n_components):
                slot = 0 if shared else k
                if n_padded == 2:
                    nk[k] += _dense_statistics2(tile_scale, resp, k, X_tile,
                                                means_padded, weighted_resp, sum_x,
                                                scatter, slot, width)
                    continue
                total, count = _weight_responsibilities(tile_scale, n_points, resp, k,
                                                        weighted_resp, width)
                nk[k] += total
                if total == 0.0:
                    continue
                if sparse and count <= SPARSE_TILE:
                    n_gathered = _gather_points(weighted_resp, n_points, index,
                                                gathered_resp)
                    _sparse_statistics(X, start, index, gathered_resp, n_gathered,
                                       means_padded, k, gathered_diff,
                                       gathered_weighted_diff, sum_x, scatter, slot)
                    continue
                # one call of the dense statistics for both tiles (each inlined call
                # site is compiled anew: two took 2 s more of the cold compile)
                tile, tile_resp, n_columns = X_tile, weighted_resp, width
                if compact and count <= COMPACT_TILE:
                    n_gathered = _gather_points(weighted_resp, n_points, index,
                                                gathered_resp)
                    n_columns = _compact_tile(X_flat, start, index, n_gathered,
                                              gathered_resp, compact_tile)
                    tile, tile_resp = compact_tile, gathered_resp
                _dense_statistics(tile_resp, tile, means_padded, k, weighted_diff,
                                  sum_x, scatter, slot, n_columns)


def dense_blocks(X, sample_weight, means_padded, factors, log_norm, block_size,
                 nk_parts, sum_x_parts, scatter_parts, sums_parts, weighted_log_prob,
                 with_entropy, first_block, end_block):
    """dense_statistics_blocks over blocks [first_block, end_block) with work arrays of
    its own (each thread of run_blocks, each Dask task calls it for its range)."""
    n_components, n_padded = means_padded.shape
    work = dense_tile_arrays(X.dtype, n_components, n_padded, statistics_tile(X))
    dense_statistics_blocks(X, sample_weight, means_padded, factors, log_norm,
                            block_size, nk_parts, sum_x_parts, scatter_parts,
                            sums_parts, weighted_log_prob, with_entropy, *work,
                            first_block, end_block)


def reduce_dense(nk_parts, sum_x_parts, scatter_parts, sums_parts, n_features):
    """Sum the blocks' partial statistics in block order; mirror the scatter.

    Returns ``(nk, sum_x, scatter, sums)`` trimmed to ``n_features``. Python: numpy
    allocates (numba's np.zeros is compiled per array type), reduce_dense_into sums.
    """
    n_components = nk_parts.shape[1]
    n_factors = scatter_parts.shape[1]
    parts = (nk_parts, sum_x_parts, scatter_parts, sums_parts)
    return _reduced(reduce_dense_into, parts, (n_components, n_features),
                    (n_factors, n_features, n_features))


def _reduced(reduce_into, parts, means_shape, scatter_shape):
    """reduce_into(*parts, nk, sum_x, scatter, sums) into zeroed arrays numpy
    allocates; returns them."""
    nk = np.zeros(means_shape[0])
    sum_x = np.zeros(means_shape)
    scatter = np.zeros(scatter_shape)
    sums = np.zeros(3)
    reduce_into(*parts, nk, sum_x, scatter, sums)
    return nk, sum_x, scatter, sums


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def reduce_dense_into(nk_parts, sum_x_parts, scatter_parts, sums_parts, nk, sum_x,
                      scatter, sums):
    """reduce_dense into zeroed arrays the caller holds (sum_x's shape trims the
    padded parts)."""
    n_blocks, n_components = nk_parts.shape
    n_factors = scatter_parts.shape[1]
    n_features = sum_x.shape[1]
    for block in range(n_blocks):
        for k in range(n_components):
            nk[k] += nk_parts[block, k]
            for i in range(n_features):
                sum_x[k, i] += sum_x_parts[block, k, i]
        for slot in range(n_factors):
            for i in range(n_features):
                for j in range(i, n_features):
                    scatter[slot, i, j] += scatter_parts[block, slot, i, j]
        for m in range(3):
            sums[m] += sums_parts[block, m]
    for slot in range(n_factors):
        for i in range(n_features):
            for j in range(i):
                scatter[slot, i, j] = scatter[slot, j, i]


def dense_statistics_and_sums(X, sample_weight, means, precisions_chol, log_norm,
                              block_size, with_entropy=True):
    """Fused E-step and sufficient statistics for 'full' and 'tied'.

    Returns ``(nk, sum_x, scatter, sums)``: nk (K,), sum_x (K, D), scatter
    (n_factors, D, D) (for 'tied' the sum over components) and sums (3,): the
    weighted log-likelihood sum_i w_i log p(x_i), sum_i w_i sum_k r log r (0
    unless ``with_entropy``) and sum_i w_i log max_k r under the parameters
    passed in. Blocks run on the calling thread and the pool of
    fastem.kernels.threads (see run_blocks).
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    means_padded, factors = pad_dense(means, precisions_chol)
    n_padded = means_padded.shape[1]
    n_blocks = n_blocks_of(n_samples, block_size)
    nk_parts = np.zeros((n_blocks, n_components))
    sum_x_parts = np.zeros((n_blocks, n_components, n_padded))
    scatter_parts = np.zeros((n_blocks, factors.shape[0], n_padded, n_padded))
    sums_parts = np.zeros((n_blocks, 3))
    run_blocks(dense_blocks, n_blocks, read_only(X), read_only(sample_weight),
               means_padded, factors, log_norm, block_size, nk_parts, sum_x_parts,
               scatter_parts, sums_parts, STATISTICS_ONLY, bool(with_entropy))
    return reduce_dense(nk_parts, sum_x_parts, scatter_parts, sums_parts, n_features)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _diagonal_mahalanobis(X_tile, means, precisions_chol, k, mahalanobis, width):
    """mahalanobis[t] = sum_i ((X_tile[i, t] - means[k, i]) precisions_chol[k, i])^2.

    Eight features per pass over the tile hold 16 means and factors in registers,
    which fit a target with 32 vector registers (AVX-512); with 16 (AVX2) the
    pass takes four, as the statistics pass does (WIDEST_GROUP). The AVX2
    build (znver3, run on a Zen 4), one E-step pass of P5 (D = 16), in-process
    alternation (benchmarks/estep_ab.py --checkouts): 0.88x the time in float64
    and float32 with one thread at N/2, 0.89x and 0.85x with two at N; the
    AVX-512 build compiles the code it had (1.00x).
    """
    prefer_512_bit_vectors()
    n_features = X_tile.shape[0]
    for t in range(width):
        mahalanobis[t] = 0.0
    # not the literal 0: numba would compile _diagonal_distances once more for it
    # (0.4 s), typing the first call before it has unified i's type
    i = np.int64(0)
    if WIDEST_GROUP >= 8:  # (a constant, which numba prunes by; 2 * BLOCK is not)
        while i + 2 * BLOCK <= n_features:  # eight features per pass
            _diagonal_distances(X_tile, means, precisions_chol, k, i, 2 * BLOCK,
                                mahalanobis, width)
            i += 2 * BLOCK
    while i + BLOCK <= n_features:  # four features per pass over the tile
        _diagonal_distances(X_tile, means, precisions_chol, k, i, BLOCK, mahalanobis,
                            width)
        i += BLOCK
    while i < n_features:
        centre = means[k, i]
        entry = precisions_chol[k, i]
        for t in range(width):
            scaled = (X_tile[i, t] - centre) * entry
            mahalanobis[t] += scaled * scaled
        i += 1


# The 'diag' Mahalanobis pass takes (x - m) e as x e - m e, one multiply-add, for a
# group of features whose |m e| are all at most this: each product m e is rounded
# by at most CENTRE_BOUND eps / 2, which adds at most (CENTRE_BOUND sqrt(g d) + d)
# eps to a sum d of g squares. For g = 8 and d = 8 (a point one standard deviation
# from the mean in each feature) that is 264 eps: 5.9e-14 in float64 and 3.1e-5 in
# float32 of a distance of 8, against a few eps with the exact centring (the
# oracle tests' tolerances: 1e-10 and 1e-4 relative). Larger |m e| (data far from
# the origin for their spread) keep the exact centring, x - m first.
CENTRE_BOUND = 32.0


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH - {"reassoc"}, error_model="numpy",
      forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _diagonal_distances(X_tile, means, precisions_chol, k, i, group, mahalanobis,
                        width):
    """mahalanobis[t] += sum_j ((X_tile[j, t] - means[k, j]) precisions_chol[k, j])^2
    over the ``group`` features j = i, ..., i + group - 1; ``group`` a constant at
    each call (8 or 4; at most 8), over which LLVM unrolls the loops, and the
    group's means and factors stay in registers through the tile.

    Without reassociation, as written: with it, LLVM made the sum one chain of
    multiply-adds per vector of points, and the pass over eight features was bound
    both by its 24 arithmetic instructions and by that chain's latency. Where
    CENTRE_BOUND allows, the centring is folded into a multiply-add and the squares
    are summed in two chains of group / 2, 18 instructions per vector of points
    and eight features. One E-step pass of P5 (D = 16), one thread, N/2, after five
    iterations (benchmarks/estep_ab.py, 11 rounds, Intel Xeon family 6 model 167):
    0.950 and 0.932 of the time of the chain (the eight features hand-unrolled) in
    float64 and float32; either change alone was not faster (see
    docs/performance.md).
    """
    prefer_512_bit_vectors()
    entries = stack_vector(8, X_tile.dtype)
    centres = stack_vector(8, X_tile.dtype)
    products = stack_vector(8, X_tile.dtype)
    largest = 0.0
    for j in range(group):
        entries[j] = precisions_chol[k, i + j]
        centres[j] = means[k, i + j]
        products[j] = centres[j] * entries[j]
        largest = max(largest, abs(products[j]))
    half = group // 2
    if largest <= CENTRE_BOUND:
        for t in range(width):
            scaled = X_tile[i, t] * entries[0] - products[0]
            low = scaled * scaled
            for j in range(1, half):
                scaled = X_tile[i + j, t] * entries[j] - products[j]
                low += scaled * scaled
            scaled = X_tile[i + half, t] * entries[half] - products[half]
            high = scaled * scaled
            for j in range(half + 1, group):
                scaled = X_tile[i + j, t] * entries[j] - products[j]
                high += scaled * scaled
            mahalanobis[t] += low + high
        return
    for t in range(width):
        total = mahalanobis[t]
        for j in range(group):
            scaled = (X_tile[i + j, t] - centres[j]) * entries[j]
            total += scaled * scaled
        mahalanobis[t] = total


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _sparse_diagonal_sums(X, start, index, gathered_resp, count, means, k, sum_x,
                          scatter):
    """sum_x[k, j] += sum_c w_c (x_cj - m_kj) and scatter[k, j] += sum_c w_c (x_cj -
    m_kj)^2 over the gathered points c (see _gather_points), point-major: each
    point's row of X is read in place and its features are a vector; the
    deviations in X's dtype (as _diagonal_sums), the products and sums in float64.

    Four points per pass over the features, their terms added up before
    sum_x[k] and scatter[k] are read and written: one point per pass made a chain
    of a load, an addition and a store through the same entries from point to
    point. One E-step pass of P5, one thread, N/2, after five iterations
    (benchmarks/estep_ab.py, 9 rounds, Intel Xeon family 6 model 167): 0.957 of
    the time in float64, 1.002 in float32."""
    prefer_512_bit_vectors()
    n_features = X.shape[1]
    n_grouped = count - count % 4
    for c in range(0, n_grouped, 4):
        row0 = start + index[c]
        row1 = start + index[c + 1]
        row2 = start + index[c + 2]
        row3 = start + index[c + 3]
        weight0 = np.float64(gathered_resp[c])
        weight1 = np.float64(gathered_resp[c + 1])
        weight2 = np.float64(gathered_resp[c + 2])
        weight3 = np.float64(gathered_resp[c + 3])
        for j in range(n_features):
            centre = means[k, j]
            deviation0 = np.float64(X[row0, j] - centre)
            deviation1 = np.float64(X[row1, j] - centre)
            deviation2 = np.float64(X[row2, j] - centre)
            deviation3 = np.float64(X[row3, j] - centre)
            weighted0 = weight0 * deviation0
            weighted1 = weight1 * deviation1
            weighted2 = weight2 * deviation2
            weighted3 = weight3 * deviation3
            sum_x[k, j] += (weighted0 + weighted1) + (weighted2 + weighted3)
            scatter[k, j] += ((weighted0 * deviation0 + weighted1 * deviation1)
                              + (weighted2 * deviation2 + weighted3 * deviation3))
    for c in range(n_grouped, count):
        row = start + index[c]
        weight = np.float64(gathered_resp[c])
        for j in range(n_features):
            deviation = np.float64(X[row, j] - means[k, j])
            weighted = weight * deviation
            sum_x[k, j] += weighted
            scatter[k, j] += weighted * deviation


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _diagonal_sums(X_tile, weighted_resp, means, k, i, group, moment_lanes, lane_row):
    """Add sum_t weighted_resp[t] (x_tj - m_kj) and sum_t weighted_resp[t] (x_tj -
    m_kj)^2 for the ``group`` features j = i, ..., i + group - 1 to rows 2 (r D + j)
    and 2 (r D + j) + 1 of moment_lanes, r = lane_row (k; or 0 where the caller adds
    each component's up after the tile, over LANE_BYTES), lane by lane
    (fastem.kernels.vector's lane_sums and add_lanes): each lane sums the points t =
    lane mod lanes of the tile in the data's dtype and is added to moment_lanes in
    float64; the lanes are added up once per block (_add_up_lanes), not once per
    tile and component.

    ``group`` is a constant at each call (8, 4, 2 or 1; see WIDEST_GROUP): LLVM
    unrolls the loop over the group's features, and the 2 x group sums stay in
    vector registers through the tile. The tile's width is a constant here
    (statistics_tile), and the stack array is this function's own: passed the
    width, or the array from the caller, LLVM left the loop over lanes scalar.
    One loop, written once, replaced four hand-unrolled ones (8, 4, 2 and 1
    features) that summed into scalars, each ending in horizontal sums (a
    zmm's: three shuffles and three additions) per tile and component.

    One E-step pass, one thread, N/2, parameters after 5 EM iterations,
    in-process alternation (benchmarks/estep_ab.py --checkouts, 11-15 rounds,
    two or three runs), Intel Xeon (family 6, model 167), time after / before,
    float64 and float32: AVX-512 build P5 0.952-0.983 and 0.998-1.024; AVX2
    build of the same CPU (one sum per tile and group of four features in
    float64, as before: vector_lanes is 1 there) 0.992-1.004 and 0.984-0.988.
    """
    prefer_512_bit_vectors()
    sums_of_tile = lane_sums(16, X_tile.dtype)
    lanes = sums_of_tile.shape[1]
    width = statistics_tile(X_tile)  # a constant: LLVM unrolls the loop over lanes
    for q in range(2 * group):
        for lane in range(lanes):
            sums_of_tile[q, lane] = 0.0
    for first in range(0, width, lanes):
        for lane in range(lanes):
            t = first + lane
            weight = weighted_resp[t]
            for j in range(group):
                deviation = X_tile[i + j, t] - means[k, i + j]
                weighted = weight * deviation
                sums_of_tile[2 * j, lane] += weighted
                sums_of_tile[2 * j + 1, lane] += weighted * deviation
    row = 2 * (lane_row * X_tile.shape[0] + i)
    for q in range(2 * group):
        add_lanes(moment_lanes, row + q, sums_of_tile, q)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _add_up_lanes(moment_lanes, lane_row, sum_x, scatter, k):
    """sum_x[k, j] and scatter[k, j] += the sums of the lanes of rows 2 (r D + j) and
    2 (r D + j) + 1 of moment_lanes, r = lane_row (see _diagonal_sums), for every
    feature j; those rows are zeroed."""
    prefer_512_bit_vectors()
    n_features = sum_x.shape[1]
    for j in range(n_features):
        row = 2 * (lane_row * n_features + j)
        sum_x[k, j] += _lane_total(moment_lanes, row)
        scatter[k, j] += _lane_total(moment_lanes, row + 1)
        for lane in range(moment_lanes.shape[1]):
            moment_lanes[row, lane] = 0.0
            moment_lanes[row + 1, lane] = 0.0


def _lane_rows(n_rows, fewer_rows, dtype):
    """Rows of the float64 partial sums, (rows, vector_lanes(dtype)), for sums over
    tiles kept lane by lane through a block (add_lanes): n_rows, or fewer_rows if
    n_rows would take more than LANE_BYTES (then the caller adds them up more
    often)."""
    return n_rows if n_rows * vector_lanes(dtype) * 8 <= LANE_BYTES else fewer_rows


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _lane_total(sums, q):
    """The sum of the lanes of sums[q], in float64."""
    prefer_512_bit_vectors()
    total = 0.0
    for lane in range(sums.shape[1]):
        total += np.float64(sums[q, lane])
    return total


def diagonal_tile_arrays(dtype, n_components, n_features, width):
    """The work arrays of diagonal_statistics_blocks for data of ``dtype`` (its
    statistics_tile ``width``), zeroed, in the order it takes them: X_tile
    (n_features, width), the ten of _tile_arrays, moment_lanes (float64; see
    _lane_rows), index (width, int64), gathered_resp (width). Allocated by
    numpy (see dense_tile_arrays)."""
    # lane by lane through a block, or (over LANE_BYTES) one component's at a time
    lane_rows = _lane_rows(2 * n_components * n_features, 2 * n_features, dtype)
    (X_tile, vectors, resp, wide, moment_lanes, index,
     gathered_resp) = _work_arrays([
         ((n_features, width), dtype), *_tile_specs(dtype, n_components, width),
         ((lane_rows, vector_lanes(dtype)), np.float64), ((width,), np.int64),
         ((width,), dtype)])
    return (X_tile, *_tile_arrays(vectors, resp, wide), moment_lanes, index,
            gathered_resp)


@njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def diagonal_statistics_blocks(X, sample_weight, means, precisions_chol, log_norm,
                               block_size, nk_parts, sum_x_parts, scatter_parts,
                               sums_parts, weighted_log_prob, with_entropy, X_tile,
                               mahalanobis, resp, tile_top, tile_peak, other_peak,
                               tile_scale, tile_entropy, tile_weight, weighted_resp,
                               products, moment_lanes, index, gathered_resp,
                               first_block, end_block):
    """Partial statistics of blocks [first_block, end_block) ('diag', 'spherical'), or
    their weighted log-probabilities, given the work arrays of diagonal_tile_arrays
    (see diagonal_blocks): as dense_statistics_blocks, with scatter_parts[b] (K,
    D). moment_lanes is zero between blocks (_add_up_lanes zeroes what it adds
    up)."""
    prefer_512_bit_vectors()
    n_samples, n_features = X.shape
    width = statistics_tile(X)
    X_flat = X.reshape(n_samples * n_features)  # see dense_statistics_blocks
    n_components = means.shape[0]
    shift = _log_norm_shift(log_norm)
    log_uniform = _log_uniform(n_components)
    inference = weighted_log_prob.shape[0] > 0
    through_block = moment_lanes.shape[0] == 2 * n_components * n_features
    # constant shapes, as in dense_statistics_blocks
    X_tile = shaped(X_tile, (n_features, width))
    resp = shaped(resp, (n_components, width))
    moment_lanes = shaped(moment_lanes,
                          (moment_lanes.shape[0], vector_lanes(X.dtype)))
    mahalanobis, tile_top = shaped(mahalanobis, width), shaped(tile_top, width)
    tile_peak, other_peak = shaped(tile_peak, width), shaped(other_peak, width)
    tile_scale, tile_entropy = shaped(tile_scale, width), shaped(tile_entropy, width)
    tile_weight = shaped(tile_weight, width)
    weighted_resp = shaped(weighted_resp, width)
    products, index = shaped(products, width), shaped(index, width)
    gathered_resp = shaped(gathered_resp, width)
    for block in range(first_block, end_block):
        part = block % nk_parts.shape[0]  # block, or 0 for inference
        nk, sum_x, scatter = nk_parts[part], sum_x_parts[part], scatter_parts[part]
        sums = sums_parts[part]
        end_row = min(n_samples, (block + 1) * block_size)
        for start in range(block * block_size, end_row, width):
            n_points = min(width, end_row - start)
            _transpose_tile(X_flat, n_features, start, n_points, X_tile, width)
            for t in range(width):
                tile_peak[t] = -np.inf
            for k in range(n_components):
                _prefetch_next_tile(X_flat, n_features, start, end_row, k, n_components,
                                    width)
                _diagonal_mahalanobis(X_tile, means, precisions_chol, k, mahalanobis,
                                      width)
                _store_log_prob_in_turn(log_norm, shift, k, mahalanobis, start,
                                        n_points, resp, tile_peak, other_peak,
                                        weighted_log_prob, width)
            if inference:
                continue
            _tile_responsibilities(sample_weight, start, n_points, shift, log_uniform,
                                   with_entropy, resp, tile_top, tile_peak, other_peak,
                                   tile_scale, tile_entropy, tile_weight, products,
                                   sums, width)
            for k in range(n_components):
                total, count = _weight_responsibilities(tile_scale, n_points, resp, k,
                                                        weighted_resp, width)
                nk[k] += total
                if total == 0.0:
                    continue
                if count <= SPARSE_DIAGONAL_TILE:
                    n_gathered = _gather_points(weighted_resp, n_points, index,
                                                gathered_resp)
                    _sparse_diagonal_sums(X, start, index, gathered_resp, n_gathered,
                                          means, k, sum_x, scatter)
                    continue
                i = np.int64(0)  # not the literal 0: see _diagonal_mahalanobis
                lane_row = k if through_block else 0
                # a constant group at each call: see _diagonal_sums
                if WIDEST_GROUP >= 8:
                    while i + 8 <= n_features:
                        _diagonal_sums(X_tile, weighted_resp, means, k, i, 8,
                                       moment_lanes, lane_row)
                        i += 8
                while i + 4 <= n_features:
                    _diagonal_sums(X_tile, weighted_resp, means, k, i, 4, moment_lanes,
                                   lane_row)
                    i += 4
                while i + 2 <= n_features:
                    _diagonal_sums(X_tile, weighted_resp, means, k, i, 2, moment_lanes,
                                   lane_row)
                    i += 2
                if i < n_features:
                    _diagonal_sums(X_tile, weighted_resp, means, k, i, 1, moment_lanes,
                                   lane_row)
                if not through_block:
                    # (lane_row, 0 here: with a literal 0 numba compiled the
                    # helper twice)
                    _add_up_lanes(moment_lanes, lane_row, sum_x, scatter, k)
        if through_block and not inference:  # (inference writes no statistics)
            for k in range(n_components):
                _add_up_lanes(moment_lanes, k, sum_x, scatter, k)


def diagonal_blocks(X, sample_weight, means, precisions_chol, log_norm, block_size,
                    nk_parts, sum_x_parts, scatter_parts, sums_parts, weighted_log_prob,
                    with_entropy, first_block, end_block):
    """diagonal_statistics_blocks over blocks [first_block, end_block) with work
    arrays of its own (see dense_blocks)."""
    work = diagonal_tile_arrays(X.dtype, means.shape[0], X.shape[1],
                                statistics_tile(X))
    diagonal_statistics_blocks(X, sample_weight, means, precisions_chol, log_norm,
                               block_size, nk_parts, sum_x_parts, scatter_parts,
                               sums_parts, weighted_log_prob, with_entropy, *work,
                               first_block, end_block)


def reduce_diagonal(nk_parts, sum_x_parts, scatter_parts, sums_parts):
    """Sum the blocks' partial statistics in block order: ``(nk, sum_x, scatter, sums)``
    (Python, as reduce_dense)."""
    means_shape = sum_x_parts.shape[1:]
    return _reduced(reduce_diagonal_into,
                    (nk_parts, sum_x_parts, scatter_parts, sums_parts), means_shape,
                    means_shape)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def reduce_diagonal_into(nk_parts, sum_x_parts, scatter_parts, sums_parts, nk, sum_x,
                         scatter, sums):
    """reduce_diagonal into zeroed arrays the caller holds."""
    n_blocks, n_components, n_features = sum_x_parts.shape
    for block in range(n_blocks):
        for k in range(n_components):
            nk[k] += nk_parts[block, k]
            for i in range(n_features):
                sum_x[k, i] += sum_x_parts[block, k, i]
                scatter[k, i] += scatter_parts[block, k, i]
        for m in range(3):
            sums[m] += sums_parts[block, m]


def diagonal_statistics_and_sums(X, sample_weight, means, precisions_chol, log_norm,
                                 block_size, with_entropy=True):
    """Fused E-step and sufficient statistics for 'diag' and 'spherical'.

    Returns ``(nk, sum_x, scatter, sums)`` with scatter (K, D) the per-feature
    diagonal of the weighted scatter; sums as in dense_statistics_and_sums.
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    n_blocks = n_blocks_of(n_samples, block_size)
    nk_parts = np.zeros((n_blocks, n_components))
    sum_x_parts = np.zeros((n_blocks, n_components, n_features))
    scatter_parts = np.zeros((n_blocks, n_components, n_features))
    sums_parts = np.zeros((n_blocks, 3))
    run_blocks(diagonal_blocks, n_blocks, read_only(X), read_only(sample_weight),
               means, precisions_chol, log_norm, block_size, nk_parts, sum_x_parts,
               scatter_parts, sums_parts, STATISTICS_ONLY, bool(with_entropy))
    return reduce_diagonal(nk_parts, sum_x_parts, scatter_parts, sums_parts)


# The weighted_log_prob argument of the statistics kernels when they compute statistics.
STATISTICS_ONLY = np.zeros((0, 0))
# The sample weights of an inference call (not read; read-only, as in every call).
_NO_WEIGHTS = np.zeros(0)
_NO_WEIGHTS.flags.writeable = False
# The sample weights of a fit without weights: a single weight, which the block
# kernels give every row (_tile_weights), so that no (N,)
# array of ones is made (it was 1/D of the data, at every fit). The same type
# as an array of weights: no other compiled version.
UNIT_WEIGHT = np.ones(1)
UNIT_WEIGHT.flags.writeable = False


def _weighted_log_prob(kernel, X, means, factors, log_norm, block_size, n_scatter):
    """(n_samples, K) weighted log-probabilities from a statistics kernel in its
    inference mode (one row of unused parts; see dense_statistics_blocks)."""
    n_components, n_columns = means.shape
    out = np.empty((X.shape[0], n_components))
    run_blocks(kernel, n_blocks_of(X.shape[0], block_size), read_only(X), _NO_WEIGHTS,
               means, factors, log_norm, block_size, np.zeros((1, n_components)),
               np.zeros((1, n_components, n_columns)), np.zeros((1,) + n_scatter),
               np.zeros((1, 3)), out, False)
    return out


def dense_weighted_log_prob(X, means, precisions_chol, log_norm, block_size):
    """(n_samples, K) array of log weights_k + log N(x_i | m_k, Sigma_k), 'full'/'tied'.

    ``X`` read-only, as the statistics' (one compiled kernel serves both).
    """
    means_padded, factors = pad_dense(means, precisions_chol)
    width = means_padded.shape[1]
    return _weighted_log_prob(dense_blocks, X, means_padded, factors, log_norm,
                              block_size, (factors.shape[0], width, width))


def diagonal_weighted_log_prob(X, means, precisions_chol, log_norm, block_size):
    """(n_samples, K) array of log weights_k + log N(x_i | m_k, Sigma_k), 'diag'/'spherical'."""
    return _weighted_log_prob(diagonal_blocks, X, means, precisions_chol,
                              log_norm, block_size, means.shape)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", forceinline=True,
      no_cpython_wrapper=True, no_cfunc_wrapper=True, _nrt=False)
def _normalise_rows(weighted_log_prob, first_row, end_row, log_prob_norm, log_resp):
    prefer_512_bit_vectors()
    n_components = weighted_log_prob.shape[1]
    uniform = -math.log(n_components)
    for i in range(first_row, end_row):
        peak = -np.inf
        for k in range(n_components):
            peak = max(peak, weighted_log_prob[i, k])
        if peak == -np.inf:
            log_prob_norm[i] = -np.inf
            for k in range(n_components):
                log_resp[i, k] = uniform
            continue
        total = 0.0
        for k in range(n_components):
            total += exp64(weighted_log_prob[i, k] - peak)
        log_total = log64(total)
        log_prob_norm[i] = peak + log_total
        # (w - peak) - log(total), not w - (peak + log(total)): far from every
        # component |peak| is large and peak + log(total) would round log(total)
        # away, leaving responsibilities that do not sum to one.
        for k in range(n_components):
            log_resp[i, k] = (weighted_log_prob[i, k] - peak) - log_total


# No fastmath here: reassociation could turn (w - peak) - log(total) back into
# w - (peak + log(total)) (see _normalise_rows).
@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def log_resp_blocks(weighted_log_prob, block_size, log_prob_norm, log_resp, first_block,
                    end_block):
    """Rows of blocks [first_block, end_block) (see log_resp_from_weighted)."""
    n_samples = weighted_log_prob.shape[0]
    for block in range(first_block, end_block):
        _normalise_rows(weighted_log_prob, block * block_size,
                        min(n_samples, (block + 1) * block_size), log_prob_norm, log_resp)


def log_resp_from_weighted(weighted_log_prob, block_size):
    """Log-sum-exp normalisation: returns ``(log_prob_norm, log_resp)``.

    A row whose entries are all -inf gets log_prob_norm -inf and a uniform
    log_resp, so that responsibilities are always finite and sum to one.
    """
    n_samples, n_components = weighted_log_prob.shape
    log_prob_norm = np.empty(n_samples)
    log_resp = np.empty((n_samples, n_components))
    run_blocks(log_resp_blocks, n_blocks_of(n_samples, block_size), weighted_log_prob,
               block_size, log_prob_norm, log_resp)
    return log_prob_norm, log_resp
