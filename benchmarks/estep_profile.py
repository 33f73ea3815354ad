"""Where one fused E-step pass spends its time: a perf profile of the compiled kernel.

Runs the statistics pass of a problem over and over on one thread, in a child
process under ``perf record`` (software clock, so it works in virtual machines
without hardware counters), then maps the sampled instruction addresses onto
the kernel's machine code::

    python benchmarks/estep_profile.py --problem P3 --scale 2 --dtype float64
    python benchmarks/estep_profile.py --problem P2 --iterations 5 --loops 20

Prints the share of the kernel's samples spent in numba's reference counting
(``NRT_incref``/``NRT_decref``, which live outside the kernel's code) and the
innermost loops of the kernel (backward jumps in its disassembly) with their
share of the samples, size, multiply-adds and vector registers; the full
annotated disassembly (samples per instruction) is written to ``--annotate``.

The parameters are the problem's start (``--iterations 0``) or those after
that many EM iterations from it (components separate, responsibilities
sparsen). Needs ``perf`` and ``objdump`` (binutils). Kernel samples are those
within ``WINDOW`` bytes after the kernel's entry point; the kernel is one
function with its helpers inlined, the other jitted functions are elsewhere.
"""

import argparse
import collections
import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WINDOW = 1 << 20  # bytes of machine code read from the kernel's entry point


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="P3")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--iterations", type=int, default=0,
                        help="EM iterations from the problem's start before profiling")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--loops", type=int, default=15, help="innermost loops to list")
    parser.add_argument("--annotate", default=None,
                        help="file for the annotated disassembly (default: none)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        data = work / "perf.data"
        command = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000",
                   "-o", str(data), sys.executable, __file__, "--worker", str(work),
                   "--problem", args.problem, "--scale", str(args.scale),
                   "--dtype", args.dtype, "--iterations", str(args.iterations),
                   "--seconds", str(args.seconds)]
        subprocess.run(command, check=True)
        facts = json.loads((work / "kernel.json").read_text())
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip"],
                                capture_output=True, text=True, check=True).stdout
        ips = [int(word, 16) for word in script.split()]
        listing = disassemble(work / "kernel.bin")
        report(args, facts, ips, listing)


def worker(args):
    """The profiled process: one-thread statistics passes for ``args.seconds``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from estep_ab import fit_weights, parameters_of, start_of
    from numba import typeof
    from problems import make_problem

    from fastem.em import driver
    from fastem.kernels import estep
    from fastem.kernels.threads import thread_limit

    problem = make_problem(args.problem, args.scale, args.dtype)
    X, covariance_type = problem.X, problem.covariance_type
    parameters = parameters_of(driver, problem, start_of(problem, args.iterations))
    block_size = driver.default_block_size(*X.shape, problem.n_components,
                                           covariance_type, X.itemsize)
    weights = fit_weights(X.shape[0])
    dense = covariance_type in ("full", "tied")
    kernel = (estep.dense_statistics_blocks if dense
              else estep.diagonal_statistics_blocks)
    with thread_limit(1):
        driver.sufficient_statistics(X, weights, parameters, covariance_type,
                                     block_size)
        result = kernel.overloads[next(signature for signature in kernel.signatures
                                       if signature[0] == typeof(X))]
        library = result.library
        entry = library.get_pointer_to_function(result.fndesc.llvm_func_name)
        Path(args.worker, "kernel.bin").write_bytes(
            ctypes.string_at(entry, min(WINDOW, mapped_after(entry))))
        refcounting = {name: library.get_pointer_to_function(name)
                       for name in ("NRT_incref", "NRT_decref")}
        passes = 0
        started = time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            driver.sufficient_statistics(X, weights, parameters, covariance_type,
                                         block_size)
            passes += 1
        seconds = time.perf_counter() - started
    Path(args.worker, "kernel.json").write_text(json.dumps(
        {"entry": entry, "refcounting": refcounting, "passes": passes,
         "ms_per_pass": 1e3 * seconds / passes}))


def mapped_after(address):
    """Bytes from ``address`` to the end of its memory mapping (/proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
            if start <= address < end:
                return end - address
    raise RuntimeError("the kernel's address is not mapped")


def disassemble(path):
    """[(offset, text)] of the machine code in ``path`` (x86-64)."""
    output = subprocess.run(
        ["objdump", "-D", "-b", "binary", "-mi386:x86-64", "--no-show-raw-insn",
         str(path)],
        capture_output=True, text=True, check=True).stdout
    listing = []
    for line in output.splitlines():
        match = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if match:
            listing.append((int(match.group(1), 16), match.group(2).strip()))
    return listing


def innermost_loops(listing):
    """(first, last) listing indices of the loops no other loop lies inside: a loop
    is the code from a backward jump's target to the jump."""
    index = {offset: i for i, (offset, _) in enumerate(listing)}
    loops = []
    for i, (offset, text) in enumerate(listing):
        match = re.match(r"j\w+\s+0x([0-9a-f]+)$", text)
        if match:
            target = int(match.group(1), 16)
            if target < offset and target in index:
                loops.append((index[target], i))
    return [loop for loop in loops
            if not any(first >= loop[0] and last <= loop[1] and (first, last) != loop
                       for first, last in loops)]


def report(args, facts, ips, listing):
    entry = facts["entry"]
    samples = collections.Counter(ip - entry for ip in ips
                                  if entry <= ip < entry + WINDOW)
    in_kernel = sum(samples.values())
    lowest = min(facts["refcounting"].values())
    refcounting = sum(lowest <= ip < lowest + 256 for ip in ips)
    print(f"{args.problem}/{args.scale} {args.dtype}, parameters after "
          f"{args.iterations} iterations, one thread: {facts['passes']} passes, "
          f"{facts['ms_per_pass']:.2f} ms per pass (under perf)")
    print(f"samples: {len(ips)} in all, {in_kernel} in the kernel; in numba's "
          f"reference counting (NRT_incref/NRT_decref) {refcounting}, "
          f"{refcounting / max(in_kernel, 1):.1%} of the kernel's")
    counts = [samples.get(offset, 0) for offset, _ in listing]
    rows = []
    covered = set()
    for first, last in innermost_loops(listing):
        body = [text for _, text in listing[first:last + 1]]
        covered.update(range(first, last + 1))
        multiply_adds = sum(bool(re.match(r"vfn?m(add|sub)", text)) for text in body)
        rows.append((sum(counts[first:last + 1]), listing[first][0], listing[last][0],
                     len(body), multiply_adds, sum("zmm" in text for text in body),
                     sum("ymm" in text for text in body)))
    print("\n| share | loop (offsets) | instructions | multiply-adds | zmm | ymm |")
    print("|---|---|---|---|---|---|")
    for count, first, last, size, fmas, zmm, ymm in sorted(rows,
                                                            reverse=True)[:args.loops]:
        print(f"| {count / max(in_kernel, 1):.1%} | {first:x}-{last:x} | {size} "
              f"| {fmas} | {zmm} | {ymm} |")
    outside = sum(count for i, count in enumerate(counts) if i not in covered)
    print(f"\noutside innermost loops: {outside / max(in_kernel, 1):.1%}")
    if args.annotate:
        with open(args.annotate, "w") as annotated:
            for (offset, text), count in zip(listing, counts, strict=True):
                annotated.write(f"{count:7d} {offset:8x}: {text}\n")
        print(f"annotated disassembly: {os.path.abspath(args.annotate)}")


if __name__ == "__main__":
    main()
