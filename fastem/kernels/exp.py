"""Vectorisable ``exp`` and ``log`` for numba kernels.

Inside an ``@njit`` loop ``np.exp``/``math.exp`` is a call into libm (2-7
ns per element on the build machine), and because LLVM cannot widen an
opaque call it also stops the whole loop from being vectorised.  The N*K
exponentials of the E-step then dominate the run time.  The functions here
use only operations LLVM's loop vectoriser can widen (multiply-add,
compare/select, integer add/shift, bitcast), so a loop such as::

    for i in range(n):
        out[i] = exp64(log_resp[i])

compiles to AVX-512 code (8 doubles or 16 floats per instruction on this
project's build machine, about 26 resp. 21 instructions per vector
iteration)
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
   (Chebyshev fit; degree 9 for float64, degree 4 for float32) in
   ``llvm.fmuladd``: by Horner's rule for float32. For float64 ``q`` is
   evaluated as two chains in ``r**2``, one of the even and one of the odd
   coefficients, joined by ``q = even + r * odd``: as many multiply-adds as
   Horner's rule (nine, and ``r**2``, which step 4 needs anyway) but five
   deep instead of nine. It replaced two schemes chosen by the build's vector
   registers: Horner's rule (32, AVX-512 and AArch64) and Estrin's scheme
   (16, AVX2; pairs, then ``r**2``, ``r**4``, ``r**8``: four deep, three
   multiplies more). A loop of exps alone is bound by its instruction count
   with 32 registers (Estrin 1.19x Horner's time on an AVX-512 Zen 4 EPYC) and
   by the chain with 16 (Estrin faster on an AVX2 Zen 3 EPYC); the E-step's
   loop, which also sums the exps and their entropy terms, waits on the chain
   on both. Measured on a Zen 4 (loops of 4,096 values alternated in one
   process, 15 rounds; one E-step pass, one thread, N/2, after five
   iterations, ``benchmarks/estep_ab.py --checkouts``, 21 rounds): the exp
   loop 0.665 ns per value against Horner's 0.667 and Estrin's 0.819 with
   the AVX-512 build, 1.146 against 1.285 and 1.153 with the AVX2 build
   ('znver3'); the E-step pass 0.977x the time of Horner's rule on P1,
   0.988x on P2 and 0.984x on P5 (AVX-512; Estrin 0.99-0.995x), and
   0.989x, 0.973-1.023x and 0.997x that of Estrin's scheme (AVX2): never
   slower than the scheme it replaced. One scheme on every build, so every
   build compiles and rounds the same exp. Largest error 1.05 ulp against
   mpmath (1.039, 250,000 points), at most 1 ulp from ``np.exp``.
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
float64 at most 1 ulp from ``np.exp`` and at most 1.05 ulp from the exact
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

Kernels written once for both dtypes call ``exp_typed``/``log_typed``:
overloads that resolve, when the caller is compiled, to ``exp32``/``log32``
for a float32 argument and to ``exp64``/``log64`` otherwise (the overloads
themselves are inlined; the call they leave is the plain function's).

Without the overflow handling
------------------------------
The E-step's exps are of a log-probability minus the largest of its point's,
never positive. ``exp_nonpositive64``/``exp_nonpositive32`` (and
``exp_nonpositive_typed``) give ``exp64``'s/``exp32``'s bits for every argument
``<= 0``, ``-inf`` and NaN (checked bit for bit in the tests) and leave out what only
a positive argument needs: the clamp from below (the unclamped arithmetic of an
argument below ``lo`` gives an infinity, NaN or garbage, never a trap, which the
underflow select discards), the overflow comparison and its select: three of about
23 vector instructions. One E-step pass, one thread, N/2, after five iterations, in
alternation with c7e78e1 (``benchmarks/estep_ab.py --checkouts``, 21 rounds,
Zen 4): float64 / float32 P1 0.951 / 0.923, P2 0.983 / 0.968, P5 0.973 / 0.964 the
time with the AVX-512 build; P1 0.907 / 0.933 and P5 0.957 / 0.953 with the AVX2
build ('znver3'), whose P2 moved with the harness's order (0.835 with c7e78e1
timed first, 1.058 with it second). For a positive argument the result is
undefined. The E-step calls ``exp_nonpositive_with_typed`` with the constants of
``exp_constants_typed``: float64's held as values before its loops
(``held_constants``), so LLVM keeps them in registers instead of broadcasting
each from memory per vector of points; the same bits.

The functions are plain ``@njit``, not ``inline="always"`` (but for the arithmetic
they share, ``_exp64_unselected`` and ``_exp32_unselected``).
Both vectorise (checked), but with plain ``njit`` LLVM inlines the
already-optimised function body from numba's cache (the cache stores
bitcode for this purpose), so it is compiled once here instead of being
re-typed inside every caller.

No ``fastmath`` flags are used.  The only relaxation is ``llvm.fmuladd``
(the per-operation form of ``fastmath={'contract'}``): LLVM emits an FMA
where the target has one and a separate multiply and add where it does
not; both stay within 2 ulp.  The decorators say ``fastmath=False``
explicitly: numba would otherwise compile them with the flags of whichever
fastmath caller reached them first (see ``FASTMATH`` in
``fastem.kernels.estep``), so callers' settings do not change these functions.

log
---
``log64``/``log32`` (and the loops ``log_inplace64``/``log_inplace32``)
follow the same rules and vectorise the same way (AVX-512: 8 doubles or
16 floats per iteration, one vector division each).  Method: fdlibm/musl
``log`` without branches -- exponent and mantissa split from the bit
pattern with the mantissa in [sqrt(1/2), sqrt(2)), ``s = f / (2 + f)``
with ``f = m - 1``, an even polynomial in ``s**2``, and
``e*ln2_hi + (log(m) + e*ln2_lo)``.  The division is a bare LLVM ``fdiv``
(``_fdiv``): numba's ``/`` tests for a zero divisor to raise
``ZeroDivisionError``, and that branch alone stops the vectoriser.

Accuracy: float64 true error at most 0.80 ulp (mpmath sample), at most 1
ulp from ``np.log``; float32 true error at most 0.86 ulp over every
positive finite float32.  Subnormal inputs are exact as well (scaled by
2**54 resp. 2**25 through a select, not flushed).  Special values:
``log(+-0) == -inf``, ``log(x < 0) == nan`` (including ``-inf``),
``log(nan)`` is NaN, ``log(+inf) == inf``, ``log(1) == +0.0`` exactly.
"""

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from fastem.kernels.cache import CACHE
from fastem.kernels.vector import prefer_512_bit_vectors

