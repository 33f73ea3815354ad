"""Tests for the vectorisable exp and log in ``fastem.kernels.exp``.

The oracle is ``np.exp`` (float64) and ``float32(np.exp(float64(x)))``
(float32), plus a 50-digit mpmath reference where mpmath is installed.

Measured on the development machine (AMD EPYC, AVX-512, FMA):
float64 at most 1 ulp apart from ``np.exp`` (4e6-point grid; 11% of
results differ by 1), true error at most 1.04 ulp with the polynomial
evaluated as two chains in r squared (mpmath, 250,000 points: 1.039 on
2026-12-05); float32 at most 1 ulp apart from ``float32(np.exp(float64))``,
checked exhaustively over all 2.24e9 float32 in [-87.33654, 88.72283]
(0.8% differ by 1).  The assertions allow 2 ulp so that a
machine without FMA (where ``llvm.fmuladd`` is a multiply then an add)
also passes.

Subnormal results are flushed to 0 by design (see the module docstring),
so ulp comparisons are made where the true result is a normal number, and
the subnormal range is checked separately.

This file imports numba (the package modules outside ``fastem/kernels/``
do not): a dispatcher loaded from numba's cache cannot be inspected, so
the vectorisation test compiles an uncached twin of the loop, exactly as a
kernel in another module would call ``exp64``.

log: the oracle is ``np.log`` (float64) and ``float32(np.log(float64(x)))``
(float32).  Measured: float64 at most 1 ulp apart from ``np.log`` (random
bit patterns over all positive normals and subnormals, dense grids), true
error at most 0.80 ulp (mpmath, 65,000 points); float32 checked
exhaustively over all 2.14e9 positive finite float32 (normals and
subnormals): true error at most 0.86 ulp, so at most 1 ulp from the
rounded reference.  Assertions allow 2 ulp as for exp.
"""

import re

import numba
import numpy as np
import pytest

from fastem.kernels.exp import (
    EXP32_CONSTANTS,
    EXP64_CONSTANTS,
    _libm_exp_inplace32,
    _libm_exp_inplace64,
    _libm_log_inplace32,
    _libm_log_inplace64,
    exp32,
    exp64,
    exp_constants_typed,
    exp_inplace32,
    exp_inplace64,
    exp_nonpositive32,
    exp_nonpositive64,
    exp_nonpositive_typed,
    exp_nonpositive_with_typed,
    exp_typed,
    held_constants,
    log32,
    log64,
    log_inplace32,
    log_inplace64,
    log_of_product64,
    log_typed,
    reciprocal64,
)

# Smallest arguments with a normal result, largest with a finite result.
LO64 = -708.3964185322641
OVF64 = 709.782712893384
LO32 = np.float32(-87.33654)
OVF32 = np.float32(88.72283)

MAX_ULP = 2


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def _ulp_diff(actual, expected):
    """Distance in units in the last place between two arrays of one float
    dtype, both non-negative (as exp results are)."""
    int_type = np.int64 if actual.dtype == np.float64 else np.int32
    assert actual.dtype == expected.dtype
    assert np.all(actual >= 0) and np.all(expected >= 0)
    return np.abs(
        actual.view(int_type).astype(np.int64)
        - expected.view(int_type).astype(np.int64)
    )


def _max_ulp(function, reference, x, ulp_diff=_ulp_diff):
    """The largest ``ulp_diff`` between ``function(x)`` and ``reference(x)``, computed
    on slices of ``x``: the same points, with temporaries small enough for the cache
    (5x faster than one pass over the 33 million points of the float32 grids)."""
    chunk = 2**18
    return max(ulp_diff(function(x[i:i + chunk]), reference(x[i:i + chunk])).max()
               for i in range(0, len(x), chunk))


def _exp64_array(x):
    out = np.array(x, dtype=np.float64)
    exp_inplace64(out)
    return out


def _exp32_array(x):
    out = np.array(x, dtype=np.float32)
    exp_inplace32(out)
    return out


def _reference32(x):
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.float64)).astype(np.float32)


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------


def test_exp64_dense_grid_within_2_ulp_of_np_exp():
    # 4 million points over the whole normal-result range; measured max 1.
    x = np.linspace(LO64, OVF64, 4_000_001)
    assert _max_ulp(_exp64_array, np.exp, x) <= MAX_ULP


