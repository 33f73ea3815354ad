"""fastem.kernels.vector: the per-function 512-bit vector preference."""

import inspect
import json
import os
import re
import subprocess
import sys

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from fastem.kernels import estep as _kernels_estep
from fastem.kernels.vector import (
    PREFERRED_VECTOR_BITS,
    _permute_in_registers,
    add_lanes,
    compress_width,
    gather_nonzero,
    lane_sums,
    lane_totals,
    prefer_512_bit_vectors,
    prefetch,
    shaped,
    stack_vector,
    transpose_rows8,
    transpose_square8,
    vector_lanes,
)

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


def _functions_with_loops():
    """Every compiled helper and kernel of _kernels_estep whose source has a loop."""
    names = []
    for name, value in vars(_kernels_estep).items():
        if hasattr(value, "py_func"):
            source = inspect.getsource(value.py_func)
            if re.search(r"^\s+(for|while) ", source, re.MULTILINE):
                names.append(name)
    return sorted(names)


# The statistics kernels run their loops over tiles themselves, on work arrays
# that their callers allocate (*_tile_arrays): no function
# between the kernel and its tile loop (see dense_statistics_blocks).
STATISTICS_KERNELS = {"dense_statistics_blocks", "diagonal_statistics_blocks"}


@pytest.mark.parametrize("name", [name for name in _functions_with_loops()
                                  if name != "log_resp_blocks"
                                  and not name.startswith("reduce_")])
def test_every_function_with_a_loop_asks_for_512_bit_vectors(name):
    # Each forceinline helper is optimised in its own LLVM module before it is
    # inlined, so each needs the attribute itself, as the statistics kernels do
    # (log_resp_blocks and reduce_* are not fastmath and sum a few numbers per
    # row or block). The compiled kernels are cached and cannot be inspected;
    # this checks the source, and test_kernels_asm the machine code for named CPUs.
    source = inspect.getsource(getattr(_kernels_estep, name).py_func)
    assert "prefer_512_bit_vectors()" in source


def test_the_statistics_kernels_run_their_tile_loops():
    kernels = {name for name in vars(_kernels_estep)
               if name.endswith("_statistics_blocks")}
    assert kernels == STATISTICS_KERNELS
    assert kernels <= set(_functions_with_loops())
    for name in kernels:
        kernel = getattr(_kernels_estep, name)
        assert kernel.targetoptions["_nrt"] is False  # it allocates nothing
        assert "for start in range(" in inspect.getsource(kernel.py_func)
    block_functions = {
        name for name, value in vars(_kernels_estep).items()
        if name.endswith(("_block", "_tiles")) and hasattr(value, "py_func")
    }
    assert not block_functions


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"), reason="x86 CPU names")
@pytest.mark.parametrize(("cpu", "registers", "bits", "lanes", "group"),
                         [("skylake-avx512", 32, 512, (8, 16), 8),
                          ("znver4", 32, 512, (8, 16), 8),
                          ("znver3", 16, 256, (1, 8), 4),
                          ("haswell", 16, 256, (1, 8), 4)])