__all__ = [
    "EXP32_CONSTANTS",
    "EXP64_CONSTANTS",
    "exp32",
    "exp64",
    "exp_constants_typed",
    "exp_inplace32",
    "exp_inplace64",
    "exp_nonpositive32",
    "exp_nonpositive32_with",
    "exp_nonpositive64",
    "exp_nonpositive64_with",
    "exp_nonpositive_typed",
    "exp_nonpositive_with_typed",
    "exp_typed",
    "held_constants",
    "log32",
    "log64",
    "log_inplace32",
    "log_inplace64",
    "log_typed",
    "reciprocal32",
    "reciprocal64",
    "reciprocal_typed",
]


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


@intrinsic
def _fdiv(typingctx, a, b):
    """``a / b`` as a bare LLVM ``fdiv``.

    numba's ``/`` checks for a zero divisor to raise ``ZeroDivisionError``;
    that branch stops the loop vectoriser.  Here division by zero gives the
    IEEE result (inf or NaN).  Both arguments must have the same float type.
    """
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])

    return a(a, a), codegen


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


# The helper below (and _exp32_unselected) has two callers, exp64 and
# exp_nonpositive64, and is inlined by numba (inline="always"): each caller is
# compiled once and inlined into the kernels from the cache, so the helper adds no
# compile of its own. exp64's helpers as plain njit functions (each a compile of its
# own) made a first exp64 loop compile in 0.56-0.62 s instead of 0.46-0.47 (fresh
# processes, three each, AVX-512 Zen 4).
# The float64 exp's constants in the order _exp64_unselected takes them.
EXP64_CONSTANTS = (_LOG2E64, _SHIFT64, -_LN2_HI64, -_LN2_LO64, _Q64_0, _Q64_1, _Q64_2,
                   _Q64_3, _Q64_4, _Q64_5, _Q64_6, _Q64_7, _Q64_8, _Q64_9, 1.0, _LO64)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", inline="always")
