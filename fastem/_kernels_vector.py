"""Let LLVM use 512-bit vectors in the function that calls ``prefer_512_bit_vectors``.

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

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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
