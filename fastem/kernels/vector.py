"""What the kernels know of the CPU they are compiled for.

``prefer_512_bit_vectors``: let LLVM use 512-bit vectors in the calling function.
``vector_registers``: how many vector registers the target has (16 or 32), for
register blocks whose size must fit them.

The 512-bit preference:

LLVM's tuning for the Intel cores that have AVX-512 (Skylake-X through
Sapphire Rapids; this project's build machine reports itself as
'rocketlake') prefers 256-bit vectors: its loop vectoriser then widens a
float64 loop to 4 lanes, not 8, although the 512-bit registers and
instructions are there. The whole-program switch is numba's
``NUMBA_CPU_FEATURES`` with ``-prefer-256-bit`` appended, which a library
cannot set for its users (it must be set before numba starts, and it changes
every numba function in the process). LLVM also reads the preference per
function, from the string attribute ``"prefer-vector-width"``; this
intrinsic adds that attribute to the function being compiled and emits no
code.

Call it at the top of every function with a loop to vectorise, helpers
included: a ``forceinline`` helper is compiled and optimised (its loops
vectorised) in its own LLVM module before it is inlined into its caller, so
the attribute must be on the helper itself. (Without it on the helpers, an
AVX-512 build of the dense statistics kernel had no zmm arithmetic at all:
tests/test_kernels_asm.py.)
The attribute only states a preference: on a CPU without AVX-512 the widest
legal vectors are still used, so the code stays portable, and the compiled
(cached) code records the CPU it was built for as before.

Measured (one fused E-step pass, N/4, one thread, median of 9), float64 /
float32 ms: P1 2.7 / 2.8 -> 2.3 / 2.2, P2 31.7 / 20.2 -> 27.3 / 18.7, P3
83.2 / 39.1 -> 78.0 / 38.4, P5 44.0 / 29.4 -> 39.9 / 25.9. The process-wide
switch measured less on P2 and P5 float64 (31.4 and 43.6 ms).
"""

import functools

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import codegen, config
from numba.extending import intrinsic, overload

PREFERRED_VECTOR_BITS = 512

_ATTRIBUTE = f'"prefer-vector-width"="{PREFERRED_VECTOR_BITS}"'


@intrinsic
def prefer_512_bit_vectors(typingctx):
    """Mark the calling (compiled) function as preferring 512-bit vectors."""

    def codegen(context, builder, signature, args):
        attributes = builder.function.attributes
        # llvmlite checks attribute names against the keyword attributes it
        # knows; a string attribute ("key"="value") is written as given.
        set.add(attributes, _ATTRIBUTE)
        return context.get_dummy_value()

    return types.none(), codegen


def vector_registers():
    """Vector registers of the CPU numba compiles for: 32 with AVX-512 or on AArch64,
    else 16 (AVX2, SSE). A constant when compiled (see ``_vector_registers``).

    Register blocks that fit 32 registers may not fit 16: the 'diag' statistics pass
    over eight features keeps 16 sums, which an AVX2 build spilled to the stack, and
    its stores and reloads then stalled at times (P5 took 0.44-0.93 times as long
    with four features per pass; see _diagonal_block)."""
    return _vector_registers()


@functools.lru_cache(maxsize=None)
def _vector_registers():
    """Asks LLVM: a 512-bit vector addition compiled for numba's target (CPU name and
    features as numba takes them: NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, else the
    host's) uses zmm registers only with AVX-512. numba keys its cache on the same
    CPU name and features, so cached code and this answer agree."""
    triple = llvm.get_process_triple()
    if triple.startswith(("aarch64", "arm64")):
        return 32
    if not triple.startswith(("x86_64", "i386", "i686", "amd64")):
        return 16
    llvm.initialize_native_target()  # as numba's codegen does (idempotent)
    llvm.initialize_native_asmprinter()
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    features = (config.CPU_FEATURES if config.CPU_FEATURES is not None
                else codegen.get_host_cpu_features())
    module = llvm.parse_assembly(
        "define <8 x double> @add(<8 x double> %a, <8 x double> %b) {\n"
        "  %c = fadd <8 x double> %a, %b\n  ret <8 x double> %c\n}\n")
    machine = llvm.Target.from_triple(triple).create_target_machine(
        cpu=name, features=features, opt=0)
    return 32 if "zmm" in machine.emit_assembly(module) else 16


@overload(vector_registers, inline="always")
def _vector_registers_compiled():
    count = _vector_registers()
    return lambda: count