def _exp64_unselected(x, c):
    """Steps 1-4 of the module docstring: exp(x) for x in [lo, ovf]; anything
    (not a trap) outside, which the callers' selects discard. ``c``:
    EXP64_CONSTANTS, or the same values held (see held_constants)."""
    shifted = _fmuladd(x, c[0], c[1])
    n_float = shifted - c[1]
    n = _float64_as_int64(shifted) - _SHIFT64_BITS
    r = _fmuladd(n_float, c[2], x)
    r = _fmuladd(n_float, c[3], r)
    # q(r) in two chains of r**2, the even and the odd coefficients (step 3)
    r2 = r * r
    even = _fmuladd(c[12], r2, c[10])
    odd = _fmuladd(c[13], r2, c[11])
    even = _fmuladd(even, r2, c[8])
    odd = _fmuladd(odd, r2, c[9])
    even = _fmuladd(even, r2, c[6])
    odd = _fmuladd(odd, r2, c[7])
    even = _fmuladd(even, r2, c[4])
    odd = _fmuladd(odd, r2, c[5])
    q = _fmuladd(odd, r, even)
    p = _fmuladd(r2, q, r) + c[14]
    # p * 2**n by adding n to p's exponent field; for x in [lo, ovf] n is in
    # [-1022, 1024] and the biased exponent of the result stays in [1, 2046].
    return _int64_as_float64(_float64_as_int64(p) + (n << 52))


# exp64: vectorisable ``exp`` of a float64 scalar (max error 1.05 ulp), for a call
# inside a counted loop over contiguous memory, which LLVM inlines and vectorises
# (see the module docstring for the pattern). ``exp(x)``; exactly 0.0 when the true
# result is subnormal or zero (``x < -708.3964185322641``, including ``-inf``);
# ``inf`` for ``x > 709.782712893384`` and ``+inf``; NaN for NaN.
@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp64(x):
    """exp of a float64 scalar (module docstring, steps 1-5)."""
    underflow = x < _LO64
    # "not <=" is also true for NaN, which then leaves through x + inf.
    overflow_or_nan = not (x <= _OVF64)
    # Clamp from below (no arithmetic on huge negative values); the selects
    # at the end discard the lanes that were clamped or overflow.
    result = _exp64_unselected(_LO64 if underflow else x, EXP64_CONSTANTS)
    result = 0.0 if underflow else result
    return x + _INF if overflow_or_nan else result


# exp_nonpositive64_with: exp_nonpositive64 with its constants passed in. Compiled on
# its own and inlined by LLVM, as the other exps are (inlined by numba into the
# overload of exp_nonpositive_with_typed, it gave a NumbaIRAssumptionWarning).
@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp_nonpositive64_with(x, c):
    """exp_nonpositive64 with its constants ``c`` passed in (EXP64_CONSTANTS, or the
    same values held, see held_constants): the same bits."""
    # For x < lo (or -inf) the unclamped arithmetic gives garbage, an infinity
    # or NaN, never a trap or a subnormal operand; the select discards it. NaN
    # propagates through it (NaN < lo is false).
    result = _exp64_unselected(x, c)
    return 0.0 if x < c[15] else result


# exp_nonpositive64: exp64 for an argument known not to be positive, such as a
# log-probability minus the largest of its point's (the E-step's exps): the same
# bits as exp64 for every x <= 0, -inf and NaN, without the clamp and the
# overflow select, which such an argument never needs.
@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp_nonpositive64(x):
    """exp64(x) for x <= 0 (or -inf, or NaN); undefined for x > 0."""
    return exp_nonpositive64_with(x, EXP64_CONSTANTS)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
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


# The float32 exp's constants in the order _exp32_unselected takes them (as
# EXP64_CONSTANTS for float64).
EXP32_CONSTANTS = (_LOG2E32, _SHIFT32, -_LN2_HI32, -_LN2_LO32, _Q32_0, _Q32_1, _Q32_2,
                   _Q32_3, _Q32_4, _ONE32, _LO32)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", inline="always")
