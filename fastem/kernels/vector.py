"""What the kernels know of the CPU they are compiled for.

``prefer_512_bit_vectors``: let LLVM use 512-bit vectors in the calling function.
``vector_registers``: how many vector registers the target has (16 or 32), for
register blocks whose size must fit them.
``transpose_square8``: transpose an 8x8 block from rows of one array into another by
vector shuffles.
``prefetch``: ask the CPU to fetch the cache line of an array element.
``vector_lanes``, ``lane_sums``, ``add_lanes``: sums kept as whole vectors (one
partial sum per vector lane) from tile to tile, added up once per block;
``lane_totals``: many rows of lane sums added up together.
``stack_array``: code for an array on the stack of the function being compiled,
on a cache line (for intrinsics).
``shaped``: a C array seen with another shape whose extents, if constants of the
compiled code, stay constants (unlike ``reshape``'s).

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
import math

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, codegen, config
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
    """32 on AArch64 and with AVX-512 (see _vector_bits), else 16."""
    triple = llvm.get_process_triple()
    if triple.startswith(("aarch64", "arm64")):
        return 32
    return 32 if _vector_bits() == 512 else 16


@overload(vector_registers, inline="always")
def _vector_registers_compiled():
    count = _vector_registers()
    return lambda: count


def vector_bits():
    """Bits per vector register of the CPU numba compiles for: 512 with AVX-512, 256
    with AVX2 (or AVX), 128 on AArch64 (NEON) and older x86. A constant when
    compiled (see ``_vector_bits``)."""
    return _vector_bits()


@functools.lru_cache(maxsize=None)
def _vector_bits():
    """Asks LLVM: the registers a 512-bit vector addition compiled for numba's target
    (CPU name and features as numba takes them: NUMBA_CPU_NAME /
    NUMBA_CPU_FEATURES, else the host's) uses: zmm only with AVX-512, ymm with
    AVX. numba keys its cache on the same CPU name and features, so cached code
    and this answer agree."""
    assembly = _x86_assembly(
        "define <8 x double> @add(<8 x double> %a, <8 x double> %b) {\n"
        "  %c = fadd <8 x double> %a, %b\n  ret <8 x double> %c\n}\n")
    if assembly is None:
        return 128
    return 512 if "zmm" in assembly else 256 if "ymm" in assembly else 128


def _x86_assembly(llvm_ir):
    """The assembly LLVM makes of ``llvm_ir`` for the x86 CPU numba compiles for
    (its name and features as numba takes them: NUMBA_CPU_NAME /
    NUMBA_CPU_FEATURES, else the host's); None on other architectures."""
    triple = llvm.get_process_triple()
    if not triple.startswith(("x86_64", "i386", "i686", "amd64")):
        return None
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    name = config.CPU_NAME or llvm.get_host_cpu_name()
    features = (config.CPU_FEATURES if config.CPU_FEATURES is not None
                else codegen.get_host_cpu_features())
    machine = llvm.Target.from_triple(triple).create_target_machine(
        cpu=name, features=features, opt=0)
    return machine.emit_assembly(llvm.parse_assembly(llvm_ir))


@overload(vector_bits, inline="always")
def _vector_bits_compiled():
    bits = _vector_bits()
    return lambda: bits


def vector_lanes(dtype):
    """Lanes of the sums of lane_sums for ``dtype`` (float32 or float64): a vector
    register's elements where that is 8 or more (AVX-512: 16 and 8; AVX2: 8 for
    float32), else 1 (float64 on AVX2, AArch64): one sum per tile, which LLVM
    vectorises as a reduction and adds up at the end of the tile. A constant
    when compiled.

    With 4 lanes (float64 on AVX2), and with 8 lanes in two registers each,
    LLVM unrolled the loops of lane_sums' pattern and left most of their
    arithmetic scalar (P5 took three times as long)."""
    return _lanes(np.dtype(dtype).itemsize * 8)


def _lanes(bits):
    lanes = vector_bits() // bits
    return lanes if lanes >= 8 else 1


@overload(vector_lanes, inline="always")
def _vector_lanes_compiled(dtype):
    if not isinstance(dtype, types.DType):
        return None
    lanes = _lanes(dtype.dtype.bitwidth)
    return lambda dtype: lanes


@intrinsic
def lane_sums(typingctx, rows, dtype):
    """A (rows, vector_lanes(dtype)) C array of ``dtype`` on the stack of the calling
    function, not initialised; ``rows`` a constant. Each row fits one vector
    register (see vector_lanes).

    Meant for sums over a tile with one partial sum per vector lane:

        for t0 in range(0, width, lanes):
            for lane in range(lanes):
                sums[q, lane] += ...  # point t0 + lane

    LLVM keeps each row in one vector register through the loop (the array is
    the function's own: nothing else can write it) and the lanes are added to
    a float64 array by add_lanes, with no horizontal sum per tile. A loop that
    sums into a scalar ends with one (three shuffles and three additions per
    zmm sum, each tile). The array lives as long as the calling function's
    frame: never return it or keep it.
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(dtype, types.DType)
            and dtype.dtype in (types.float32, types.float64)):
        return None
    element = dtype.dtype
    n_rows = rows.literal_value
    lanes = _lanes(element.bitwidth)
    array_type = types.Array(element, 2, "C")

    def codegen(context, builder, signature, args):
        return stack_array(context, builder, element, (n_rows, lanes))

    return array_type(rows, dtype), codegen


STACK_ALIGNMENT = 64  # bytes: a cache line, so no 512-bit vector of a row straddles two


@intrinsic
def stack_vector(typingctx, size, dtype):
    """An uninitialised (size,) C array of ``dtype`` on the stack of the calling
    function; ``size`` a constant. For a few values per call that loops unrolled
    over a constant count read (fastem.kernels.estep's _diagonal_distances): LLVM
    keeps them in registers, as scalars written out would be. The array lives as
    long as the calling function's frame: never return it or keep it."""
    if not (isinstance(size, types.IntegerLiteral) and isinstance(dtype, types.DType)):
        return None
    element = dtype.dtype

    def codegen(context, builder, signature, args):
        return stack_array(context, builder, element, (size.literal_value,))

    return types.Array(element, 1, "C")(size, dtype), codegen


def stack_array(context, builder, element, shape):
    """Code for an uninitialised C array of numba type ``element`` and ``shape`` (a
    tuple of ints) on the stack of the function being compiled: an ``alloca``,
    which LLVM knows no other pointer reaches. For intrinsics (lane_sums,
    lane_totals, fastem.kernels.estep's stack_tile); the array lives as long as
    that function's frame."""
    from numba.np.arrayobj import make_array, populate_array

    data = cgutils.alloca_once(builder, context.get_data_type(element),
                               size=math.prod(shape))
    data.align = STACK_ALIGNMENT
    itemsize = context.get_abi_sizeof(context.get_data_type(element))
    strides = []
    stride = itemsize
    for extent in reversed(shape):
        strides.insert(0, stride)
        stride *= extent
    intp = context.get_value_type(types.intp)
    array = make_array(types.Array(element, len(shape), "C"))(context, builder)
    populate_array(array, data=data, shape=[intp(extent) for extent in shape],
                   strides=[intp(stride) for stride in strides],
                   itemsize=intp(itemsize), meminfo=None)
    return array._getvalue()


@intrinsic
def shaped(typingctx, array, shape):
    """The C-contiguous ``array`` seen as a C array of ``shape`` (an int, or a tuple
    of ints), sharing its memory; neither copied nor checked (the shape must
    cover at most the array's entries).

    Unlike ``reshape``, whose new shape comes back from a C helper that LLVM
    cannot see into, the view's shape and strides are the caller's values: a
    constant of the compiled code stays one, and so do the loop trip counts and
    row strides that follow from it. For the work arrays that the statistics
    kernels take as arguments (fastem.kernels.estep.dense_statistics_blocks)."""
    if not (isinstance(array, types.Array) and array.layout == "C"):
        return None
    if isinstance(shape, types.Integer):
        extents = (shape,)
    elif (isinstance(shape, types.BaseTuple) and len(shape) > 0
          and all(isinstance(extent, types.Integer) for extent in shape)):
        extents = tuple(shape)
    else:
        return None
    view_type = array.copy(ndim=len(extents), layout="C")

    def codegen(context, builder, signature, args):
        from numba.core.imputils import impl_ret_borrowed
        from numba.np.arrayobj import make_array, populate_array

        source = make_array(signature.args[0])(context, builder, args[0])
        values = ([args[1]] if isinstance(shape, types.Integer)
                  else cgutils.unpack_tuple(builder, args[1], len(extents)))
        shape_values = [context.cast(builder, value, extent, types.intp)
                        for value, extent in zip(values, extents, strict=True)]
        intp = context.get_value_type(types.intp)
        itemsize = context.get_abi_sizeof(context.get_data_type(view_type.dtype))
        strides = []
        stride = intp(itemsize)
        for extent in reversed(shape_values):
            strides.insert(0, stride)
            stride = builder.mul(stride, extent)
        view = make_array(view_type)(context, builder)
        populate_array(view, data=source.data, shape=shape_values, strides=strides,
                       itemsize=intp(itemsize), meminfo=source.meminfo,
                       parent=source.parent)
        return impl_ret_borrowed(context, builder, view_type, view._getvalue())

    return view_type(array, shape), codegen


@intrinsic
def add_lanes(typingctx, target, row, sums, q):
    """``target[row, :] += sums[q, :]``: one vector load, addition and store.

    ``sums`` comes from lane_sums (float32 or float64); ``target`` is a float64
    2-D C array with as many columns (its rows are widened to float64 first).
    The indices are not checked."""
    if not (isinstance(target, types.Array) and isinstance(sums, types.Array)
            and target.dtype == types.float64 and target.ndim == 2
            and target.layout == "C" and sums.ndim == 2 and sums.layout == "C"
            and sums.dtype in (types.float32, types.float64)
            and isinstance(row, types.Integer) and isinstance(q, types.Integer)):
        return None
    lanes = _lanes(sums.dtype.bitwidth)

    def codegen(context, builder, signature, args):
        target_type, row_type, sums_type, q_type = signature.args
        count = ir.Constant(ir.IntType(64), lanes)

        def vector_at(array_type, array, index, index_type):
            data = context.make_array(array_type)(context, builder, array).data
            offset = builder.mul(context.cast(builder, index, index_type, types.int64),
                                 count)
            element = context.get_data_type(array_type.dtype)
            pointer = builder.gep(data, [offset], inbounds=True)
            return builder.bitcast(pointer, ir.VectorType(element, lanes).as_pointer())

        target_pointer = vector_at(target_type, args[0], args[1], row_type)
        sums_pointer = vector_at(sums_type, args[2], args[3], q_type)
        values = builder.load(sums_pointer, align=sums_type.dtype.bitwidth // 8)
        if sums_type.dtype != types.float64:
            values = builder.fpext(values, ir.VectorType(ir.DoubleType(), lanes))
        total = builder.fadd(builder.load(target_pointer, align=8), values)
        builder.store(total, target_pointer, align=8)
        return context.get_dummy_value()

    return types.none(target, row, sums, q), codegen


@intrinsic
def lane_totals(typingctx, sums, rows):
    """The totals of the first ``rows`` rows of lane_sums' ``sums`` (``rows`` a
    constant): ``totals[q]`` = the sum of row q's lanes, in float64, for q <
    rows, in a float64 array on the calling function's stack (as lane_sums';
    it may be longer than ``rows``).

    The rows are added up together, L at a time for L lanes: a transposing
    tree of two-vector shuffles and vector additions, log2(L) rounds, L - 1
    pairs in all (two shuffles and one addition each), leaves the L totals in
    one vector. Summed one by one, each row takes log2(L) shuffles and as
    many additions: for a zmm of float64 (L = 8), 14 shuffles and 7 additions
    in place of 24 and 24; of float32 (L = 16), 30 and 15 in place of 64 and
    64. Rows past ``rows`` in the last group count as zeros. With one lane
    (float64 on AVX2, AArch64) the totals are the rows."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(sums, types.Array)
            and sums.ndim == 2 and sums.layout == "C"
            and sums.dtype in (types.float32, types.float64)):
        return None
    n_rows = rows.literal_value
    lanes = _lanes(sums.dtype.bitwidth)
    array_type = types.Array(types.float64, 1, "C")

    def codegen(context, builder, signature, args):
        sums_type = signature.args[0]
        element = context.get_data_type(sums_type.dtype)
        double = ir.DoubleType()
        int32 = ir.IntType(32)
        data = context.make_array(sums_type)(context, builder, args[0]).data
        vector_type = ir.VectorType(element, lanes)
        n_groups = -(-n_rows // lanes)
        totals_array = stack_array(context, builder, types.float64,
                                   (n_groups * lanes,))
        totals = context.make_array(array_type)(context, builder, totals_array).data
        zero = ir.Constant(vector_type, None)
        for group in range(n_groups):
            rows_of_group = []
            for r in range(lanes):
                q = group * lanes + r
                if q >= n_rows:
                    rows_of_group.append(zero)
                    continue
                pointer = builder.gep(data, [ir.Constant(ir.IntType(64), q * lanes)],
                                      inbounds=True)
                rows_of_group.append(builder.load(
                    builder.bitcast(pointer, vector_type.as_pointer()),
                    align=sums_type.dtype.bitwidth // 8))
            step = 1
            while step < lanes:
                # position p of a pair's result: lanes p and p + step of the first
                # vector where p & step is 0, of the second (p - step, p) where not
                low = [p if not p & step else lanes + p - step for p in range(lanes)]
                high = [p + step if not p & step else lanes + p for p in range(lanes)]
                low = ir.Constant(ir.VectorType(int32, lanes), low)
                high = ir.Constant(ir.VectorType(int32, lanes), high)
                rows_of_group = [
                    builder.fadd(builder.shuffle_vector(first, second, low),
                                 builder.shuffle_vector(first, second, high),
                                 flags=("reassoc", "nsz"))
                    for first, second in zip(rows_of_group[0::2], rows_of_group[1::2],
                                             strict=True)]
                step *= 2
            (total,) = rows_of_group  # position p: row group * lanes + p
            if sums_type.dtype != types.float64:
                total = builder.fpext(total, ir.VectorType(double, lanes))
            pointer = builder.gep(totals, [ir.Constant(ir.IntType(64), group * lanes)],
                                  inbounds=True)
            builder.store(total, builder.bitcast(
                pointer, ir.VectorType(double, lanes).as_pointer()), align=8)
        return totals_array

    return array_type(sums, rows), codegen


def compress_width(dtype):
    """Elements that gather_nonzero reads per call for ``dtype`` (float32 or
    float64): a 512-bit vector's, 8 or 16, on every target (elsewhere the
    intrinsic handles them one at a time). A constant when compiled."""
    return 512 // (np.dtype(dtype).itemsize * 8)


@overload(compress_width, inline="always")
def _compress_width_compiled(dtype):
    if not isinstance(dtype, types.DType):
        return None
    width = 512 // dtype.dtype.bitwidth
    return lambda dtype: width


def _compress_in_registers():
    """Whether gather_nonzero uses AVX-512's compress (x86 intrinsics): only where
    numba compiles for AVX-512 (see _vector_bits), never on AArch64. Read when a
    kernel is typed; tests/test_kernels_asm.py replaces it to take, on an x86
    host, the IR an ARM64 host would build."""
    return _vector_bits() == 512


@functools.lru_cache(maxsize=None)
def _permute_in_registers():
    """Whether gather_nonzero packs float64 entries with AVX2's variable permute
    (``vpermd``, an x86 intrinsic, which LLVM may emit as ``vpermps``, and a
    table of the 16 ways to pack four lanes): where numba compiles for x86 with
    256-bit integer vectors (AVX2; not AVX-512, which compresses instead: see
    _compress_in_registers). Asks LLVM, as _vector_bits does: a 256-bit integer
    addition is one ``vpaddd`` on a ymm register only with AVX2 (AVX splits it
    into two 128-bit halves)."""
    if _vector_bits() != 256:
        return False
    assembly = _x86_assembly(
        "define <8 x i32> @add(<8 x i32> %a, <8 x i32> %b) {\n"
        "  %c = add <8 x i32> %a, %b\n  ret <8 x i32> %c\n}\n")
    return assembly is not None and "vpaddd\t%ymm" in assembly


def _pack_table():
    """For each 4-bit mask m, the 32-bit lanes of a 256-bit vector of four 64-bit
    entries that ``vpermd`` takes to move the entries whose bits are set in m to
    the front, in order (the rest: whatever, here the first entry)."""
    table = []
    for mask in range(16):
        lanes = [entry for entry in range(4) if mask >> entry & 1]
        lanes += [0] * (4 - len(lanes))
        table.append([half for entry in lanes for half in (2 * entry, 2 * entry + 1)])
    return table


@intrinsic
def gather_nonzero(typingctx, values, first, index, gathered, count):
    """Append the non-zero entries of ``values[first:first + W]`` (W =
    compress_width, float32 or float64) to ``gathered[count:]`` and their
    positions in ``values`` to ``index[count:]`` (int64), in order; returns the
    new count (``count`` plus how many). Indices are not checked: ``values``
    must have W entries from ``first`` on, and ``index`` and ``gathered`` W
    entries from ``count`` on, whatever the count (entries past the new count
    may be overwritten).

    With AVX-512 each vector of W is compressed in registers (``vcompresspd``/
    ``vcompressps``, register form: the memory form is microcoded and slow on
    Zen 4) and stored whole: no branch, one vector store per array. With AVX2
    (no compress) float64 entries are packed four at a time by a variable
    permute (see _permute_in_registers) and stored whole, values and positions:
    one E-step pass, one thread, N/2, after five iterations, AVX2 build of an
    Intel Xeon (family 6, model 167), 11 rounds of benchmarks/estep_ab.py, time
    after / before: P2 0.956, P5 0.957, P3 1.005 (float32, unchanged: 1.009,
    1.006, 1.013). Otherwise (float32 with AVX2; AArch64 NEON) the W entries are
    written one by one without a branch: each entry is stored at the current
    count, which moves on only past a non-zero one."""
    if not (isinstance(values, types.Array) and values.ndim == 1
            and values.dtype in (types.float32, types.float64)
            and isinstance(gathered, types.Array) and gathered.ndim == 1
            and gathered.dtype == values.dtype
            and isinstance(index, types.Array) and index.ndim == 1
            and index.dtype == types.int64
            and isinstance(first, types.Integer) and isinstance(count, types.Integer)):
        return None
    width = 512 // values.dtype.bitwidth
    compress = _compress_in_registers()
    permute = (not compress and values.dtype == types.float64
               and _permute_in_registers())

    def codegen(context, builder, signature, args):
        values_type, first_type, index_type, gathered_type, count_type = signature.args
        int64 = ir.IntType(64)
        element = context.get_data_type(values_type.dtype)
        first_value = context.cast(builder, args[1], first_type, types.int64)
        count_value = context.cast(builder, args[4], count_type, types.int64)

        def pointer_at(array_type, array, offset):
            data = context.make_array(array_type)(context, builder, array).data
            return builder.gep(data, [offset], inbounds=True)

        def pack_by_permute(vector, mask, positions):
            """AVX2, float64: four entries at a time, the set ones moved to the
            front by one vpermd (the table's entry for the four mask bits) and
            stored whole, four values and four positions; the count moves on by
            the number of bits set."""
            int32x8 = ir.VectorType(ir.IntType(32), 8)
            table_type = ir.ArrayType(int32x8, 16)
            # one table per module, however many calls the function inlines
            table = builder.module.globals.get("fastem_pack4_table")
            if table is None:
                table = cgutils.global_constant(
                    builder.module, "fastem_pack4_table",
                    ir.Constant(table_type, [ir.Constant(int32x8, row)
                                             for row in _pack_table()]))
            permd = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(int32x8, [int32x8, int32x8]),
                "llvm.x86.avx2.permd")
            ctpop = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(4), [ir.IntType(4)]),
                "llvm.ctpop.i4")
            new_count = count_value
            for part in range(0, width, 4):
                lanes = ir.Constant(ir.VectorType(ir.IntType(32), 4),
                                    list(range(part, part + 4)))
                part_mask = builder.bitcast(
                    builder.shuffle_vector(mask, ir.Constant(mask.type, None), lanes),
                    ir.IntType(4))
                control = builder.load(
                    builder.gep(table, [ir.Constant(int64, 0),
                                        builder.zext(part_mask, int64)],
                                inbounds=True), align=32)
                for data, array_type, array in (
                        (vector, gathered_type, args[3]),
                        (positions, index_type, args[2])):
                    part_data = builder.shuffle_vector(
                        data, ir.Constant(data.type, None), lanes)
                    packed = builder.bitcast(
                        builder.call(permd, [builder.bitcast(part_data, int32x8),
                                             control]), part_data.type)
                    target = pointer_at(array_type, array, new_count)
                    builder.store(packed,
                                  builder.bitcast(target, part_data.type.as_pointer()),
                                  align=8)
                new_count = builder.add(new_count, builder.zext(
                    builder.call(ctpop, [part_mask]), int64))
            return new_count

        source = pointer_at(values_type, args[0], first_value)
        vector_type = ir.VectorType(element, width)
        vector = builder.load(builder.bitcast(source, vector_type.as_pointer()),
                              align=values_type.dtype.bitwidth // 8)
        mask = builder.fcmp_unordered("!=", vector, ir.Constant(vector_type, None))
        positions = builder.add(
            builder.shuffle_vector(
                builder.insert_element(ir.Constant(ir.VectorType(int64, width), None),
                                       first_value, ir.Constant(ir.IntType(32), 0)),
                ir.Constant(ir.VectorType(int64, width), None),
                ir.Constant(ir.VectorType(ir.IntType(32), width), [0] * width)),
            ir.Constant(ir.VectorType(int64, width), list(range(width))))
        if permute:
            return pack_by_permute(vector, mask, positions)
        if not compress:
            new_count = count_value
            for lane in range(width):
                lane_index = ir.Constant(ir.IntType(32), lane)
                builder.store(builder.extract_element(vector, lane_index),
                              pointer_at(gathered_type, args[3], new_count))
                builder.store(builder.extract_element(positions, lane_index),
                              pointer_at(index_type, args[2], new_count))
                new_count = builder.add(new_count, builder.zext(
                    builder.extract_element(mask, lane_index), int64))
            return new_count

        def compress_into(array_type, array, offset, data, lanes_mask):
            data_type = data.type
            kind = {types.float64: "f64", types.float32: "f32",
                    types.int64: "i64"}[array_type.dtype]
            function = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(data_type, [data_type, data_type, lanes_mask.type]),
                f"llvm.x86.avx512.mask.compress.v{data_type.count}{kind}")
            packed = builder.call(function, [data, ir.Constant(data_type, None),
                                             lanes_mask])
            target = pointer_at(array_type, array, offset)
            builder.store(packed, builder.bitcast(target, data_type.as_pointer()),
                          align=array_type.dtype.bitwidth // 8)

        def popcount(lanes_mask):
            bits = ir.IntType(lanes_mask.type.count)
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(bits, [bits]),
                f"llvm.ctpop.i{bits.width}")
            total = builder.call(function, [builder.bitcast(lanes_mask, bits)])
            return builder.zext(total, int64)

        compress_into(gathered_type, args[3], count_value, vector, mask)
        # the positions eight at a time: a compress takes at most 512 bits
        offset = count_value
        for part in range(0, width, 8):
            lanes = ir.Constant(ir.VectorType(ir.IntType(32), 8),
                                list(range(part, part + 8)))
            undefined = ir.Constant(positions.type, None)
            part_mask = builder.shuffle_vector(mask, ir.Constant(mask.type, None),
                                               lanes)
            part_positions = builder.shuffle_vector(positions, undefined, lanes)
            compress_into(index_type, args[2], offset, part_positions, part_mask)
            offset = builder.add(offset, popcount(part_mask))
        return offset

    return types.int64(values, first, index, gathered, count), codegen


def _square_transpose(size, indexed=False):
    """An intrinsic that transposes one size x size square (see transpose_square8);
    ``indexed``: its rows are chosen by an index array (see transpose_rows8)."""
    int64 = ir.IntType(64)
    lane_indices = ir.VectorType(ir.IntType(32), size)
    # Swapping bit b of the row and the column index of every entry whose two bits
    # differ, for b = 1, 2, 4, ..., swaps the indices: a transpose in log2(size)
    # rounds of size two-vector shuffles.
    rounds = []
    bit = 1
    while bit < size:
        low = [c if not c & bit else size + c - bit for c in range(size)]
        high = [size + c if c & bit else c + bit for c in range(size)]
        rounds.append((bit, ir.Constant(lane_indices, low),
                       ir.Constant(lane_indices, high)))
        bit *= 2

    def transpose_codegen(context, builder, signature, args):
        if indexed:
            (source_type, _, index_type, _, _, _, target_type, _, _) = signature.args
            source_value, index_value, target_value = args[0], args[2], args[6]
            base, first_point, source_stride, offset, first_row, first_column = (
                context.cast(builder, args[i], signature.args[i], types.int64)
                for i in (1, 3, 4, 5, 7, 8)
            )
            index_data = context.make_array(index_type)(context, builder,
                                                        index_value).data
        else:
            source_type, _, _, target_type, _, _ = signature.args
            source_value, target_value = args[0], args[3]
            first_index, source_stride, first_row, first_column = (
                context.cast(builder, args[i], signature.args[i], types.int64)
                for i in (1, 2, 4, 5)
            )
        source_array = context.make_array(source_type)(context, builder, source_value)
        source_data = source_array.data
        target_array = context.make_array(target_type)(context, builder, target_value)
        element = context.get_data_type(source_type.dtype)
        vector_pointer = ir.VectorType(element, size).as_pointer()
        align = context.get_abi_sizeof(element)
        width = cgutils.unpack_tuple(builder, target_array.shape)[1]

        def vector_at(data, index):
            pointer = builder.gep(data, [index], inbounds=True)
            return builder.bitcast(pointer, vector_pointer)

        rows = []
        for r in range(size):
            if indexed:
                position = builder.add(first_point, ir.Constant(int64, r))
                point = builder.load(builder.gep(index_data, [position], inbounds=True))
                index = builder.add(
                    builder.mul(builder.add(base, point), source_stride), offset)
            else:
                index = builder.add(builder.mul(source_stride, ir.Constant(int64, r)),
                                    first_index)
            rows.append(builder.load(vector_at(source_data, index), align=align))
        for bit, low, high in rounds:
            swapped = list(rows)
            for r in range(size):
                if not r & bit:
                    pair = rows[r], rows[r + bit]
                    swapped[r] = builder.shuffle_vector(*pair, low)
                    swapped[r + bit] = builder.shuffle_vector(*pair, high)
            rows = swapped
        for c in range(size):
            target_row = builder.add(first_row, ir.Constant(int64, c))
            index = builder.add(builder.mul(target_row, width), first_column)
            builder.store(rows[c], vector_at(target_array.data, index), align=align)
        return context.get_dummy_value()

    def arrays_fit(source, target):
        return (isinstance(source, types.Array) and isinstance(target, types.Array)
                and source.dtype == target.dtype
                and source.dtype in (types.float32, types.float64)
                and source.ndim == 1 and target.ndim == 2 and target.layout == "C")

    if indexed:
        @intrinsic
        def transpose_indexed(typingctx, source, base, index, first, stride, offset,
                              target, row, column):
            """``target[row + c, column + r] = source[(base + index[first + r]) *
            stride + offset + c]`` for r, c in 0..size-1."""
            if not (arrays_fit(source, target) and isinstance(index, types.Array)
                    and index.ndim == 1 and index.dtype == types.int64
                    and all(isinstance(value, types.Integer)
                            for value in (base, first, stride, offset, row, column))):
                return None
            return (types.none(source, base, index, first, stride, offset, target, row,
                               column), transpose_codegen)

        return transpose_indexed

    @intrinsic
    def transpose(typingctx, source, first, stride, target, row, column):
        """``target[row + c, column + r] = source[first + r * stride + c]`` for r, c
        in 0..size-1, by vector loads, shuffles and stores."""
        if not (arrays_fit(source, target)
                and all(isinstance(value, types.Integer)
                        for value in (first, stride, row, column))):
            return None
        return types.none(source, first, stride, target, row, column), transpose_codegen

    return transpose


# ``target[row + c, column + r] = source[first + r * stride + c]`` for r, c in 0..7
# (source 1-D, target 2-D and C-contiguous, the same float dtype; the indices are
# not checked). Eight rows of eight elements are loaded as vectors and transposed
# in three rounds of eight two-vector shuffles, LLVM's generic ``shufflevector``:
# vunpcklpd/vpermt2pd/vshuff64x2 on AVX-512, their ymm halves on AVX2, zip/trn on
# AArch64. Written as scalar loops, the transposition of a tile stayed scalar: one
# load and one store per element.
transpose_square8 = _square_transpose(8)

# The same with the rows chosen by an index (int64, not checked): ``target[row + c,
# column + r] = source[(base + index[first + r]) * stride + offset + c]`` for r, c in
# 0..7; for the points of a tile that a component's responsibilities reach.
transpose_rows8 = _square_transpose(8, indexed=True)


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to bring the cache line holding ``array[index]`` (1-D, any dtype)
    into its first-level cache, and go on: LLVM's generic ``llvm.prefetch`` (read,
    locality 3: ``prefetcht0`` on x86, ``prfm pldl1keep`` on AArch64). A hint
    only: it never faults, also past the array's end, and changes no value.

    Locality 3 rather than 2 (L2, ``prefetcht1``), measured for the kernels' next
    tile (see fastem.kernels.estep._prefetch_next_tile) on a Zen 4: one E-step
    pass, one thread, N/2, 11 rounds in one process, 0.98-0.99 the time of
    locality 2 on P2 and P5, float64 and float32."""
    if not (isinstance(array, types.Array) and array.ndim == 1
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type, index_type = signature.args
        data = context.make_array(array_type)(context, builder, args[0]).data
        offset = context.cast(builder, args[1], index_type, types.int64)
        byte_pointer = ir.IntType(8).as_pointer()
        pointer = builder.bitcast(builder.gep(data, [offset]), byte_pointer)
        int32 = ir.IntType(32)
        function_type = ir.FunctionType(ir.VoidType(),
                                        [byte_pointer, int32, int32, int32])
        function = cgutils.get_or_insert_function(builder.module, function_type,
                                                  "llvm.prefetch.p0")
        # read (0), locality 3 of 0-3, data cache (1)
        builder.call(function, [pointer, ir.Constant(int32, 0), ir.Constant(int32, 3),
                                ir.Constant(int32, 1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen
