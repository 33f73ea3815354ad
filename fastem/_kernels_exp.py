"""Vectorisable ``exp`` for numba kernels.

Inside an ``@njit`` loop ``np.exp``/``math.exp`` is a call into libm (2-7
ns per element on the build machine), and because LLVM cannot widen an
opaque call it also stops the whole loop from being vectorised.  The N*K exponentials of the
E-step then dominate the run time.  The functions here use only operations
LLVM's loop vectoriser can widen (multiply-add, compare/select, integer
add/shift, bitcast), so a loop such as::

    for i in range(n):
        out[i] = exp64(log_resp[i])

compiles to AVX-512 code (8 doubles or 16 floats per instruction on this
project's build machine, 26 resp. 21 instructions per vector iteration)
with no call in the loop body.

Algorithm (Cody-Waite reduction, polynomial, exponent add; no table)
--------------------------------------------------------------------
1. ``n = round(x / ln2)`` by adding the "shifter" ``1.5 * 2**52``
   (``1.5 * 2**23`` for float32): the rounded integer lands in the low
   mantissa bits of the sum, so no float->int conversion is needed and the
   bits are read with an LLVM ``bitcast`` (no memory round trip).
2. ``r = x - n*ln2`` with ln2 split in two constants (``n*ln2_hi`` is
   exact), so ``|r| <= ln2/2`` to within rounding.
3. ``exp(r) = 1 + r + r**2 * q(r)`` with ``q`` a near-minimax polynomial
   (Chebyshev fit; degree 9 for float64, degree 4 for float32), evaluated by
   Horner's rule in ``llvm.fmuladd``.
4. ``exp(x) = exp(r) * 2**n`` by an integer add of ``n << 52`` (``<< 23``)
   to the bit pattern of ``exp(r)``.
5. Branch-free range handling with selects, which vectorise:

   * ``x < lo`` (true result subnormal or zero, including ``-inf``):
     exactly ``+0.0``.  ``lo`` is the smallest float above
     ``log(smallest normal)``, i.e. **subnormal results are flushed to
     zero** (float64: ``x < -708.3964185322641``, results below
     2.2250738585072014e-308; float32: ``x < -87.33654``, results below
     1.1754944e-38).  ``x`` is clamped to ``lo`` before the arithmetic,
     so these lanes never compute with huge or subnormal values (an
     underflowing multiply costs about twice the time on this CPU).
   * ``x > ovf`` (float64 ``709.782712893384``, float32 ``88.72283``, the
     largest arguments with a finite result) or NaN: ``x + inf``, which is
     ``inf`` or the NaN itself.
   * In between, the biased exponent of the result stays in [1, 2046]
     ([1, 254]): at ``n = -1022`` (``-126``) the reduced argument is
     positive, so ``exp(r) >= 1``; at ``n = 1024`` (``128``) it is
     negative, so ``exp(r) < 1``.

Special values: ``exp(-inf) == 0.0``, ``exp(0) == 1.0`` exactly,
``exp(nan)`` is NaN (any payload), ``exp(+inf) == inf``,
``exp(-1000) == 0.0``, ``exp(1000) == inf``.  No Python exception is ever
raised; hardware status flags are not meaningful.

Accuracy (``tests/test_kernels_exp.py``; AMD EPYC with AVX-512 and FMA):
float64 at most 1 ulp from ``np.exp`` and at most 1.04 ulp from the exact
value (glibc's ``exp``: 0.505 ulp); float32 at most 1 ulp from
``float32(np.exp(float64(x)))`` over all 2.24e9 float32 inputs with a
normal result.

How kernels should use it
-------------------------
Call ``exp64``/``exp32`` on a scalar inside a simple counted ``for i in
range(n)`` loop whose body only loads, computes and stores to contiguous
(C-order) memory -- no ``break``, ``raise``, or Python objects in that loop.
``exp_inplace64``/``exp_inplace32`` are the reference pattern.  Give the
vectorised loop a long trip count: exp over the last axis of a
``(n_samples, n_components)`` array with small ``n_components`` runs
mostly in the scalar remainder; loop over the flattened block (or over
samples with components outermost) instead.  A floating-point sum
``total += exp64(v)`` is *not* vectorised without ``fastmath={'reassoc'}``
(LLVM must keep the order of additions); store the exps into a buffer and
sum it in a second loop, or accept the scalar (still call-free) loop.
For float32 data use ``exp32`` on float32 values and make every constant
in the expression ``np.float32``: a Python float literal turns the
arithmetic into float64 and halves the vector width.

The functions are plain ``@njit(cache=True)``, not ``inline="always"``.
Both vectorise (checked), but with plain ``njit`` LLVM inlines the
already-optimised function body from numba's cache (the cache stores
bitcode for this purpose), so it is compiled once here instead of being
re-typed inside every caller.

No ``fastmath`` flags are used.  The only relaxation is ``llvm.fmuladd``
(the per-operation form of ``fastmath={'contract'}``): LLVM emits an FMA
where the target has one and a separate multiply and add where it does
not; both stay within 2 ulp.  Because it is per operation, the callers'
own ``fastmath`` setting does not change these functions.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["exp64", "exp32", "exp_inplace64", "exp_inplace32"]


# --------------------------------------------------------------------------
# LLVM intrinsics: bit casts (no memory round-trip) and multiply-add.
# --------------------------------------------------------------------------


@intrinsic
def _float64_as_int64(typingctx, value):
    """Reinterpret the bits of a float64 as an int64 (LLVM ``bitcast``)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _int64_as_float64(typingctx, value):
    """Reinterpret the low 64 bits of an integer as a float64."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        bits = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(value), codegen


@intrinsic
def _float32_as_int32(typingctx, value):
    """Reinterpret the bits of a float32 as an int32 (LLVM ``bitcast``)."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _int32_as_float32(typingctx, value):
    """Reinterpret the low 32 bits of an integer as a float32.

    numba widens int32 arithmetic to int64; truncating here (instead of
    asking callers to cast) lets LLVM narrow the whole integer chain back
    to 32-bit lanes.
    """
    if not isinstance(value, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        bits = args[0]
        width = signature.args[0].bitwidth
        if width > 32:
            bits = builder.trunc(bits, ir.IntType(32))
        elif width < 32:
            bits = context.cast(builder, bits, signature.args[0], types.int32)
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(value), codegen


@intrinsic
def _fmuladd(typingctx, a, b, c):
    """``a * b + c`` via ``llvm.fmuladd``: fused if the target has FMA.

    All three arguments must have the same float type (float32 or float64).
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None
    llvm_type = ir.DoubleType() if a.bitwidth == 64 else ir.FloatType()
    name = "llvm.fmuladd.f64" if a.bitwidth == 64 else "llvm.fmuladd.f32"

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(llvm_type, [llvm_type] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        return builder.call(fn, args)

    return a(a, a, a), codegen


# --------------------------------------------------------------------------
# float64
# --------------------------------------------------------------------------

# Range limits.  _LO64 is the smallest double above -1022*ln2 = log of the
# smallest normal: for x >= _LO64 the result is normal and the reduced
# argument at n = -1022 is positive (so p >= 1 and the exponent add below
# cannot reach the subnormal range); x < _LO64 returns 0.0.  _OVF64 is the
# largest double whose exp is finite (its reduced argument at n = 1024 is
# negative, so p < 1 and the exponent add cannot reach the inf/NaN field);
# x > _OVF64 returns inf.
_LO64 = -708.3964185322641
_OVF64 = 709.782712893384
_INF = np.inf
_LOG2E64 = 1.4426950408889634
# Round-to-integer shifter 1.5 * 2**52 and its bit pattern.
_SHIFT64 = 6755399441055744.0
_SHIFT64_BITS = int(np.float64(_SHIFT64).view(np.int64))
# Cody-Waite split of ln 2 (fdlibm): _LN2_HI64 has 21 trailing zero bits, so
# n * _LN2_HI64 is exact for |n| < 2**21.
_LN2_HI64 = 6.93147180369123816490e-01
_LN2_LO64 = 1.90821492927058770002e-10
# q(r) ~= (exp(r) - 1 - r) / r**2 on |r| <= 1.01 * ln2 / 2; Chebyshev fit
# (mpmath.chebyfit), max abs error 1.2e-16 in q, 1.4e-17 in exp(r).
_Q64_0 = 0.5000000000000001
_Q64_1 = 0.16666666666666669
_Q64_2 = 0.04166666666662064
_Q64_3 = 0.008333333333329793
_Q64_4 = 0.0013888888918939168
_Q64_5 = 0.00019841269864380513
_Q64_6 = 2.4801518641395993e-05
_Q64_7 = 2.75572664186123e-06
_Q64_8 = 2.7621338669142925e-07
_Q64_9 = 2.510134692835034e-08


@njit(cache=True)
def exp64(x):
    """Vectorisable ``exp`` of a float64 scalar (max error 1.04 ulp).

    Call it inside a counted loop over contiguous memory; LLVM inlines and
    vectorises it (see the module docstring for the pattern).

    Parameters
    ----------
    x : float64

    Returns
    -------
    float64
        ``exp(x)``; exactly 0.0 when the true result is subnormal or zero
        (``x < -708.3964185322641``, including ``-inf``); ``inf`` for
        ``x > 709.782712893384`` and ``+inf``; NaN for NaN.
    """
    underflow = x < _LO64
    # "not <=" is also true for NaN, which then leaves through x + inf.
    overflow_or_nan = not (x <= _OVF64)
    # Clamp from below (avoids arithmetic on huge negative values); the
    # selects at the end discard the lanes that were clamped or overflow.
    x = _LO64 if underflow else x
    shifted = _fmuladd(x, _LOG2E64, _SHIFT64)
    n_float = shifted - _SHIFT64
    n = _float64_as_int64(shifted) - _SHIFT64_BITS
    r = _fmuladd(n_float, -_LN2_HI64, x)
    r = _fmuladd(n_float, -_LN2_LO64, r)
    q = _fmuladd(_Q64_9, r, _Q64_8)
    q = _fmuladd(q, r, _Q64_7)
    q = _fmuladd(q, r, _Q64_6)
    q = _fmuladd(q, r, _Q64_5)
    q = _fmuladd(q, r, _Q64_4)
    q = _fmuladd(q, r, _Q64_3)
    q = _fmuladd(q, r, _Q64_2)
    q = _fmuladd(q, r, _Q64_1)
    q = _fmuladd(q, r, _Q64_0)
    p = _fmuladd(r * r, q, r) + 1.0
    # p * 2**n by adding n to p's exponent field; n is in [-1022, 1024]
    # and the biased exponent of the result stays in [1, 2046].
    result = _int64_as_float64(_float64_as_int64(p) + (n << 52))
    result = 0.0 if underflow else result
    return x + _INF if overflow_or_nan else result


@njit(cache=True)
def exp_inplace64(a):
    """Replace each element of a 1-D float64 array by its exponential.

    This is the loop shape that vectorises: a counted loop, one ``exp64``
    per element, result stored back; nothing that can branch out.
    """
    for i in range(a.shape[0]):
        a[i] = exp64(a[i])


# --------------------------------------------------------------------------
# float32 (computed in float32 throughout: 16 lanes per AVX-512 register)
# --------------------------------------------------------------------------

# All constants are np.float32 so numba types the arithmetic as float32
# (a Python float literal would promote every operation to float64).
# Limits as for float64: _LO32 is the smallest float32 above -126*ln2,
# _OVF32 the largest float32 whose exp rounds to a finite float32.
_LO32 = np.float32(-87.33654)
_OVF32 = np.float32(88.72283)
_INF32 = np.float32(np.inf)
_LOG2E32 = np.float32(1.4426950408889634)
_SHIFT32 = np.float32(12582912.0)  # 1.5 * 2**23
_SHIFT32_BITS = int(_SHIFT32.view(np.int32))
# Cody-Waite split of ln 2 (Cephes): _LN2_HI32 has 15 trailing zero bits.
_LN2_HI32 = np.float32(0.693359375)
_LN2_LO32 = np.float32(-2.12194440e-4)
# q(r) ~= (exp(r) - 1 - r) / r**2, Chebyshev fit, error 8.4e-9 in exp(r).
_Q32_0 = np.float32(0.5)
_Q32_1 = np.float32(0.16666573286056519)
_Q32_2 = np.float32(0.04166654869914055)
_Q32_3 = np.float32(0.008363774046301842)
_Q32_4 = np.float32(0.0013926926767453551)
_ONE32 = np.float32(1.0)
_ZERO32 = np.float32(0.0)


@njit(cache=True)
def exp32(x):
    """Vectorisable ``exp`` of a float32 scalar.

    At most 1 ulp from ``float32(exp(float64(x)))`` (checked for every
    float32 input with a normal result).

    Parameters
    ----------
    x : float32

    Returns
    -------
    float32
        ``exp(x)``; exactly 0.0 when the true result is subnormal or zero
        (``x < -87.33654``, including ``-inf``); ``inf`` for
        ``x > 88.72283`` and ``+inf``; NaN for NaN.
    """
    underflow = x < _LO32
    overflow_or_nan = not (x <= _OVF32)
    x = _LO32 if underflow else x
    shifted = _fmuladd(x, _LOG2E32, _SHIFT32)
    n_float = shifted - _SHIFT32
    n = _float32_as_int32(shifted) - _SHIFT32_BITS
    r = _fmuladd(n_float, -_LN2_HI32, x)
    r = _fmuladd(n_float, -_LN2_LO32, r)
    q = _fmuladd(_Q32_4, r, _Q32_3)
    q = _fmuladd(q, r, _Q32_2)
    q = _fmuladd(q, r, _Q32_1)
    q = _fmuladd(q, r, _Q32_0)
    p = _fmuladd(r * r, q, r) + _ONE32
    # p * 2**n by adding n to p's exponent field; n is in [-126, 128].
    result = _int32_as_float32(_float32_as_int32(p) + (n << 23))
    result = _ZERO32 if underflow else result
    return x + _INF32 if overflow_or_nan else result


@njit(cache=True)
def exp_inplace32(a):
    """Replace each element of a 1-D float32 array by its exponential."""
    for i in range(a.shape[0]):
        a[i] = exp32(a[i])


# --------------------------------------------------------------------------
# Slow, obviously correct twins: the same loops calling libm's exp through
# np.exp (a scalar call per element, not vectorised).  Used as the oracle
# in tests and as the baseline in benchmarks/bench_exp.py.
# --------------------------------------------------------------------------


@njit(cache=True)
def _libm_exp_inplace64(a):
    """``exp_inplace64`` with ``np.exp`` (libm ``exp``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.exp(a[i])


@njit(cache=True)
def _libm_exp_inplace32(a):
    """``exp_inplace32`` with ``np.exp`` (libm ``expf``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.exp(a[i])