def test_exp64_random_and_near_zero_within_2_ulp_of_np_exp(rng):
    samples = [
        rng.uniform(LO64, OVF64, 1_000_000),
        rng.uniform(-40.0, 0.0, 1_000_000),  # typical log-responsibilities
        rng.uniform(-1.0, 1.0, 1_000_000),
        rng.normal(0.0, 1e-8, 100_000),
        # every ulp around a few reduction boundaries: n changes at
        # x = (n + 1/2) ln 2, where |r| reaches the polynomial's end points
        np.concatenate(
            [
                b + np.arange(-5000, 5000) * np.spacing(b)
                for b in (0.5 * np.log(2), -0.5 * np.log(2), -700.5 * np.log(2))
            ]
        ),
    ]
    for x in samples:
        diff = _ulp_diff(_exp64_array(x), np.exp(x))
        assert diff.max() <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_inplace_agrees_with_libm_twin(rng, dtype):
    # The slow twin calls libm exp/expf per element in the same loop.
    low, high = (LO64, OVF64) if dtype == np.float64 else (LO32, OVF32)
    x = np.concatenate(
        [np.linspace(low, high, 1_000_001), rng.uniform(-50, 0, 100_000)]
    ).astype(dtype)
    fast, slow = x.copy(), x.copy()
    (exp_inplace64 if dtype == np.float64 else exp_inplace32)(fast)
    (_libm_exp_inplace64 if dtype == np.float64 else _libm_exp_inplace32)(slow)
    assert _ulp_diff(fast, slow).max() <= MAX_ULP


def test_exp64_against_mpmath(rng):
    mpmath = pytest.importorskip("mpmath")
    x = np.concatenate([rng.uniform(LO64, OVF64, 3000), rng.uniform(-5, 5, 3000)])
    got = _exp64_array(x)
    with mpmath.workdps(50):
        for value, result in zip(x, got, strict=True):
            exact = mpmath.exp(mpmath.mpf(float(value)))
            ulp = mpmath.mpf(float(np.spacing(result)))
            # measured max 1.039 ulp over 250,000 points (glibc exp: 0.505)
            assert abs(mpmath.mpf(float(result)) - exact) / ulp <= 1.5


def test_exp32_dense_grid_within_2_ulp():
    # Exhaustive over the normal range was checked once (max 1 ulp, ~2.2e9
    # values); here every 64th float32 bit pattern of both signs.
    negative = np.arange(
        np.int64(np.float32(-0.0).view(np.uint32)),
        np.int64(LO32.view(np.uint32)) + 1,
        64,
    )
    positive = np.arange(0, np.int64(OVF32.view(np.uint32)) + 1, 64)
    for bits in (negative, positive):
        x = bits.astype(np.uint32).view(np.float32)
        assert _max_ulp(_exp32_array, _reference32, x) <= MAX_ULP


def test_exp32_random_within_2_ulp(rng):
    for x in (
        rng.uniform(LO32, OVF32, 2_000_000).astype(np.float32),
        rng.uniform(-20.0, 0.0, 2_000_000).astype(np.float32),
    ):
        diff = _ulp_diff(_exp32_array(x), _reference32(x))
        assert diff.max() <= MAX_ULP


def test_exp64_is_monotone_on_dense_grid():
    x = np.linspace(LO64, OVF64, 2_000_001)
    assert np.all(np.diff(_exp64_array(x)) >= 0)
    around_half = 0.5 + np.arange(-100_000, 100_000) * np.spacing(0.5)
    assert np.all(np.diff(_exp64_array(around_half)) >= 0)


