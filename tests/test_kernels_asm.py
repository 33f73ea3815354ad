"""The machine code of the block kernels, built for named x86 CPUs whatever this host is.

numba compiles for the CPU named by NUMBA_CPU_NAME / NUMBA_CPU_FEATURES; a
fresh process with them set (and an empty cache) compiles the kernels for
that CPU without running them, and the assembly is read back. Checked for
an AVX-512 Xeon ('skylake-avx512') and an AVX2 EPYC ('znver3', no AVX-512):
the AVX-512 build does its floating-point arithmetic in 512-bit zmm
registers, the AVX2 build in 256-bit ymm registers with FMA (and no zmm),
and neither calls libm's exp or pow, nor log but once per block (the hot loops'
exp and log are fastem's own, vectorised); and each
build compiled only the helpers it runs (HELPERS_BY_BUILD).
"""

import json
import math
import os
import re
import subprocess
import sys

import background  # tests/background.py
import numpy as np
import pytest

x86_only = pytest.mark.skipif(
    os.uname().machine not in ("x86_64", "AMD64"), reason="x86 targets"
)

SCRIPT = r"""
import json, sys
import numpy as np
from numba import typeof
from numba.core.registry import CPUDispatcher
from fastem.kernels import estep as _kernels_estep

def signature(*args):
    return tuple(typeof(arg) for arg in args)

out = {}
for name, dtype in (("dense_statistics_blocks", np.float64),
                    ("diagonal_statistics_blocks", np.float32)):
    kernel = getattr(_kernels_estep, name)
    n, d, k = 512, 8, 4
    X = np.zeros((n, d), dtype)
    tile = _kernels_estep.statistics_tile(X)
    if name.startswith("dense"):
        means, factors = _kernels_estep.pad_dense(np.zeros((k, d), dtype),
                                                  np.zeros((k, d, d), dtype))
        width = factors.shape[1]
        parts = (np.zeros((2, k)), np.zeros((2, k, width)), np.zeros((2, k, width, width)))
        work = _kernels_estep.dense_tile_arrays(dtype, k, width, tile)
    else:
        means, factors = np.zeros((k, d), dtype), np.zeros((k, d), dtype)
        parts = (np.zeros((2, k)), np.zeros((2, k, d)), np.zeros((2, k, d)))
        work = _kernels_estep.diagonal_tile_arrays(dtype, k, d, tile)
    args = (X, np.ones(n), means, factors, np.zeros(k), 256, *parts, np.zeros((2, 3)),
            _kernels_estep.STATISTICS_ONLY, False, *work, 0, 2)
    sig = signature(*args)
    kernel.compile(sig)  # compiled, never run: the host may lack the target's instructions
    out[name] = kernel.inspect_asm(sig)
# the signatures each jitted function of the module was compiled for on the way
compiled = {name: len(value.signatures) for name, value in vars(_kernels_estep).items()
            if isinstance(value, CPUDispatcher)}
json.dump({"kernels": out, "compiled": compiled}, sys.stdout)
"""

TARGETS = {
    # name: (NUMBA_CPU_NAME, vector registers the arithmetic must use, registers it must not)
    "avx512-xeon": ("skylake-avx512", "zmm", None),
    "avx2-epyc": ("znver3", "ymm", "zmm"),
}


def kernels_script(body):
    """A script that compiles both block kernels (never runs them) and dumps, as JSON,
    ``body`` (an expression of ``kernel`` and ``sig``) for each (under "kernels"),
    and how many signatures each jitted function of the module was compiled for
    (under "compiled")."""
    return SCRIPT.replace("kernel.inspect_asm(sig)", body)


def compile_for(target, directory):
    """The block kernels' assembly for ``target``, compiled in a fresh process with an
    empty numba cache in ``directory``."""
    env = dict(os.environ, NUMBA_CPU_NAME=TARGETS[target][0], NUMBA_CPU_FEATURES="",
               NUMBA_CACHE_DIR=str(directory))
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # numba compiles the kernels without a warning (a user would see it on the first
    # call: nested numba-inlined helpers once gave a NumbaIRAssumptionWarning)
    assert "Warning" not in result.stderr, result.stderr[-3000:]
    return json.loads(result.stdout)


# Compiled in the background from the start of the session (tests/background.py).
@background.fixture
def avx512_xeon_assembly(directory):
    return compile_for("avx512-xeon", directory)


@background.fixture
def avx2_epyc_assembly(directory):
    return compile_for("avx2-epyc", directory)


