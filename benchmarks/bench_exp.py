"""Time the vectorisable exp and log of ``fastem.kernels.exp`` against libm, numpy.

A script, not an asv suite (it defines no ``time_*`` benchmarks, so asv
importing it is harmless).  Run from the repository root::

    python benchmarks/bench_exp.py            # 1e6 and 1e7 elements, 9 repeats
    python benchmarks/bench_exp.py --sizes 100000 --repeats 21

Every variant works in place on a fresh copy of the same input (the copy is
not timed), single-threaded, after a warm-up call that compiles it:

* ``np.exp``             numpy's ufunc, ``np.exp(a, out=a)`` (numpy ships
                         its own SIMD exp, so this is a strong baseline)
* ``numba loop np.exp``  ``a[i] = np.exp(a[i])`` in ``@njit``: one libm call
                         per element, the loop is not vectorised
* ``numba loop exp64``   ``a[i] = exp64(a[i])``: the vectorised kernel
                         (``exp32`` for float32)

and the same three for ``log`` (``np.log``, ``a[i] = np.log(a[i])``,
``a[i] = log64(a[i])`` / ``log32``).

Input: exp uniform on [-50, 0], the range of log-responsibilities minus
their log-sum-exp in an E-step; log uniform on [1, 20], the range of the
sums of exponentials it takes in an E-step (values in [1, K]).  Reported:
the median over the repeats of the time per element, and ratios to the two
baselines (numpy and the libm loop of the same function).  The machines this runs
on are shared and noisy; medians of >= 7 repeats are the figures to quote.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastem.kernels.exp import (  # noqa: E402
    _libm_exp_inplace32,
    _libm_exp_inplace64,
    _libm_log_inplace32,
    _libm_log_inplace64,
    exp_inplace32,
    exp_inplace64,
    log_inplace32,
    log_inplace64,
)


def _numpy_exp_inplace(a):
    np.exp(a, out=a)


def _numpy_log_inplace(a):
    np.log(a, out=a)


# (function, dtype) -> [(variant name, in-place callable)]; the first entry
# is the numpy baseline, the second the libm-loop baseline.
VARIANTS = {
    ("exp", np.float64): [
        ("np.exp", _numpy_exp_inplace),
        ("numba loop np.exp", _libm_exp_inplace64),
        ("numba loop exp64", exp_inplace64),
    ],
    ("exp", np.float32): [
        ("np.exp", _numpy_exp_inplace),
        ("numba loop np.exp", _libm_exp_inplace32),
        ("numba loop exp32", exp_inplace32),
    ],
    ("log", np.float64): [
        ("np.log", _numpy_log_inplace),
        ("numba loop np.log", _libm_log_inplace64),
        ("numba loop log64", log_inplace64),
    ],
    ("log", np.float32): [
        ("np.log", _numpy_log_inplace),
        ("numba loop np.log", _libm_log_inplace32),
        ("numba loop log32", log_inplace32),
    ],
}

INPUT_RANGES = {"exp": (-50.0, 0.0), "log": (1.0, 20.0)}


def make_input(n_elements, dtype, seed=0, function="exp"):
    """Seeded input: uniform on [-50, 0] for exp, on [1, 20] for log."""
    rng = np.random.default_rng(seed)
    low, high = INPUT_RANGES[function]
    return rng.uniform(low, high, n_elements).astype(dtype)


def measure_inplace(function, data, repeats):
    """Median seconds of ``function(work)`` over ``repeats`` fresh copies."""
    work = data.copy()
    function(work)  # warm-up: compiles or loads from numba's cache
    timings = []
    for _ in range(repeats):
        np.copyto(work, data)
        start = time.perf_counter()
        function(work)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000]
    )
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    header = (
        f"{'n':>10}  {'dtype':7}  {'variant':18}  {'ns/elem':>8}  "
        f"{'vs numpy':>9}  {'vs libm loop':>12}"
    )
    print(
        f"median of {args.repeats} repeats; input uniform on [-50, 0] for exp, "
        "[1, 20] for log"
    )
    print(header)
    print("-" * len(header))
    for n_elements in args.sizes:
        for (function_name, dtype), variants in VARIANTS.items():
            data = make_input(n_elements, dtype, function=function_name)
            ns_per_element = {
                name: measure_inplace(function, data, args.repeats) / n_elements * 1e9
                for name, function in variants
            }
            numpy_ns = ns_per_element[variants[0][0]]
            libm_ns = ns_per_element[variants[1][0]]
            for name, value in ns_per_element.items():
                print(
                    f"{n_elements:>10}  {np.dtype(dtype).name:7}  {name:18}  "
                    f"{value:8.3f}  {numpy_ns / value:8.2f}x  {libm_ns / value:11.2f}x"
                )
    print("ratios > 1 mean the variant is faster than the baseline")


if __name__ == "__main__":
    main()