def _exp32_unselected(x, c):
    """exp32's steps 1-4: exp(x) for x in [lo, ovf]; anything outside. ``c``:
    EXP32_CONSTANTS, or the same values held (see held_constants)."""
    shifted = _fmuladd(x, c[0], c[1])
    n_float = shifted - c[1]
    n = _float32_as_int32(shifted) - _SHIFT32_BITS
    r = _fmuladd(n_float, c[2], x)
    r = _fmuladd(n_float, c[3], r)
    q = _fmuladd(c[8], r, c[7])
    q = _fmuladd(q, r, c[6])
    q = _fmuladd(q, r, c[5])
    q = _fmuladd(q, r, c[4])
    p = _fmuladd(r * r, q, r) + c[9]
    # p * 2**n by adding n to p's exponent field; n is in [-126, 128] in range.
    return _int32_as_float32(_float32_as_int32(p) + (n << 23))


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
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
    result = _exp32_unselected(_LO32 if underflow else x, EXP32_CONSTANTS)
    result = _ZERO32 if underflow else result
    return x + _INF32 if overflow_or_nan else result


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp_nonpositive32_with(x, c):
    """exp_nonpositive32 with its constants ``c`` passed in (EXP32_CONSTANTS, or the
    same values held, see held_constants): the same bits."""
    result = _exp32_unselected(x, c)
    return _ZERO32 if x < c[10] else result


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp_nonpositive32(x):
    """exp32(x) for x <= 0 (or -inf, or NaN), the same bits without the clamp
    and the overflow select (see exp_nonpositive64); undefined for x > 0."""
    return exp_nonpositive32_with(x, EXP32_CONSTANTS)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def exp_inplace32(a):
    """Replace each element of a 1-D float32 array by its exponential."""
    for i in range(a.shape[0]):
        a[i] = exp32(a[i])


# --------------------------------------------------------------------------
# log (float64 and float32)
# --------------------------------------------------------------------------
#
# Algorithm (fdlibm/musl ``log``/``logf`` without their branches):
# 1. Subnormal x is multiplied by 2**54 (2**25 for float32) by a select and
#    the exponent corrected afterwards, so the bit split below sees a normal
#    number.
# 2. Subtracting the bit pattern of sqrt(1/2) from that of x and shifting
#    right gives the exponent e with x = 2**e * m, m in [sqrt(1/2), sqrt(2));
#    the mantissa bits plus sqrt(1/2)'s bits are m.  e is read as a float
#    with the same shifter trick as exp (no int -> float conversion, which
#    AVX2 lacks for int64).
# 3. f = m - 1 (exact), s = f / (2 + f), log(m) = f - f**2/2 + s*(f**2/2 + R)
#    with R(s**2) an even polynomial (musl's Lg1..Lg7 resp. Lg1..Lg4; error
#    below 2**-58.45 resp. 2**-34.24 in R).  One division per element, by
#    ``_fdiv`` (numba's ``/`` would branch on a zero divisor).
# 4. log(x) = e*ln2_hi + (log(m) + e*ln2_lo), with e*ln2_hi exact.
# 5. Special values by selects: x == 0 -> -inf, x < 0 -> NaN, +inf and NaN
#    -> x + x (inf resp. the NaN); log(1) is exactly +0.0 (f = s = e = 0).

