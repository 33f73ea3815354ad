"""Time fastem and scikit-learn side by side on P1-P5 and print a markdown table.

Run from the repository root::

    python benchmarks/compare.py                          # P1-P5, full size, float64
    python benchmarks/compare.py --scale 100 --problems P1 P4
    python benchmarks/compare.py --float32                # + fastem float32 columns
    python benchmarks/compare.py --onedal-python /work/onedal-venv/bin/python
    python benchmarks/compare.py --dgemm                  # + share of the DGEMM rate

Both implementations run in this one process, one after the other on the same
data and from the same start (``benchmarks/problems.py``), with their default
threads (numba's for fastem, the BLAS's for scikit-learn). Figures are medians
of ``--repeats`` (>= 5 by default):

* seconds per EM iteration: the marginal cost, (time of a fit of 3
  iterations - time of a fit of 1 iteration) / 2, every implementation over
  the same iterations (``problems.TIMED_ITERATIONS``), each repeat timing
  enough pairs of the two fits for the difference to take
  ``--target-seconds`` (``problems.seconds_per_iteration``); this leaves out
  what a ``fit`` call does once (validation, scikit-learn's initialisation
  pass, the final labelling E-step);
* P4: milliseconds per whole ``fit`` call of 50 iterations.

"log-lik. rel. diff." is |fastem - scikit-learn| / |scikit-learn| of the final
mean log-likelihood (``lower_bound_``) of a fit of the problem's fixed
iteration count (10; 50 for P4) from the same start. ``--onedal-python``
times oneDAL (``daal4py.em_gmm``, same start, fixed iterations, accuracy
threshold 0) through that interpreter in a subprocess on the same data,
passed as a temporary .npy file; oneDAL adds its regularisation only to
ill-conditioned covariances, where the others always add reg_covar = 1e-6,
so its log-likelihood differs a little (a lot on P4, which collapses).

``--dgemm`` times numpy's float64 matrix product (``a @ b``, n = ``--dgemm-size``,
median of 5, with the BLAS's default threads) before the problems and after
them, and adds fastem's float64 rate by issue 12's count
(``problems.flops_per_iteration``) and its share of the higher of the two
DGEMM rates: the machine's arithmetic, the target that travels between CPUs.
"""

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys

try:
    from . import problems
except ImportError:  # run as a script: python benchmarks/compare.py
    import problems