# --------------------------------------------------------------------------
# special values and range limits
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, expected",
    [
        (-np.inf, 0.0),
        (0.0, 1.0),
        (-0.0, 1.0),
        (np.inf, np.inf),
        (-1000.0, 0.0),
        (1000.0, np.inf),
        (1e300, np.inf),
        (-1e300, 0.0),
        (5e-324, 1.0),
        (1.0, np.exp(1.0)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(x, expected, dtype):
    with np.errstate(over="ignore"):
        x_typed = dtype(x)
        expected_typed = dtype(expected)
    scalar = (exp64 if dtype == np.float64 else exp32)(x_typed)
    array = (_exp64_array if dtype == np.float64 else _exp32_array)([x_typed])[0]
    # numba returns a Python float for both; for exp32 it holds a float32.
    assert isinstance(scalar, float) and (dtype(scalar) == scalar or np.isnan(scalar))
    for result in (scalar, array):
        if x == 1.0:
            ulps = _ulp_diff(np.array([result], dtype), np.array([expected_typed]))
            assert ulps[0] <= 1
        else:
            assert result == expected_typed
    if expected == 0.0:
        assert not np.signbit(scalar)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_gives_nan_including_payloads(dtype):
    int_type = np.uint64 if dtype == np.float64 else np.uint32
    payloads = (
        [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000FFF, 0x7FF0000000000001]
        if dtype == np.float64
        else [0x7FC00000, 0xFFC00000, 0x7FC00FFF, 0x7F800001]
    )
    x = np.array(payloads, dtype=int_type).view(dtype)
    assert np.all(np.isnan((_exp64_array if dtype == np.float64 else _exp32_array)(x)))
    exp_scalar = exp64 if dtype == np.float64 else exp32
    assert all(np.isnan(exp_scalar(value)) for value in x)


def test_exp64_range_limits():
    below = np.nextafter(LO64, -np.inf)
    above = np.nextafter(OVF64, np.inf)
    assert exp64(LO64) == np.exp(LO64) >= np.finfo(np.float64).tiny
    assert exp64(below) == 0.0  # np.exp(below) is subnormal: flushed
    assert 0.0 < np.exp(below) < np.finfo(np.float64).tiny
    assert exp64(OVF64) == np.exp(OVF64) < np.inf
    assert exp64(above) == np.inf
    with np.errstate(over="ignore"):
        assert np.exp(above) == np.inf


def test_exp32_range_limits():
    below = np.nextafter(LO32, np.float32(-np.inf))
    above = np.nextafter(OVF32, np.float32(np.inf))
    assert exp32(LO32) == _reference32(np.array([LO32]))[0]
    assert exp32(LO32) >= np.finfo(np.float32).tiny
    assert exp32(below) == 0.0
    assert 0.0 < _reference32(np.array([below]))[0] < np.finfo(np.float32).tiny
    assert exp32(OVF32) == _reference32(np.array([OVF32]))[0] < np.inf
    assert exp32(above) == np.inf == _reference32(np.array([above]))[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_subnormal_results_flush_to_zero(rng, dtype):
    low, high = (-800.0, LO64) if dtype == np.float64 else (-120.0, LO32)
    x = rng.uniform(low, high, 10_000).astype(dtype)
    x = x[x < high]
    result = (_exp64_array if dtype == np.float64 else _exp32_array)(x)
    assert np.all(result == 0.0) and not np.any(np.signbit(result))


# --------------------------------------------------------------------------
# the in-place loops
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_inplace_matches_scalar_on_all_lengths_and_views(rng, dtype):
    exp_inplace = exp_inplace64 if dtype == np.float64 else exp_inplace32
    exp_scalar = exp64 if dtype == np.float64 else exp32
    # lengths around the vector width exercise the vector body and the tail
    for n in (0, 1, 7, 8, 9, 15, 16, 17, 33, 1000):
        x = rng.uniform(-30, 5, n).astype(dtype)
        y = x.copy()
        exp_inplace(y)
        assert y.dtype == dtype
        assert np.array_equal(y, np.array([exp_scalar(v) for v in x], dtype=dtype))
    # a strided view is updated in place and only at its own elements
    base = rng.uniform(-30, 5, 101).astype(dtype)
    work = base.copy()
    exp_inplace(work[::3])
    expected = np.array([exp_scalar(v) for v in base[::3]], dtype=dtype)
    assert np.array_equal(work[::3], expected)
    mask = np.ones(101, dtype=bool)
    mask[::3] = False
    assert np.array_equal(work[mask], base[mask])


# --------------------------------------------------------------------------
# vectorisation
# --------------------------------------------------------------------------


def _host_has_avx2():
    llvm = pytest.importorskip("llvmlite.binding")
    return llvm.get_host_cpu_features().get("avx2", False)


@pytest.mark.parametrize(
    "dtype, scalar_type, widths",
    [
        ("float64", "double", (4, 8)),
        ("float32", "float", (8, 16)),
    ],
)
def test_exp_loop_is_vectorised(dtype, scalar_type, widths):
    if not _host_has_avx2():
        pytest.skip("CPU without AVX2: no 256-bit vector units to check for")
    numba = pytest.importorskip("numba")
    exp_inplace = exp_inplace64 if dtype == "float64" else exp_inplace32
    # An uncached twin: cached code cannot be inspected.  Its body calls the
    # cached exp64/exp32 dispatcher, like kernels in other modules will.
    twin = numba.njit(exp_inplace.py_func)
    twin.compile((numba.types.Array(getattr(numba.types, dtype), 1, "C"),))
    signature = twin.signatures[0]
    llvm_ir = twin.inspect_llvm(signature)
    asm = twin.inspect_asm(signature)

    # exp was inlined: no libm exp and no call to the exp64/exp32 function.
    assert "@exp(" not in llvm_ir and "@expf(" not in llvm_ir
    assert not re.search(r"call .*6fastem7kernels3exp5exp(64|32)B", llvm_ir)
    # The multiply-adds of the polynomial are vector operations ...
    vector_fmuladd = [
        width
        for width in widths
        if f"<{width} x {scalar_type}> @llvm.fmuladd" in llvm_ir
    ]
    assert vector_fmuladd, "the exp loop was not vectorised"
    # ... and so are the machine instructions (ymm = AVX2, zmm = AVX-512):
    # packed multiply-adds, or multiplies and adds where there is no FMA.
    suffix = "pd" if dtype == "float64" else "ps"
    packed = re.compile(rf"\tv(fmadd\d+|fmsub\d+|mul|add){suffix}\t.*%[yz]mm")
    assert packed.search(asm)



# --------------------------------------------------------------------------
# exp_nonpositive64 / exp_nonpositive32: exp without the overflow handling
# --------------------------------------------------------------------------


@numba.njit
def _exp_nonpositive_loop(x, out):
    """The E-step's use: a counted loop of exp_nonpositive_typed (vectorised)."""
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive_typed(x[i])


def _nonpositive_arguments(dtype, rng):
    """Arguments <= 0 of every kind the E-step passes: uniform over the range,
    near 0, every float around the underflow limit, huge, -0.0, -inf, NaN."""
    low = LO64 if dtype == np.float64 else LO32
    info = np.finfo(dtype)
    int_type = np.int64 if dtype == np.float64 else np.int32
    # (a negative float's bit pattern grows with its magnitude: 5 floats above
    # the limit, the limit, and 200 below it)
    around_limit = (np.array([low], dtype).view(int_type)
                    + np.arange(-5, 201).astype(int_type)).view(dtype)
    values = np.concatenate([
        -rng.uniform(0.0, 800.0 if dtype == np.float64 else 100.0, 200_000),
        -rng.uniform(0.0, 1e-3, 10_000),
        -np.exp2(rng.uniform(-1070 if dtype == np.float64 else -149, 0, 10_000)),
        -np.exp2(rng.uniform(0, 1023 if dtype == np.float64 else 127, 10_000)),
    ]).astype(dtype)
    specials = np.array([0.0, -0.0, -np.inf, np.nan, -float(info.max),
                         -float(info.tiny), -float(info.smallest_subnormal)], dtype)
    return np.concatenate([values, around_limit, specials])


def _assert_loop_gives_the_bits(loop, x, expected):
    """loop(x, out) writes expected's bits where x is not NaN, and NaN where it is."""
    int_type = np.int64 if x.dtype == np.float64 else np.int32
    got = np.empty_like(x)
    loop(x, got)
    finite = ~np.isnan(x)
    assert np.array_equal(got[finite].view(int_type), expected[finite].view(int_type))
    assert np.array_equal(np.isnan(got), np.isnan(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_nonpositive_gives_exps_bits_for_every_nonpositive_argument(rng, dtype):
    """exp_nonpositive drops exp's clamp and overflow select: for every argument
    the E-step can pass it (<= 0, -inf, NaN) it must give exp's bits, in a
    vectorised loop and called on a scalar."""
    x = _nonpositive_arguments(dtype, rng)
    assert not np.any(x > 0)
    int_type = np.int64 if dtype == np.float64 else np.int32
    expected = (_exp64_array if dtype == np.float64 else _exp32_array)(x)
    _assert_loop_gives_the_bits(_exp_nonpositive_loop, x, expected)
    scalar = exp_nonpositive64 if dtype == np.float64 else exp_nonpositive32
    sample = np.concatenate([x[::997], x[-210:]])
    for value in sample:
        result = dtype(scalar(value))
        reference = (exp64 if dtype == np.float64 else exp32)(value)
        if np.isnan(value):
            assert np.isnan(result)
        else:
            assert result.view(int_type) == dtype(reference).view(int_type), value
    # the limits: normal at the underflow limit, exactly +0.0 one float below
    low = LO64 if dtype == np.float64 else LO32
    assert dtype(scalar(dtype(low))) >= np.finfo(dtype).tiny
    below = scalar(np.nextafter(dtype(low), dtype(-np.inf)))
    assert below == 0.0 and not np.signbit(below)


@numba.njit
def _exp_nonpositive_held_loop(x, out):
    """The E-step's loop as the kernels write it: the exp's constants held before
    the loop (exp_constants_typed), passed to each exp."""
    constants = exp_constants_typed(x[0])
    for i in range(x.shape[0]):
        out[i] = exp_nonpositive_with_typed(x[i], constants)


@numba.njit
def _held(values):
    return held_constants(values)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_with_held_constants_gives_the_same_bits(rng, dtype):
    """With its constants held as values (held_constants: an empty inline asm on
    x86, so LLVM broadcasts them once before the loop), exp_nonpositive gives the
    bits of exp_nonpositive_typed for every argument the E-step can pass, and
    the held constants are the constants."""
    x = _nonpositive_arguments(dtype, rng)
    int_type = np.int64 if dtype == np.float64 else np.int32
    expected = np.empty_like(x)
    _exp_nonpositive_loop(x, expected)
    _assert_loop_gives_the_bits(_exp_nonpositive_held_loop, x, expected)
    constants = EXP64_CONSTANTS if dtype == np.float64 else EXP32_CONSTANTS
    held = np.array(_held(constants), dtype=dtype)  # (boxed as Python floats)
    assert np.array_equal(held.view(int_type), np.array(constants, dtype).view(int_type))


# ==========================================================================
# log64 / log32
# ==========================================================================

def _ordered(values):
    """Map floats of any sign to integers in the same order, one step per
    representable number (-0.0 and +0.0 both map to 0)."""
    int_type = np.int64 if values.dtype == np.float64 else np.int32
    bits = values.view(int_type).astype(np.int64)
    magnitude = bits & (2 ** (8 * values.itemsize - 1) - 1)
    return np.where(bits < 0, -magnitude, magnitude)


def _ulp_diff_signed(actual, expected):
    """Distance in ulp between two finite arrays of one float dtype."""
    assert actual.dtype == expected.dtype
    assert np.all(np.isfinite(actual)) and np.all(np.isfinite(expected))
    return np.abs(_ordered(actual) - _ordered(expected))


def _log_grid(dtype, count):
    """``count - 1`` points spaced evenly in log over the positive normal
    floats (the last one, 2**maxexp, is left out: it overflows)."""
    info = np.finfo(dtype)
    exponents = np.linspace(info.minexp, info.maxexp, count)
    return np.minimum(np.exp2(exponents[:-1]), float(info.max)).astype(dtype)


def _log64_array(x):
    out = np.array(x, dtype=np.float64)
    log_inplace64(out)
    return out


def _log32_array(x):
    out = np.array(x, dtype=np.float32)
    log_inplace32(out)
    return out


def _log_reference32(x):
    return np.log(x.astype(np.float64)).astype(np.float32)


def _positive_bit_patterns(low, high, count, rng, dtype):
    """``count`` random floats whose bit patterns are uniform in [low, high)."""
    int_type = np.int64 if dtype == np.float64 else np.int32
    bits = rng.integers(int(low), int(high), count, dtype=np.int64)
    return bits.astype(int_type).view(dtype)


def _every_ulp_around(centres, half_width, dtype=np.float64):
    return np.concatenate(
        [
            dtype(c) + np.arange(-half_width, half_width).astype(dtype)
            * np.spacing(dtype(c))
            for c in centres
        ]
    ).astype(dtype)


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------


def test_log64_dense_grids_within_2_ulp_of_np_log():
    grids = [
        _log_grid(np.float64, 4_000_001),  # every binade, evenly
        np.linspace(1.0, 100.0, 2_000_001),  # E-step sums: values in [1, K]
        np.linspace(0.5, 2.0, 2_000_001),
    ]
    for x in grids:
        diff = _ulp_diff_signed(_log64_array(x), np.log(x))
        assert diff.max() <= MAX_ULP


def test_log64_random_and_boundaries_within_2_ulp_of_np_log(rng):
    samples = [
        # all positive normal and subnormal bit patterns
        _positive_bit_patterns(1, 0x7FF0000000000000, 2_000_000, rng, np.float64),
        rng.uniform(1.0, 20.0, 1_000_000),
        np.exp(rng.uniform(-745.0, 709.0, 1_000_000)),
        # near 1 the result is tiny; it must be accurate relative to itself
        1.0 + rng.normal(0.0, 1e-6, 200_000),
        # every ulp around the mantissa split sqrt(1/2) * 2**k and around 1
        _every_ulp_around(
            [np.sqrt(0.5), np.sqrt(2.0), np.sqrt(0.5) * 2.0**-1000, 1.0, 2.0**600],
            5000,
        ),
        # subnormal inputs (scaled by 2**54 inside)
        _positive_bit_patterns(1, 0x0010000000000000, 200_000, rng, np.float64),
    ]
    for x in samples:
        x = x[x != 1.0]  # log(1) = 0 is checked exactly elsewhere
        diff = _ulp_diff_signed(_log64_array(x), np.log(x))
        assert diff.max() <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_inplace_agrees_with_libm_twin(rng, dtype):
    # The slow twin calls libm log/logf per element in the same loop.
    x = np.concatenate(
        [_log_grid(dtype, 1_000_001), rng.uniform(1.0, 50.0, 100_000).astype(dtype)]
    )
    fast, slow = x.copy(), x.copy()
    (log_inplace64 if dtype == np.float64 else log_inplace32)(fast)
    (_libm_log_inplace64 if dtype == np.float64 else _libm_log_inplace32)(slow)
    assert _ulp_diff_signed(fast, slow).max() <= MAX_ULP


def test_log64_against_mpmath(rng):
    mpmath = pytest.importorskip("mpmath")
    x = np.concatenate(
        [
            np.exp(rng.uniform(-744.0, 709.0, 3000)),
            rng.uniform(0.5, 2.0, 3000),
            1.0 + rng.normal(0.0, 1e-3, 1000),
        ]
    )
    x = x[x != 1.0]
    got = _log64_array(x)
    with mpmath.workdps(50):
        for value, result in zip(x, got, strict=True):
            exact = mpmath.log(mpmath.mpf(float(value)))
            ulp = mpmath.mpf(float(np.spacing(abs(result))))
            # measured max 0.80 ulp over 65,000 points
            assert abs(mpmath.mpf(float(result)) - exact) / ulp <= 1.0


def test_log32_dense_grid_within_2_ulp():
    # Exhaustive over all positive finite float32 was checked once (true
    # error <= 0.86 ulp); here every 64th bit pattern, subnormals included.
    bits = np.arange(1, np.int64(np.float32(np.inf).view(np.uint32)), 64)
    x = bits.astype(np.uint32).view(np.float32)
    x = x[x != 1.0]
    assert _max_ulp(_log32_array, _log_reference32, x, _ulp_diff_signed) <= MAX_ULP


def test_log32_random_within_2_ulp(rng):
    for x in (
        _positive_bit_patterns(1, 0x7F800000, 2_000_000, rng, np.float32),
        rng.uniform(1.0, 20.0, 2_000_000).astype(np.float32),
        _every_ulp_around([np.sqrt(0.5), np.sqrt(2.0), 1.0], 3000, np.float32),
    ):
        x = x[x != 1.0]
        diff = _ulp_diff_signed(_log32_array(x), _log_reference32(x))
        assert diff.max() <= MAX_ULP


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_is_monotone_on_dense_grids(dtype):
    log_array = _log64_array if dtype == np.float64 else _log32_array
    for x in (
        _log_grid(dtype, 1_000_001),
        _every_ulp_around([np.sqrt(0.5), 1.0, np.sqrt(2.0)], 20_000, dtype),
    ):
        x = np.unique(x)
        assert np.all(np.diff(log_array(x)) >= 0)


# --------------------------------------------------------------------------
# special values
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, expected",
    [
        (0.0, -np.inf),
        (-0.0, -np.inf),
        (-1.0, np.nan),
        (-1e-300, np.nan),
        (-np.inf, np.nan),
        (np.nan, np.nan),
        (np.inf, np.inf),
        (1.0, 0.0),
        (2.0, np.log(2.0)),
        (np.e, 1.0),
        (5e-324, np.log(5e-324)),
        (1e300, np.log(1e300)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_special_values(x, expected, dtype):
    with np.errstate(over="ignore", under="ignore"):
        x_typed = dtype(x)  # float32: 1e300 -> inf, 5e-324 and -1e-300 -> 0
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_typed = dtype(np.log(np.float64(x_typed)))
    if dtype == np.float64:
        assert np.array_equal(expected_typed, expected, equal_nan=True) or (
            abs(expected_typed - expected) <= np.spacing(expected)
        )
    scalar = (log64 if dtype == np.float64 else log32)(x_typed)
    array = (_log64_array if dtype == np.float64 else _log32_array)([x_typed])[0]
    assert isinstance(scalar, float) and (dtype(scalar) == scalar or np.isnan(scalar))
    for result in (scalar, array):
        if np.isnan(expected_typed):
            assert np.isnan(result)
        elif np.isinf(expected_typed) or x == 1.0:
            assert result == expected_typed
        else:
            ulps = _ulp_diff_signed(
                np.array([result], dtype), np.array([expected_typed])
            )
            assert ulps[0] <= 1
    if x == 1.0:
        assert scalar == 0.0 and not np.signbit(scalar)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_nan_gives_nan_including_payloads(dtype):
    int_type = np.uint64 if dtype == np.float64 else np.uint32
    payloads = (
        [0x7FF8000000000000, 0xFFF8000000000000, 0x7FF8000000000FFF, 0x7FF0000000000001]
        if dtype == np.float64
        else [0x7FC00000, 0xFFC00000, 0x7FC00FFF, 0x7F800001]
    )
    x = np.array(payloads, dtype=int_type).view(dtype)
    assert np.all(np.isnan((_log64_array if dtype == np.float64 else _log32_array)(x)))
    log_scalar = log64 if dtype == np.float64 else log32
    assert all(np.isnan(log_scalar(value)) for value in x)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_of_exact_powers_of_two(dtype):
    # log(2**k) = k*ln2_hi + k*ln2_lo: within 1 ulp of the reference,
    # for normal and subnormal 2**k.
    info = np.finfo(dtype)
    k = np.arange(info.minexp - info.nmant, info.maxexp)
    x = np.ldexp(np.ones(k.shape, dtype), k.astype(np.int32)).astype(dtype)
    expected = np.log(x.astype(np.float64)).astype(dtype)
    result = (_log64_array if dtype == np.float64 else _log32_array)(x)
    assert result[k == 0][0] == 0.0
    assert _ulp_diff_signed(result, expected).max() <= 1


# --------------------------------------------------------------------------
# the in-place loops
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_inplace_matches_scalar_on_all_lengths_and_views(rng, dtype):
    log_inplace = log_inplace64 if dtype == np.float64 else log_inplace32
    log_scalar = log64 if dtype == np.float64 else log32
    for n in (0, 1, 7, 8, 9, 15, 16, 17, 33, 1000):
        x = rng.uniform(0.0, 30.0, n).astype(dtype)
        if n > 4:
            x[:4] = [0.0, -1.0, np.inf, np.nan]  # specials in vector lanes too
        y = x.copy()
        log_inplace(y)
        assert y.dtype == dtype
        expected = np.array([log_scalar(v) for v in x], dtype=dtype)
        assert np.array_equal(y, expected, equal_nan=True)
    base = rng.uniform(0.0, 30.0, 101).astype(dtype)
    work = base.copy()
    log_inplace(work[::3])
    expected = np.array([log_scalar(v) for v in base[::3]], dtype=dtype)
    assert np.array_equal(work[::3], expected)
    mask = np.ones(101, dtype=bool)
    mask[::3] = False
    assert np.array_equal(work[mask], base[mask])


# --------------------------------------------------------------------------
# vectorisation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, scalar_type, widths",
    [
        ("float64", "double", (4, 8)),
        ("float32", "float", (8, 16)),
    ],
)
def test_log_loop_is_vectorised(dtype, scalar_type, widths):
    if not _host_has_avx2():
        pytest.skip("CPU without AVX2: no 256-bit vector units to check for")
    numba = pytest.importorskip("numba")
    log_inplace = log_inplace64 if dtype == "float64" else log_inplace32
    twin = numba.njit(log_inplace.py_func)
    twin.compile((numba.types.Array(getattr(numba.types, dtype), 1, "C"),))
    signature = twin.signatures[0]
    llvm_ir = twin.inspect_llvm(signature)
    asm = twin.inspect_asm(signature)

    # log was inlined: no libm log and no call to the log64/log32 function.
    assert "@log(" not in llvm_ir and "@logf(" not in llvm_ir
    assert not re.search(r"call .*6fastem7kernels3exp5log(64|32)B", llvm_ir)
    # numba's zero-division check (a raise) would have stopped the
    # vectoriser; the division and the multiply-adds are vector operations.
    assert "ZeroDivisionError" not in llvm_ir
    vector_fmuladd = [
        width
        for width in widths
        if f"<{width} x {scalar_type}> @llvm.fmuladd" in llvm_ir
    ]
    assert vector_fmuladd, "the log loop was not vectorised"
    suffix = "pd" if dtype == "float64" else "ps"
    assert re.search(rf"\tvdiv{suffix}\t.*%[yz]mm", asm)
    packed = re.compile(rf"\tv(fmadd\d+|fmsub\d+|mul|add){suffix}\t.*%[yz]mm")
    assert packed.search(asm)


# ==========================================================================
# exp_typed / log_typed: the precision of the argument, chosen at compile time
# ==========================================================================


def _typed_loops():
    numba = pytest.importorskip("numba")

    def exp_loop(a, out):
        for i in range(a.shape[0]):
            out[i] = exp_typed(a[i])

    def log_loop(a, out):
        for i in range(a.shape[0]):
            out[i] = log_typed(a[i])

    return numba.njit(exp_loop), numba.njit(log_loop)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_typed_exp_and_log_are_the_dtypes_own(rng, dtype):
    exp_loop, log_loop = _typed_loops()
    values = rng.uniform(-80.0, 80.0, 4099).astype(dtype)
    positive = np.abs(values) + dtype(1e-3)
    expected_exp, expected_log = values.copy(), positive.copy()
    if dtype == np.float64:
        exp_inplace64(expected_exp)
        log_inplace64(expected_log)
    else:
        exp_inplace32(expected_exp)
        log_inplace32(expected_log)
    got_exp = np.empty_like(values)
    got_log = np.empty_like(positive)
    exp_loop(values, got_exp)
    log_loop(positive, got_log)
    # the same bits as the dtype's own function (exp64/log64 rounded to float32
    # differ from exp32/log32 in about 10% resp. 4% of these values)
    assert got_exp.dtype == dtype and got_log.dtype == dtype
    assert np.array_equal(got_exp, expected_exp)
    assert np.array_equal(got_log, expected_log)
    # outside compiled code they fall back to the same functions
    assert np.array_equal(exp_typed(values[0]), expected_exp[0])
    assert np.array_equal(log_typed(positive[0]), expected_log[0])


@pytest.mark.parametrize("loop", [0, 1], ids=["exp_typed", "log_typed"])
def test_typed_functions_vectorise_float32_as_float32(loop):
    """A float32 loop stays float32: float vector multiply-adds (8 lanes here; the
    kernels' prefer_512_bit_vectors makes them 16), no double polynomial, no
    conversion to float64."""
    if not _host_has_avx2():
        pytest.skip("CPU without AVX2: no 256-bit vector units to check for")
    numba = pytest.importorskip("numba")
    typed_loop = _typed_loops()[loop]
    signature = (numba.types.float32[::1], numba.types.float32[::1])
    typed_loop.compile(signature)
    llvm_ir = typed_loop.inspect_llvm(signature)
    assert re.search(r"<(8|16) x float> @llvm\.fmuladd", llvm_ir)
    assert "double> @llvm.fmuladd" not in llvm_ir
    assert "fpext" not in llvm_ir


@numba.njit(cache=False)
def _log_of_product(values):
    return log_of_product64(values)


@pytest.mark.parametrize("scale", [1.0, 1e300, 1e-300])
def test_log_of_product64_is_the_sum_of_the_logs(rng, scale):
    """Sixteen values whose product overflows (or underflows) float64: the log of
    the product is the sum of their logs to within a few ulp of that sum; ones
    give exactly 0."""
    values = scale * rng.uniform(1.0, 64.0, size=16)
    expected = np.log(values).sum()
    got = _log_of_product(values)
    assert abs(got - expected) <= 4 * np.spacing(abs(expected)) + 1e-15
    assert _log_of_product(np.ones(16)) == 0.0
    # 2**2000: exact mantissas; 2000 ln 2 (1386.2943611198906188...) within an ulp
    twice = _log_of_product(np.array([2.0**1000, 2.0**1000]))
    assert abs(twice - 1386.2943611198906188) <= np.spacing(1386.0)


@numba.njit(cache=False)
def _reciprocals(values, out):
    for i in range(values.shape[0]):
        out[i] = reciprocal64(values[i])


def test_reciprocal64_within_an_ulp_of_the_division(rng):
    """Over the domain (float32's normal range) and the E-step's [1, K]: within
    1 ulp of the correctly rounded 1 / x, in a loop as the kernels call it."""
    values = np.concatenate([
        rng.uniform(1.0, 64.0, size=100_000),
        np.exp(rng.uniform(np.log(2.0**-126), np.log(2.0**127), size=100_000)),
        [1.0, 2.0, 3.0, 2.0**-126, 2.0**127 * (1 - 2.0**-30)],
    ])
    out = np.empty_like(values)
    _reciprocals(values, out)
    exact = 1.0 / values
    assert np.all(np.abs(out - exact) <= np.spacing(exact))
    assert (out[-5:-2] == [1.0, 0.5, 1.0 / 3.0]).all()