_TINY64 = 2.2250738585072014e-308  # smallest normal float64
_TWO54 = 18014398509481984.0
_SQRT_HALF64_BITS = 0x3FE6A09E667F3BCD  # float64 sqrt(1/2)
_MANTISSA64_MASK = 0x000FFFFFFFFFFFFF
_NAN = np.nan
# musl/fdlibm log.c: log(m) = 2s + s*R(s**2) with s = f/(2+f); R is
# Lg1*z + ... + Lg7*z**7 (Remez, |error| < 2**-58.45), split in even/odd
# halves t1, t2 for parallel evaluation.
_LG64_1 = 6.666666666666735130e-01
_LG64_2 = 3.999999999940941908e-01
_LG64_3 = 2.857142874366239149e-01
_LG64_4 = 2.222219843214978396e-01
_LG64_5 = 1.818357216161805012e-01
_LG64_6 = 1.531383769920937332e-01
_LG64_7 = 1.479819860511658591e-01


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def log64(x):
    """Vectorisable natural log of a float64 scalar (max error 0.8 ulp).

    Call it inside a counted loop over contiguous memory, as ``exp64``.

    Parameters
    ----------
    x : float64

    Returns
    -------
    float64
        ``log(x)``; ``-inf`` for ``+-0.0``, NaN for ``x < 0`` (including
        ``-inf``) and NaN, ``+inf`` for ``+inf``, exactly ``0.0`` for 1.
        Subnormal ``x`` is handled exactly like normal ``x``.
    """
    subnormal = x < _TINY64
    scaled = x * _TWO54 if subnormal else x
    bits = _float64_as_int64(scaled) - _SQRT_HALF64_BITS
    # e as a float: (bits >> 52) added into the low mantissa of the shifter.
    e = _int64_as_float64((bits >> 52) + _SHIFT64_BITS) - _SHIFT64
    e = e - 54.0 if subnormal else e
    m = _int64_as_float64((bits & _MANTISSA64_MASK) + _SQRT_HALF64_BITS)
    f = m - 1.0
    s = _fdiv(f, 2.0 + f)
    z = s * s
    w = z * z
    t1 = w * _fmuladd(w, _fmuladd(w, _LG64_6, _LG64_4), _LG64_2)
    t2 = _fmuladd(w, _fmuladd(w, _LG64_7, _LG64_5), _LG64_3)
    t2 = z * _fmuladd(w, t2, _LG64_1)
    half_f_squared = 0.5 * f * f
    # s*(hfsq + R) + e*ln2_lo - hfsq, then + f and + e*ln2_hi (musl's order)
    log_m = _fmuladd(
        s, half_f_squared + (t2 + t1), _fmuladd(e, _LN2_LO64, -half_f_squared)
    )
    result = _fmuladd(e, _LN2_HI64, log_m + f)
    result = -_INF if x == 0.0 else result
    result = _NAN if x < 0.0 else result
    # "not <" is true for +inf and NaN: x + x is inf resp. the NaN.
    return x + x if not (x < _INF) else result


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def log_inplace64(a):
    """Replace each element of a 1-D float64 array by its natural log."""
    for i in range(a.shape[0]):
        a[i] = log64(a[i])


_EXPONENT64_BIAS = 1023
_ONE64_BITS = 0x3FF0000000000000  # float64 1.0


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy", inline="always")
def log_of_product64(values):
    """log(values[0] * values[1] * ...) for positive normal float64 values whose
    product may overflow, with one log: each value is split into its mantissa
    in [1, 2) and its binary exponent (bit operations, exact), the mantissas
    are multiplied (at most 2**n for n values: finite for n < 1024) and the
    exponents added (exact integers), then log(mantissas) + exponents * ln 2
    (ln 2 split in two, as in log64, so that the second term loses nothing).

    It replaced a log64 per value in _add_tile_sums (16 per tile): LLVM unrolled
    that loop of 16 and left each log scalar, with its division, about 10% of
    P1's kernel samples on an Intel Xeon. Subnormal, zero, negative and
    non-finite values are not handled."""
    prefer_512_bit_vectors()
    mantissas = 1.0
    exponents = 0
    for value in values:
        bits = _float64_as_int64(value)
        exponents += (bits >> 52) - _EXPONENT64_BIAS
        mantissas *= _int64_as_float64((bits & _MANTISSA64_MASK) | _ONE64_BITS)
    scale = np.float64(exponents)
    return log64(mantissas) + (scale * _LN2_HI64 + scale * _LN2_LO64)


