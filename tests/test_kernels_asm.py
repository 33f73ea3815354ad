"""The machine code of the block kernels, built for named x86 CPUs whatever this host is.

numba compiles for the CPU named by NUMBA_CPU_NAME / NUMBA_CPU_FEATURES; a
fresh process with them set (and an empty cache) compiles the kernels for
that CPU without running them, and the assembly is read back. Checked for
an AVX-512 Xeon ('skylake-avx512') and an AVX2 EPYC ('znver3', no AVX-512):
the AVX-512 build does its floating-point arithmetic in 512-bit zmm
registers, the AVX2 build in 256-bit ymm registers with FMA (and no zmm),
and neither calls libm (exp and log are fastem's own, vectorised).
"""

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.uname().machine not in ("x86_64", "AMD64"), reason="x86 targets"
)

SCRIPT = r"""
import json, sys
import numpy as np
from numba import typeof
from fastem import _kernels_estep

def signature(*args):
    return tuple(typeof(arg) for arg in args)

out = {}
for name, dtype in (("dense_statistics_blocks", np.float64),
                    ("diagonal_statistics_blocks", np.float32)):
    kernel = getattr(_kernels_estep, name)
    n, d, k = 512, 8, 4
    X = np.zeros((n, d), dtype)
    if name.startswith("dense"):
        means, factors = _kernels_estep.pad_dense(np.zeros((k, d), dtype),
                                                  np.zeros((k, d, d), dtype))
        width = factors.shape[1]
        parts = (np.zeros((2, k)), np.zeros((2, k, width)), np.zeros((2, k, width, width)))
    else:
        means, factors = np.zeros((k, d), dtype), np.zeros((k, d), dtype)
        parts = (np.zeros((2, k)), np.zeros((2, k, d)), np.zeros((2, k, d)))
    args = (X, np.ones(n), means, factors, np.zeros(k), 256, *parts, np.zeros((2, 3)),
            _kernels_estep.STATISTICS_ONLY, 0, 2)
    sig = signature(*args)
    kernel.compile(sig)  # compiled, never run: the host may lack the target's instructions
    out[name] = kernel.inspect_asm(sig)
json.dump(out, sys.stdout)
"""

TARGETS = {
    # name: (NUMBA_CPU_NAME, vector registers the arithmetic must use, registers it must not)
    "avx512-xeon": ("skylake-avx512", "zmm", None),
    "avx2-epyc": ("znver3", "ymm", "zmm"),
}


@pytest.fixture(scope="module", params=sorted(TARGETS))
def assembly(request, tmp_path_factory):
    cpu, wide, forbidden = TARGETS[request.param]
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="",
               NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp(f"numba-{cpu}")))
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return request.param, wide, forbidden, json.loads(result.stdout)


def vector_fma(asm, register):
    return re.findall(rf"\tvfn?m(?:add|sub)\w*p[sd]\t[^\n]*%{register}", asm)


@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernel_arithmetic_uses_the_targets_widest_vectors(assembly, kernel):
    target, wide, forbidden, listings = assembly
    asm = listings[kernel]
    assert len(vector_fma(asm, wide)) >= 8, f"{target}: few {wide} FMAs in {kernel}"
    if forbidden is not None:
        assert not re.search(rf"%{forbidden}\d", asm), f"{target}: {forbidden} in {kernel}"


@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernel_calls_no_libm(assembly, kernel):
    target, _, _, listings = assembly
    calls = re.findall(r"\tcall[lq]?\t([^\n]*)", listings[kernel])
    libm = [call for call in calls if re.search(r"\b(exp|log|pow)f?\b", call)]
    assert not libm, f"{target}: {kernel} calls {libm}"