@pytest.fixture(scope="module", params=sorted(TARGETS))
def assembly(request, avx512_xeon_assembly, avx2_epyc_assembly):
    _, wide, forbidden = TARGETS[request.param]
    listings = {"avx512-xeon": avx512_xeon_assembly, "avx2-epyc": avx2_epyc_assembly}
    return request.param, wide, forbidden, listings[request.param]["kernels"]


# Helpers only one build runs, with the number of signatures each build compiles:
# the kernels branch on VECTOR_REGISTERS / WIDEST_GROUP, module globals, so numba
# drops the other build's branch before typing it (fastem.kernels.estep).
HELPERS_BY_BUILD = {
    # name: (signatures in the AVX-512 build, in the AVX2 build)
    "_dense_scatter_4x4": (1, 0),
    "_dense_scatter_upper4": (1, 0),  # weighted or not: a bool, not two literals
    "_dense_scatter_4x2": (0, 1),
    "_dense_scatter_upper2": (0, 1),
    "_diagonal_distances": (2, 1),  # 8 and 4 features per pass, or 4
    "_diagonal_sums": (4, 3),  # 8, 4, 2, 1 features per pass, or 4, 2, 1
    # and, in both, none twice for a literal argument (see _diagonal_mahalanobis)
    "_add_up_lanes": (1, 1),
}


@x86_only
@pytest.mark.parametrize("name", sorted(HELPERS_BY_BUILD))
def test_each_build_compiles_only_the_helpers_it_runs(avx512_xeon_assembly,
                                                     avx2_epyc_assembly, name):
    compiled = (avx512_xeon_assembly["compiled"][name],
                avx2_epyc_assembly["compiled"][name])
    assert compiled == HELPERS_BY_BUILD[name]


def vector_fma(asm, register):
    return re.findall(rf"\tvfn?m(?:add|sub)\w*p[sd]\t[^\n]*%{register}", asm)


@x86_only
@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernel_arithmetic_uses_the_targets_widest_vectors(assembly, kernel):
    target, wide, forbidden, listings = assembly
    asm = listings[kernel]
    assert len(vector_fma(asm, wide)) >= 8, f"{target}: few {wide} FMAs in {kernel}"
    if forbidden is not None:
        assert not re.search(rf"%{forbidden}\d", asm), f"{target}: {forbidden} in {kernel}"


def called_math_functions(asm):
    """The exp, log and pow functions (libm's, or SVML's vector ones) that ``asm``
    names. numba's JIT code calls an external function through a register
    (``movabsq $exp, %r15`` then ``callq *%r15``), so the name is in the
    ``movabsq``, not in the ``call``; a direct ``call exp`` counts too."""
    names = re.findall(r"\tmovabsq\t\$([\w.]+),", asm)
    names += re.findall(r"\tcall[lq]?\t([\w.]+)", asm)
    return [name for name in names
            if re.fullmatch(r"(?:__svml_)?(?:exp|log|pow)(?:f|\d+\w*)?", name)]


@x86_only
@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernel_calls_no_libm(assembly, kernel):
    """No exp or pow from libm, and one log: -log(K), once per block (as the ARM64
    build, test_block_kernels_build_for_arm64_with_neon_fmas); the hot loops' exp and
    log are fastem's own polynomials."""
    target, _, _, listings = assembly
    called = called_math_functions(listings[kernel])
    assert called in ([], ["log"]), f"{target}: {kernel} calls {called}"


@x86_only
def test_called_math_functions_sees_calls_through_a_register():
    """The check above reads numba's own call sequence (a 'call' line alone names
    only the register)."""
    from numba import njit

    @njit(cache=False, error_model="numpy")
    def exp_and_log_sum(values):
        total = 0.0
        for i in range(values.shape[0]):
            total += math.exp(values[i]) + math.log(values[i] + 2.0)
        return total

    exp_and_log_sum(np.ones(3))
    asm = exp_and_log_sum.inspect_asm(exp_and_log_sum.signatures[0])
    assert {"exp", "log"} <= set(called_math_functions(asm))


@x86_only
@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_avx2_build_has_no_masked_stores(assembly, kernel):
    """AVX2 has masked stores only as vmaskmovps/pd, microcoded and slow on AMD's cores:
    LLVM emits them for a store made only where a condition holds, e.g. a running
    maximum updated in place (see fastem.kernels.estep._store_log_prob). The AVX2
    build had 75 masked stores and loads per kernel before; P1 took 15-27% longer for
    them."""
    target, _, _, listings = assembly
    stores = re.findall(r"\tvmaskmovp[sd]\t%ymm\d+, %ymm\d+, [^\n]*\(", listings[kernel])
    assert not stores, f"{target}: {len(stores)} masked stores in {kernel}"