_TINY32 = np.float32(1.1754943508222875e-38)  # smallest normal float32
_TWO25 = np.float32(33554432.0)
_TWENTY_FIVE32 = np.float32(25.0)
_SQRT_HALF32_BITS = 0x3F3504F3  # float32 sqrt(1/2)
_MANTISSA32_MASK = 0x007FFFFF
_NAN32 = np.float32(np.nan)
_HALF32 = np.float32(0.5)
_TWO32 = np.float32(2.0)
# musl logf.c: |error in R| < 2**-34.24, and the ln 2 split of fdlibm's
# logf (_LN2_HI32_LOG = 0x3f317180 has 17 significant bits: e * hi is exact
# for |e| < 128; the final multiply-add is fused on FMA machines anyway).
_LG32_1 = np.float32(0.66666662693)  # 0xaaaaaa.0p-24
_LG32_2 = np.float32(0.40000972152)  # 0xccce13.0p-25
_LG32_3 = np.float32(0.28498786688)  # 0x91e9ee.0p-25
_LG32_4 = np.float32(0.24279078841)  # 0xf89e26.0p-26
_LN2_HI32_LOG = np.float32(6.9313812256e-01)
_LN2_LO32_LOG = np.float32(9.0580006145e-06)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def log32(x):
    """Vectorisable natural logarithm of a float32 scalar.

    Computed in float32 throughout (16 lanes per AVX-512 register).

    Parameters
    ----------
    x : float32

    Returns
    -------
    float32
        ``log(x)``; ``-inf`` for ``+-0.0``, NaN for ``x < 0`` (including
        ``-inf``) and NaN, ``+inf`` for ``+inf``, exactly ``0.0`` for 1.
        Subnormal ``x`` is handled exactly like normal ``x``.
    """
    subnormal = x < _TINY32
    scaled = x * _TWO25 if subnormal else x
    bits = _float32_as_int32(scaled) - _SQRT_HALF32_BITS
    e = _int32_as_float32((bits >> 23) + _SHIFT32_BITS) - _SHIFT32
    e = e - _TWENTY_FIVE32 if subnormal else e
    m = _int32_as_float32((bits & _MANTISSA32_MASK) + _SQRT_HALF32_BITS)
    f = m - _ONE32
    s = _fdiv(f, _TWO32 + f)
    z = s * s
    w = z * z
    t1 = w * _fmuladd(w, _LG32_4, _LG32_2)
    t2 = z * _fmuladd(w, _LG32_3, _LG32_1)
    half_f_squared = _HALF32 * f * f
    log_m = _fmuladd(
        s, half_f_squared + (t2 + t1), _fmuladd(e, _LN2_LO32_LOG, -half_f_squared)
    )
    result = _fmuladd(e, _LN2_HI32_LOG, log_m + f)
    result = -_INF32 if x == _ZERO32 else result
    result = _NAN32 if x < _ZERO32 else result
    return x + x if not (x < _INF32) else result


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def log_inplace32(a):
    """Replace each element of a 1-D float32 array by its natural log."""
    for i in range(a.shape[0]):
        a[i] = log32(a[i])


# --------------------------------------------------------------------------
# Reciprocals
# --------------------------------------------------------------------------


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def reciprocal64(x):
    """Vectorisable 1 / x of a float64 whose float32 rounding is a normal number
    (2**-126 <= x < 2**128), within an ulp of the division.

    A float32 division (24 bits) refined by two Newton steps r + r (1 - x r),
    each by two multiply-adds (48 bits, then all 53). A float64 division by a
    512-bit vector is issued once per 16 cycles on Intel's AVX-512 cores (and
    not much faster elsewhere), and the E-step divides once per point: in
    _responsibilities the divisions of a P1 tile were about 9% of its kernel
    samples on an Intel Xeon, which stalled on them. A float32 division of 8
    lanes (a ymm) goes about three times as fast.
    """
    estimate = np.float64(_fdiv(np.float32(1.0), np.float32(x)))
    estimate = _fmuladd(estimate, _fmuladd(-x, estimate, 1.0), estimate)
    return _fmuladd(estimate, _fmuladd(-x, estimate, 1.0), estimate)


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def reciprocal32(x):
    """1 / x of a float32 by one float32 division (IEEE: inf for 0)."""
    return _fdiv(np.float32(1.0), x)


# --------------------------------------------------------------------------
# In the argument's own precision: exp32/log32 for float32, exp64/log64
# otherwise, chosen when the caller is compiled (one kernel body serves both
# dtypes, and float32 data keeps 16 lanes per vector).
# --------------------------------------------------------------------------


def _in_own_precision(name, single, double):
    """A function of one float that calls ``single`` on a float32 argument and
    ``double`` otherwise, in Python and, chosen at compile time, in kernels."""

    def typed(x):
        return single(x) if isinstance(x, np.float32) else double(x)

    typed.__name__ = typed.__qualname__ = name
    typed.__doc__ = (
        f"``{name.split('_')[0]}`` in the precision of ``x``: "
        f"{single.__name__} for float32, {double.__name__} for float64."
    )

    @overload(typed, inline="always")
    def _compiled(x):
        function = single if x == types.float32 else double
        return lambda x: function(x)

    return typed


