"""fastem._kernels_vector: the per-function 512-bit vector preference."""

import inspect
import re

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from fastem import _kernels_estep
from fastem._kernels_vector import PREFERRED_VECTOR_BITS, prefer_512_bit_vectors

ATTRIBUTE = f'"prefer-vector-width"="{PREFERRED_VECTOR_BITS}"'


def _scaled_sum(wide):
    def scaled_sum(a, b, out):
        if wide:
            prefer_512_bit_vectors()
        for i in range(a.shape[0]):
            out[i] = 3.0 * a[i] + b[i]

    # cache=False: a cached function cannot be inspected.
    return njit(cache=False, error_model="numpy")(scaled_sum)


def _compiled(function):
    a = np.arange(64.0)
    out = np.empty_like(a)
    function(a, a, out)
    np.testing.assert_array_equal(out, 4.0 * a)  # the marker changes no result
    return function.signatures[0]


def _host_has_avx512():
    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


def test_marked_function_carries_the_attribute_and_others_do_not():
    wide, plain = _scaled_sum(True), _scaled_sum(False)
    wide_ir = wide.inspect_llvm(_compiled(wide))
    plain_ir = plain.inspect_llvm(_compiled(plain))
    # (the optimised module lists function attributes in attribute groups)
    assert ATTRIBUTE in wide_ir
    assert ATTRIBUTE not in plain_ir


@pytest.mark.skipif(not _host_has_avx512(), reason="the CPU has no AVX-512")
def test_marked_loop_is_vectorised_with_512_bit_registers():
    wide = _scaled_sum(True)
    asm = wide.inspect_asm(_compiled(wide))
    assert re.search(r"\tvfmadd\w*pd\t.*%zmm", asm) or re.search(r"\tvmulpd\t.*%zmm", asm)


BLOCK_FUNCTIONS = [
    "_dense_block", "_diagonal_block",
    "_dense_log_prob_block", "_diagonal_log_prob_block",
    "_dense_labels_block", "_diagonal_labels_block",
]


@pytest.mark.parametrize("name", BLOCK_FUNCTIONS)
def test_every_block_function_asks_for_512_bit_vectors(name):
    # The block functions are inlined (numba level) into the parallel loops and
    # into the compiled EM loop's block function, so the attribute lands on the
    # function LLVM vectorises. The compiled kernels are cached and cannot be
    # inspected; this checks the source instead.
    source = inspect.getsource(getattr(_kernels_estep, name).py_func)
    assert "prefer_512_bit_vectors()" in source


def test_every_block_function_is_listed():
    blocks = {
        name for name, value in vars(_kernels_estep).items()
        if name.endswith("_block") and hasattr(value, "py_func")
    }
    assert blocks == set(BLOCK_FUNCTIONS)