def test_vector_registers_of_the_cpu_numba_compiles_for(cpu, registers, bits, lanes,
                                                        group):
    """What numba's NUMBA_CPU_NAME names decides, not the host: 32 vector registers
    of 512 bits with AVX-512, 16 of 256 with AVX2, in Python and as compiled
    constants; and what follows from them: the lanes of lane_sums (float64,
    float32; 1 where a register holds fewer than 8), the kernels' VECTOR_REGISTERS
    and the features per pass of the 'diag' passes (WIDEST_GROUP)."""
    script = (
        "import numpy as np\n"
        "from numba import njit\n"
        "from fastem.kernels.estep import VECTOR_REGISTERS, WIDEST_GROUP\n"
        "from fastem.kernels.vector import (vector_bits, vector_lanes,\n"
        "                                   vector_registers)\n"
        "x, y = np.zeros(1), np.zeros(1, np.float32)\n"
        "compiled = njit(lambda x, y: (vector_registers(), vector_bits(),\n"
        "                              vector_lanes(x.dtype), vector_lanes(y.dtype),\n"
        "                              VECTOR_REGISTERS, WIDEST_GROUP))\n"
        "python = (vector_registers(), vector_bits(), vector_lanes(x.dtype),\n"
        "          vector_lanes(y.dtype), VECTOR_REGISTERS, WIDEST_GROUP)\n"
        "print(*python, *compiled(x, y))\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="", NUMBA_CACHE_DIR="")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = [str(value) for value in (registers, bits, *lanes, registers, group)]
    assert result.stdout.split() == expected * 2


@njit(cache=False, fastmath={"reassoc", "contract"})
def _row_sums_by_lanes(tile, target, first_row):
    """target[first_row + q] += the lanes of tile[q]'s sums, for q < 3 (lane_sums'
    pattern)."""
    prefer_512_bit_vectors()
    sums = lane_sums(3, tile.dtype)
    lanes = sums.shape[1]
    for q in range(3):
        for lane in range(lanes):
            sums[q, lane] = 0.0
    for first in range(0, tile.shape[1], lanes):
        for lane in range(lanes):
            for q in range(3):
                sums[q, lane] += tile[q, first + lane]
    for q in range(3):
        add_lanes(target, first_row + q, sums, q)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lane_sums_add_up_in_lanes_and_add_lanes_widens_them(dtype):
    """Integers (their sums exact in both dtypes, in any order): each lane of the
    target rows gets the sum of its points (t = lane mod lanes) added to what was
    there, in float64; the rows around are untouched."""
    lanes = vector_lanes(dtype)
    width = 128
    rng = np.random.default_rng(lanes)
    tile = rng.integers(-1000, 1000, size=(3, width)).astype(dtype)
    # exact in float64, not in float32: the addition is done in float64
    target = 2.0**40 + rng.integers(-5, 5, size=(6, lanes))
    before = target.copy()
    _row_sums_by_lanes(tile, target, 2)
    by_lane = tile.astype(np.float64).reshape(3, width // lanes, lanes).sum(axis=1)
    np.testing.assert_array_equal(target[2:5], before[2:5] + by_lane)
    np.testing.assert_array_equal(target[[0, 1, 5]], before[[0, 1, 5]])


@njit(cache=False)
def _totals_of_rows(tile, n_rows):
    """The totals of tile[q] (q < 19), a row's lanes summed: lane_totals of 19 rows
    (two groups of float64 lanes and a part, one group and a part of float32's) or
    of 1 (n_rows, a compile-time choice here by branch)."""
    sums = lane_sums(19, tile.dtype)
    lanes = sums.shape[1]
    for q in range(19):
        for lane in range(lanes):
            sums[q, lane] = tile[q, lane]
    out = np.zeros(19)
    if n_rows == 19:
        totals = lane_totals(sums, 19)
        for q in range(19):
            out[q] = totals[q]
    else:
        totals = lane_totals(sums, 1)
        out[0] = totals[0]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lane_totals_add_up_each_row_and_widen_to_float64(dtype):
    """Integers whose sums stay below 2**24 (exact in either dtype, in any order):
    totals[q] is the sum of row q's lanes and nothing else, for rows that fill
    groups of lanes and rows that do not, returned in float64."""
    lanes = vector_lanes(dtype)
    rng = np.random.default_rng(19 * lanes)
    tile = rng.integers(-50_000, 50_000, size=(19, lanes)).astype(dtype)
    expected = tile.astype(np.float64).sum(axis=1)
    np.testing.assert_array_equal(_totals_of_rows(tile, 19), expected)
    one = _totals_of_rows(tile, 1)
    assert one[0] == expected[0] and not one[1:].any()
    assert _totals_of_rows(tile, 19).dtype == np.float64


@njit(cache=False)
def _stack_addresses(X):
    """Where stack_tile, lane_sums and stack_vector put their arrays, stack_tile's
    shape, and what the three hold once written."""
    tile = _kernels_estep.stack_tile(3, X.dtype)
    sums = lane_sums(5, X.dtype)
    values = stack_vector(7, X.dtype)
    tile[:] = 1.0
    sums[:] = 2.0
    for j in range(values.shape[0]):
        values[j] = X[0, 0] + j
    return (tile.ctypes.data, sums.ctypes.data, values.ctypes.data, tile.shape[0],
            tile.shape[1], tile.sum() + sums.sum(), values.copy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stack_arrays_start_a_cache_line(dtype):
    """The stack arrays of the kernels start a 64-byte line (a 512-bit vector of
    their rows then never straddles two lines), stack_tile has the statistics
    tile's width, and stack_vector is a 1-D array of its size and of the dtype
    asked for, distinct from the others."""
    X = np.full((4, 3), 0.5, dtype=dtype)
    (tile_address, sums_address, values_address, rows, width, total,
     values) = _stack_addresses(X)
    assert tile_address % 64 == 0 and sums_address % 64 == 0
    assert values_address % 64 == 0
    assert len({tile_address, sums_address, values_address}) == 3
    assert (rows, width) == (3, _kernels_estep.statistics_tile(X))
    assert total == 3 * width + 2 * 5 * vector_lanes(dtype)
    assert values.dtype == dtype
    np.testing.assert_array_equal(values, 0.5 + np.arange(7, dtype=dtype))


@njit(cache=False)
def _shaped_views(buffer, n_rows, width):
    """shaped's (n_rows, width) and (width,) views of buffer, row i of the first
    raised by 10 i through the view."""
    matrix = shaped(buffer, (n_rows, width))
    vector = shaped(buffer, width)
    for i in range(n_rows):
        for t in range(width):
            matrix[i, t] += 10 * i
    return (matrix.shape, matrix.strides, vector.shape, vector.strides,
            matrix.ctypes.data, vector.ctypes.data, buffer.ctypes.data)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_shaped_views_the_first_entries_with_the_shape_given(dtype):
    """shaped (which the statistics kernels apply to their work arrays): a C view of
    the array's first entries, 2-D from a tuple and 1-D from an int, with C strides
    of the dtype, writing through to the array, and no reference left behind (a
    leaked reference count would keep the buffer's count raised)."""
    buffer = np.arange(20).astype(dtype)
    before = buffer.copy()
    count = sys.getrefcount(buffer)
    (matrix_shape, matrix_strides, vector_shape, vector_strides, matrix_address,
     vector_address, buffer_address) = _shaped_views(buffer, 3, 5)
    itemsize = buffer.itemsize
    assert matrix_shape == (3, 5) and matrix_strides == (5 * itemsize, itemsize)
    assert vector_shape == (5,) and vector_strides == (itemsize,)
    assert matrix_address == vector_address == buffer_address
    expected = before.copy()
    expected[:15] += np.repeat(10 * np.arange(3), 5).astype(dtype)
    np.testing.assert_array_equal(buffer, expected)
    assert sys.getrefcount(buffer) == count


@njit(cache=False)
def _transpose_one(source, first, stride, target, row, column):
    transpose_square8(source, first, stride, target, row, column)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("first", "stride", "row", "column"),
                         [(0, 8, 0, 0), (3, 11, 2, 5), (17, 8, 4, 24), (1, 30, 0, 1)])
def test_transpose_square8_moves_one_block_and_nothing_else(dtype, first, stride, row,
                                                             column):
    rng = np.random.default_rng(first + stride)
    source = rng.normal(size=first + 8 * stride + 8).astype(dtype)
    source_before = source.copy()
    target = np.full((row + 11, column + 13), np.nan, dtype=dtype)
    _transpose_one(source, first, stride, target, row, column)
    expected = np.full_like(target, np.nan)
    for r in range(8):
        for c in range(8):
            expected[row + c, column + r] = source[first + r * stride + c]
    np.testing.assert_array_equal(target, expected)
    np.testing.assert_array_equal(source, source_before)


def test_transpose_square8_is_vector_shuffles():
    """Vector loads, shuffles and stores in LLVM's generic IR (any target)."""
    source = np.arange(64.0)
    target = np.zeros((8, 8))
    _transpose_one(source, 0, 8, target, 0, 0)
    np.testing.assert_array_equal(target, source.reshape(8, 8).T)
    ir = _transpose_one.inspect_llvm(_transpose_one.signatures[0])
    assert ir.count("shufflevector <8 x double>") == 24
    assert "load <8 x double>" in ir and "store <8 x double>" in ir


@njit(cache=False)
def _transpose_rows(source, base, index, first, stride, offset, target, row, column):
    transpose_rows8(source, base, index, first, stride, offset, target, row, column)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("base", "first", "stride", "offset", "row", "column"),
                         [(0, 0, 8, 0, 0, 0), (5, 3, 11, 2, 1, 7), (2, 9, 8, 0, 3, 16)])
def test_transpose_rows8_moves_the_indexed_rows_and_nothing_else(dtype, base, first,
                                                                 stride, offset, row,
                                                                 column):
    """Rows chosen by an index (repeated and out of order too), transposed into one
    block of the target; the source and the index are left as they were."""
    rng = np.random.default_rng(base + first + stride)
    n_rows = 40
    source = rng.normal(size=(base + n_rows) * stride).astype(dtype)
    index = rng.integers(n_rows, size=first + 8 + 3)
    index[first + 2] = index[first + 5]
    before = source.copy(), index.copy()
    target = np.full((row + 10, column + 12), np.nan, dtype=dtype)
    _transpose_rows(source, base, index, first, stride, offset, target, row, column)
    expected = np.full_like(target, np.nan)
    for r in range(8):
        for c in range(8):
            position = (base + index[first + r]) * stride + offset + c
            expected[row + c, column + r] = source[position]
    np.testing.assert_array_equal(target, expected)
    np.testing.assert_array_equal(source, before[0])
    np.testing.assert_array_equal(index, before[1])


def test_transpose_rows8_is_vector_shuffles():
    """The same 24 shuffles as transpose_square8, after eight indexed row loads."""
    source = np.arange(80.0)
    index = np.arange(10)[::-1].copy()
    target = np.zeros((8, 8))
    _transpose_rows(source, 0, index, 1, 8, 0, target, 0, 0)
    np.testing.assert_array_equal(target, source.reshape(10, 8)[index[1:9]].T)
    ir = _transpose_rows.inspect_llvm(_transpose_rows.signatures[0])
    assert ir.count("shufflevector <8 x double>") == 24
    assert ir.count("load <8 x double>") == 8 and "store <8 x double>" in ir


@njit(cache=False)
def _sum_with_prefetch(a, distance):
    total = 0.0
    for i in range(a.shape[0]):
        prefetch(a, i + distance)  # past the end too: a hint never faults
        total += a[i]
    return total


def test_prefetch_changes_nothing_and_is_llvm_prefetch():
    a = np.arange(1000.0)
    for distance in (0, 64, 10**6):
        assert _sum_with_prefetch(a, distance) == a.sum()
    ir = _sum_with_prefetch.inspect_llvm(_sum_with_prefetch.signatures[0])
    assert "@llvm.prefetch" in ir


GATHER_SCRIPT = """
import json
import re
import numpy as np
from numba import njit
from fastem.kernels.vector import compress_width, gather_nonzero

@njit(cache=False)
def gather(values, n_values, index, gathered, count):
    for first in range(0, n_values, compress_width(values.dtype)):
        count = gather_nonzero(values, first, index, gathered, count)
    return count

rng = np.random.default_rng(3)
for dtype in (np.float64, np.float32):
    for density in (0.0, 0.05, 0.5, 1.0):
        for n_values, count in ((128, 0), (48, 5)):
            values = rng.normal(size=n_values).astype(dtype)
            values[rng.random(n_values) >= density] = 0.0
            values[np.flatnonzero(values == 0.0)[:1]] = -0.0
            index = np.full(n_values + count, -7)
            gathered = np.full(n_values + count, np.nan, dtype=dtype)
            before = values.copy()
            end = gather(values, n_values, index, gathered, count)
            kept = np.flatnonzero(values)
            assert end == count + kept.size, (dtype, density, end)
            assert (index[:count] == -7).all() and np.isnan(gathered[:count]).all()
            assert (index[count:end] == kept).all()
            assert (gathered[count:end] == values[kept]).all()
            assert (values == before).all()
asm = {str(signature[0].dtype): gather.inspect_asm(signature)
       for signature in gather.signatures}
print(json.dumps([
    sorted(set(re.findall(r"v\\w*compress\\w*\\s+[^\\n]*", "\\n".join(asm.values())))),
    {dtype: len(re.findall(r"vperm(?:d|ps)\\s", text)) for dtype, text in asm.items()}]))
"""


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "AMD64"),
                    reason="x86 CPU names")