# issue 3's targets: fastem float64 against scikit-learn 1.9
SKLEARN_TARGETS = {"P1": 100, "P2": 70, "P3": 25, "P4": 50, "P5": 25}
ONEDAL_TARGET = 1.5  # fastem >= 1.5x oneDAL on P1, P2, P3, P5
FLOAT32_TARGETS = {"P2": 1.6, "P3": 1.6}  # float32 >= 1.6x float64
# issue 12: fastem's float64 flop rate >= this share of the machine's DGEMM rate
DGEMM_TARGETS = {"P2": 0.5, "P3": 0.5, "P5": 0.5}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Time fastem and scikit-learn side by side on the problems P1-P5 "
        "of issue 3 and print a markdown table."
    )
    parser.add_argument(
        "--problems",
        nargs="+",
        default=list(problems.PROBLEM_NAMES),
        choices=problems.PROBLEM_NAMES,
        metavar="P",
        help="problems to run (default: P1 P2 P3 P4 P5)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="repeats per figure; the median is reported (default: 5)",
    )
    parser.add_argument(
        "--dtype",
        choices=problems.DTYPES,
        default="float64",
        help="dtype of X for both implementations (default: float64)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="divide n_samples by this (P4 is never scaled; default: "
        f"${problems.SCALE_ENV} or 1, the full problems)",
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="also time fastem on float32 X: speed-up over float64 and "
        "the log-likelihood's relative difference",
    )
    parser.add_argument(
        "--onedal-python",
        metavar="PATH",
        help="a Python with daal4py 2024.7: also time oneDAL through it",
    )
    parser.add_argument(
        "--dgemm",
        action="store_true",
        help="also time numpy's float64 matrix product before and after the "
        "problems, and give fastem's flop rate as a share of it",
    )
    parser.add_argument(
        "--dgemm-size",
        type=int,
        default=4096,
        help="order of the --dgemm matrices (default: 4096)",
    )
    parser.add_argument(
        "--target-seconds",
        type=float,
        default=0.2,
        help="calibrate each timed difference to about this long (default: 0.2)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.scale is None:
        args.scale = problems.scale_from_env(default=1)
    if args.scale < 1:
        parser.error("--scale must be >= 1")
    if args.dgemm_size < 1:
        parser.error("--dgemm-size must be >= 1")
    if args.dgemm and args.dtype != "float64":
        parser.error("--dgemm compares fastem's float64 flop rate with DGEMM's: use "
                     "--dtype float64")
    if args.float32 and args.dtype != "float64":
        parser.error(
            "--float32 compares fastem float32 with float64: use --dtype float64"
        )
    return args


# --------------------------------------------------------------------------
# the machine


def _lscpu():
    try:
        output = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _fastem_threads():
    from fastem.kernels.threads import current_threads

    return current_threads()


def _git_commit():
    repository = problems.REPOSITORY
    try:
        commit = subprocess.run(
            ["git", "-C", repository, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", repository, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


# Environment variables that change which instructions the libraries timed here use.
TARGET_VARIABLES = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "OPENBLAS_CORETYPE",
                    "NPY_DISABLE_CPU_FEATURES")


def _target_line(fastem):
    """The CPU fastem's kernels are compiled for (numba's target: the host unless
    NUMBA_CPU_NAME names another), and the variables that chose it, if set."""
    import importlib

    import llvmlite.binding as llvm
    from numba.core import config

    try:
        vector = importlib.import_module(f"{fastem.__name__}.kernels.vector")
    except ImportError:  # an installed fastem from before fastem/kernels/
        vector = importlib.import_module(f"{fastem.__name__}._kernels_vector")
    registers = vector.vector_registers()
    cpu_name = config.CPU_NAME or llvm.get_host_cpu_name()
    line = f"- fastem's kernels compiled for: {cpu_name} ({registers} vector registers)"
    settings = [f"{name}={os.environ[name]!r}" for name in TARGET_VARIABLES
                if name in os.environ]
    return line + (f"; set: {', '.join(settings)}" if settings else "")


def dgemm_rate(size, repeats=5):
    """numpy's float64 ``a @ b`` of two (size, size) matrices: GFLOP/s (2 size^3
    flops) of the median of ``repeats`` products, after one untimed product."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size))
    b = rng.standard_normal((size, size))
    a @ b
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - started)
    return 2.0 * size**3 / sorted(seconds)[len(seconds) // 2] / 1e9


def machine_lines(args, onedal_versions, load_at_start, dgemm_rates=None):
    """The header: machine, threads, versions, command, date, load (and DGEMM)."""
    import llvmlite
    import numba
    import numpy
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    cpu = _lscpu()
    model = cpu.get("Model name", platform.processor() or "unknown CPU")
    sockets = int(cpu.get("Socket(s)", "1") or 1)
    cores = int(cpu.get("Core(s) per socket", "0") or 0) * sockets
    flags = cpu.get("Flags", "").split()
    simd = [flag for flag in ("avx2", "avx512f") if flag in flags]
    blas = [
        f"{pool['internal_api']} {pool['version']} ({pool['num_threads']} threads)"
        for pool in threadpool_info()
        if pool["user_api"] == "blas"
    ]
    fastem = problems.import_fastem()
    load_at_end = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    machine = (
        f"{model}, {cores or os.cpu_count()} cores ({os.cpu_count()} logical CPUs)"
    )
    if simd:
        machine += ", " + " ".join(simd)
    lines = [
        f"- machine: {machine}, {platform.system()} {platform.release()}",
        f"- threads: fastem {_fastem_threads()} (block kernels on a thread pool); "
        "scikit-learn BLAS: " + ("; ".join(blas) or "unknown"),
        f"- versions: fastem {fastem.__version__} (commit {_git_commit()}), "
        f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, "
        f"scipy {scipy.__version__}, numba {numba.__version__}, "
        f"llvmlite {llvmlite.__version__}, Python {platform.python_version()}",
    ]
    lines.append(_target_line(fastem))
    if onedal_versions:
        lines.append(
            f"- oneDAL: daal4py {onedal_versions['daal4py']} "
            f"({onedal_versions['oneDAL threads']} threads) via "
            f"{args.onedal_python}"
        )
    command = shlex.join(["python", "benchmarks/compare.py", *sys.argv[1:]])
    lines += [
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; "
        f"load average (1, 5, 15 min) at start: {load_at_start}, at end: {load_at_end}",
        f"- figures: median of {args.repeats} repeats; seconds per EM iteration "
        "(marginal: (time of a fit of {1} iterations - time of a fit of {0}) / "
        "{2}, every implementation over the same iterations, pairs of fits "
        "repeated to take --target-seconds); P4: milliseconds per whole fit call "
        "of 50 iterations".format(*problems.TIMED_ITERATIONS,
                                 problems.TIMED_ITERATIONS[1]
                                 - problems.TIMED_ITERATIONS[0]),
    ]
    if dgemm_rates:
        before, after = dgemm_rates
        lines.append(
            f"- DGEMM: numpy `a @ b`, float64, n = {args.dgemm_size}, median of 5, "
            f"the BLAS above: {before:.1f} GFLOP/s before the problems, {after:.1f} "
            "after; fastem's float64 GFLOP/s count N K (2 D^2 + 6 D + 7) flops per "
            "iteration ('full'), N K (8 D + 7) ('diag'), as shares of the higher"
        )
    return lines


# --------------------------------------------------------------------------
# the table


def _time_cell(timing):
    if timing.per_fit:
        return f"{timing.seconds * 1e3:.3g} ms/fit"
    return f"{timing.seconds:.3g}"


def _ratio(numerator, denominator):
    if denominator.seconds <= 0:
        return "n/a"
    return f"{numerator.seconds / denominator.seconds:.3g}x"


def _relative_difference(value, reference):
    return f"{abs(value - reference) / abs(reference):.1e}"


def _fill_dgemm_shares(rows, column, dgemm):
    """Turn each row's (rate, problem name) at ``column`` into the rate's cell and
    its share of ``dgemm`` GFLOP/s, with the target where issue 12 sets one."""
    for row in rows:
        rate, name = row[column], row[column + 1]
        if rate is None:  # P4: a whole fit, not an iteration
            row[column:column + 2] = ["", ""]
            continue
        target = f" (>= {DGEMM_TARGETS[name]:.0%})" if name in DGEMM_TARGETS else ""
        row[column:column + 2] = [f"{rate:.3g}", f"{rate / dgemm:.1%}{target}"]


def run(args, out=print):
    load_at_start = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    onedal = (
        problems.OneDALSubprocess(args.onedal_python) if args.onedal_python else None
    )
    onedal_versions = onedal.versions() if onedal else None
    fastem = problems.IMPLEMENTATIONS["fastem"]
    sklearn = problems.IMPLEMENTATIONS["sklearn"]
    # compile fastem's kernels (and start numba's threads) before anything is timed
    fastem.fit(problems.make_problem("P4", 1, args.dtype), 2)
    dgemm_before = dgemm_rate(args.dgemm_size) if args.dgemm else None

    columns = [
        "problem",
        "N",
        "D",
        "K",
        "covariance",
        "sklearn s/iter",
        "fastem s/iter",
        "sklearn/fastem (target)",
        "log-lik. rel. diff.",
    ]
    if onedal:
        columns += [
            "oneDAL s/iter",
            "oneDAL/fastem (target)",
            "oneDAL log-lik. rel. diff.",
        ]
    if args.dgemm:
        columns += ["fastem GFLOP/s", "share of DGEMM (target)"]
    if args.float32:
        columns += [
            "fastem float32 s/iter",
            "float64/float32 (target)",
            "float32 log-lik. rel. diff.",
        ]
    rows = []
    notes = []
    for name in args.problems:
        problem = problems.make_problem(name, args.scale, args.dtype)
        measured = {
            "sklearn": problems.measure(
                sklearn.fit, problem, args.repeats, args.target_seconds
            ),
            "fastem": problems.measure(
                fastem.fit, problem, args.repeats, args.target_seconds
            ),
        }
        if onedal:
            measured["onedal"] = onedal.measure(
                problem, args.repeats, args.target_seconds
            )
        if args.float32:
            problem32 = problems.make_problem(name, args.scale, "float32")
            measured["float32"] = problems.measure(
                fastem.fit, problem32, args.repeats, args.target_seconds
            )
        spec = problem.spec
        row = [
            problem.label,
            f"{problem.n_samples:,}",
            str(problem.n_features),
            str(problem.n_components),
            problem.covariance_type,
            _time_cell(measured["sklearn"]),
            _time_cell(measured["fastem"]),
            f"{_ratio(measured['sklearn'], measured['fastem'])} "
            f"(>= {SKLEARN_TARGETS[name]}x)",
            _relative_difference(
                measured["fastem"].log_likelihood, measured["sklearn"].log_likelihood
            ),
        ]
        if onedal:
            target = "" if spec.per_fit else f" (>= {ONEDAL_TARGET}x)"
            row += [
                _time_cell(measured["onedal"]),
                _ratio(measured["onedal"], measured["fastem"]) + target,
                _relative_difference(
                    measured["onedal"].log_likelihood,
                    measured["sklearn"].log_likelihood,
                ),
            ]
        if args.dgemm:
            # the share is filled in once the DGEMM rate after the problems is known
            seconds = measured["fastem"].seconds
            rate = (None if spec.per_fit
                    else problems.flops_per_iteration(problem) / seconds / 1e9)
            row += [rate, name]
        if args.float32:
            target = (
                f" (>= {FLOAT32_TARGETS[name]}x)" if name in FLOAT32_TARGETS else ""
            )
            row += [
                _time_cell(measured["float32"]),
                _ratio(measured["fastem"], measured["float32"]) + target,
                _relative_difference(
                    measured["float32"].log_likelihood,
                    measured["fastem"].log_likelihood,
                ),
            ]
        rows.append(row)
        notes += [
            f"{problem.label}: {timing.note}"
            for timing in measured.values()
            if timing.note
        ]
        print(f"# {problem.label} done", file=sys.stderr, flush=True)

    dgemm_rates = None
    if args.dgemm:
        dgemm_rates = (dgemm_before, dgemm_rate(args.dgemm_size))
        _fill_dgemm_shares(rows, columns.index("fastem GFLOP/s"), max(dgemm_rates))
    for line in machine_lines(args, onedal_versions, load_at_start, dgemm_rates):
        out(line)
    out("")
    out("| " + " | ".join(columns) + " |")
    out("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        out("| " + " | ".join(row) + " |")
    if notes:
        out("")
        for note in notes:
            out(f"- {note}")


def main(argv=None):
    run(parse_arguments(argv))


if __name__ == "__main__":
    main()