# Where an empty inline asm can hold a float64 value (see held_constants): x86's
# vector registers ("x"). numba compiles for the host's architecture.
_HOLDS_IN_ASM = llvm.get_process_triple().startswith(("x86_64", "i386", "i686"))


@intrinsic
def held_constants(typingctx, values):
    """The float64 or float32 tuple ``values`` (constants), each passed through an
    empty inline asm on x86, so that LLVM sees values it cannot fold back into
    constants; elsewhere the values as they are.

    Called once before a loop of exps (exp_nonpositive64_with), it makes LLVM
    broadcast the exp's 16 constants into vector registers once before the loop
    (or keep them on the stack, where a multiply-add reads them as an operand)
    instead of broadcasting each from memory in every iteration, as it did as
    constants with 16 vector registers (AVX2): in P1's exp loop 14 of its 48
    instructions per four points were such broadcasts and 5 more their addresses.
    The asm is outside the loop, so the loop still vectorises (inside it, the
    loop stayed scalar). The same arithmetic on the same values: the same bits.
    The float32 exp's loop in the AVX2 build (P2) had 11 such broadcasts and 2
    addresses in its 36 instructions per eight points.
    """
    if not (isinstance(values, types.UniTuple)
            and values.dtype in (types.float64, types.float32)):
        return None
    single = values.dtype == types.float32

    def codegen(context, builder, signature, args):
        if not _HOLDS_IN_ASM:
            return args[0]
        value_type = ir.FloatType() if single else ir.DoubleType()
        hold = ir.InlineAsm(ir.FunctionType(value_type, [value_type]), "", "=x,0",
                            side_effect=False)
        result = args[0]
        for index in range(values.count):
            value = builder.extract_value(args[0], index)
            result = builder.insert_value(result, builder.call(hold, [value]), index)
        return result

    return values(values), codegen


def exp_constants_typed(x):
    """The exp constants that exp_nonpositive_with_typed takes for data like ``x``:
    EXP32_CONSTANTS for float32, EXP64_CONSTANTS otherwise, held (held_constants)
    in compiled code."""
    return EXP32_CONSTANTS if isinstance(x, np.float32) else EXP64_CONSTANTS


@overload(exp_constants_typed, inline="always")
def _exp_constants_compiled(x):
    if x == types.float32:
        return lambda x: held_constants(EXP32_CONSTANTS)
    return lambda x: held_constants(EXP64_CONSTANTS)


def exp_nonpositive_with_typed(x, constants):
    """exp_nonpositive_typed(x), with the constants of exp_constants_typed."""
    if isinstance(x, np.float32):
        return exp_nonpositive32_with(x, constants)
    return exp_nonpositive64_with(x, constants)


@overload(exp_nonpositive_with_typed, inline="always")
def _exp_nonpositive_with_compiled(x, constants):
    if x == types.float32:
        return lambda x, constants: exp_nonpositive32_with(x, constants)
    return lambda x, constants: exp_nonpositive64_with(x, constants)


exp_typed = _in_own_precision("exp_typed", exp32, exp64)
exp_nonpositive_typed = _in_own_precision("exp_nonpositive_typed", exp_nonpositive32,
                                           exp_nonpositive64)
log_typed = _in_own_precision("log_typed", log32, log64)
reciprocal_typed = _in_own_precision("reciprocal_typed", reciprocal32, reciprocal64)


# --------------------------------------------------------------------------
# Slow, obviously correct twins: the same loops calling libm's exp through
# np.exp (a scalar call per element, not vectorised).  Used as the oracle
# in tests and as the baseline in benchmarks/bench_exp.py.
# --------------------------------------------------------------------------


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _libm_exp_inplace64(a):
    """``exp_inplace64`` with ``np.exp`` (libm ``exp``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.exp(a[i])


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _libm_exp_inplace32(a):
    """``exp_inplace32`` with ``np.exp`` (libm ``expf``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.exp(a[i])


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _libm_log_inplace64(a):
    """``log_inplace64`` with ``np.log`` (libm ``log``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.log(a[i])


@njit(cache=CACHE, nogil=True, fastmath=False, error_model="numpy")
def _libm_log_inplace32(a):
    """``log_inplace32`` with ``np.log`` (libm ``logf``) per element."""
    for i in range(a.shape[0]):
        a[i] = np.log(a[i])