@pytest.mark.parametrize("cpu", ["host", "znver3", "skylake-avx512"])
def test_gather_nonzero_keeps_the_nonzero_entries_in_order(cpu):
    """gather_nonzero appends the non-zero entries (-0.0 is zero) and their positions
    after ``count``, in order, for any density and float dtype, and changes
    nothing before ``count`` or in its input. Built for AVX-512 it compresses in
    registers (vcompresspd/vcompressps and vpcompressq into a register, never to
    memory: that form is microcoded and slow on Zen 4); for AVX2 it has no
    compress at all (one store per entry). Each CPU in a process of its own,
    where this CPU can run its code (an AVX-512 build needs an AVX-512 host)."""
    if cpu == "skylake-avx512" and not _host_has_avx512():
        pytest.skip("this CPU cannot run AVX-512 code")
    env = dict(os.environ, NUMBA_CACHE_DIR="")
    if cpu != "host":
        env.update(NUMBA_CPU_NAME=cpu, NUMBA_CPU_FEATURES="")
    result = subprocess.run([sys.executable, "-c", GATHER_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    compresses, permutes = json.loads(result.stdout)
    compressing = cpu == "skylake-avx512" or (cpu == "host" and _host_has_avx512())
    assert bool(compresses) == compressing
    for instruction in compresses:
        assert "(" not in instruction, instruction  # no memory operand
    # AVX2 packs float64 entries by a variable permute (vpermd, which LLVM may
    # emit as vpermps: values and positions, four at a time); float32 and the
    # other targets do not
    permuting = cpu == "znver3" or (cpu == "host" and _permute_in_registers())
    assert (permutes["float64"] > 0) == permuting, permutes
    assert permutes["float32"] == 0, permutes