@x86_only
@pytest.mark.parametrize("kernel",
                         ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernels_prefetch_the_next_tile(assembly, kernel):
    """_prefetch_next_tile's llvm.prefetch (read, locality 3) survives in both builds
    as a prefetch into every cache level (see fastem.kernels.vector.prefetch)."""
    target, _, _, listings = assembly
    assert re.search(r"\tprefetcht0\t", listings[kernel]), f"{target}: no prefetch"


# ARM64: numba compiles only for the host's architecture, so the kernels' LLVM IR
# (numba's lowering, unoptimised: NUMBA_OPT=0, helpers already inlined) is taken
# from this host, retargeted to AArch64 with llvmlite (its LLVM has the target)
# and optimised there at O3. That checks the source lowers to target-neutral IR
# (no x86 intrinsics) that builds for ARM64 and vectorises to NEON FMAs; it is
# not numba running on an ARM machine, which no session has had.
ARM64_RETARGET = r"""
import json, re, sys
import llvmlite.binding as llvm
llvm.initialize_all_targets()
llvm.initialize_all_asmprinters()
triple = "aarch64-unknown-linux-gnu"
machine = llvm.Target.from_triple(triple).create_target_machine(
    cpu="neoverse-n1", features="", opt=3, reloc="pic", codemodel="default")
out = {}
for name, ir in json.load(sys.stdin)["kernels"].items():
    x86_intrinsics = sorted(set(re.findall(r"llvm\.x86\.[\w.]+", ir)))
    ir = re.sub(r'target triple = ".*"', f'target triple = "{triple}"', ir)
    ir = re.sub(r'target datalayout = ".*"', f'target datalayout = "{machine.target_data}"', ir)
    ir = re.sub(r'"target-(?:cpu|features)"="[^"]*"', "", ir)
    module = llvm.parse_assembly(ir)
    module.verify()
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(3))
    builder.getModulePassManager().run(module, builder)
    out[name] = {"x86_intrinsics": x86_intrinsics, "asm": machine.emit_assembly(module)}
json.dump(out, sys.stdout)
"""


@background.fixture
def arm64_assembly(directory):
    """The block kernels' LLVM IR from a fresh process (empty numba cache in
    ``directory``), optimised and assembled for AArch64 in another."""
    env = dict(os.environ, NUMBA_OPT="0", NUMBA_CACHE_DIR=str(directory))
    # gather_nonzero's AVX-512 compress and AVX2 permute are x86's own (on such a
    # host): an ARM64 host builds its portable stores, so the IR taken here must
    # have them too
    portable = ("import fastem.kernels.vector as _vector\n"
                "_vector._compress_in_registers = lambda: False\n"
                "_vector._permute_in_registers = lambda: False\n"
                # the exp's constants held in x86 registers by an x86 inline asm
                "import fastem.kernels.exp as _exp\n"
                "_exp._HOLDS_IN_ASM = False\n")
    ir = subprocess.run([sys.executable, "-W", "ignore", "-c",
                         portable + kernels_script("kernel.inspect_llvm(sig)")],
                        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert ir.returncode == 0, ir.stderr[-3000:]
    result = subprocess.run([sys.executable, "-c", ARM64_RETARGET], input=ir.stdout,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("kernel", ["dense_statistics_blocks", "diagonal_statistics_blocks"])
def test_block_kernels_build_for_arm64_with_neon_fmas(arm64_assembly, kernel):
    listing = arm64_assembly[kernel]
    assert listing["x86_intrinsics"] == []
    asm = listing["asm"]
    assert len(re.findall(r"\tfml[as]\tv\d+\.(?:2d|4s)", asm)) >= 8, "few NEON FMAs"
    calls = re.findall(r"\tbl\t(\w+)", asm)
    # exp and log of the hot loops are fastem's own polynomials; the one log left is
    # -log(K), once per tile (the uniform responsibilities of an unexplained point)
    assert not [call for call in calls if re.fullmatch(r"(exp|pow)f?", call)], calls
    assert calls.count("log") + calls.count("logf") <= 1, calls
    # the next tile's prefetch (fastem.kernels.vector.prefetch) is LLVM's generic
    # llvm.prefetch, which AArch64 lowers to prfm
    assert re.search(r"\tprfm\tpldl1keep", asm), "no prefetch"
