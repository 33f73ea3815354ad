"""Time the first call: compiling the kernels into an empty cache, and a warm start.

Run from the repository root (nothing else should run on the machine)::

    python benchmarks/first_call.py                 # everything, about 3-5 minutes
    python benchmarks/first_call.py --warm-runs 3 --skip-compile

Every figure comes from a fresh Python process, so it includes what a user's
process pays (interpreter start, imports, compiling or loading the kernels):

* ``fastem fit`` (the README's first command, 'full', the bundled data) with an
  empty numba cache, then ``fastem fit --covariance-type diag`` into the same
  cache: wall seconds and CPU seconds (user + system) of each;
* everything one dtype and covariance family needs (``fastem._warmup._task``:
  a small and a large fit, ``predict``, ``predict_proba``, ``score_samples``),
  each in a fresh process with its own empty cache: CPU seconds;
* warm: with every kernel in the cache, a process that imports numpy and fastem
  and fits ``GaussianMixture(2, covariance_type=c, random_state=0)`` to the
  bundled data for the four covariance types: seconds in the process (from
  before the imports to after the last fit) and wall seconds of the process.

The targets of issue 12: the first fit <= 10 s wall; each dtype and family
<= 20 s CPU; the warm start <= 2 s. Prints a markdown table under a line that
names the CPU.
"""

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from .compare import _lscpu
except ImportError:  # run as a script: python benchmarks/first_call.py
    from compare import _lscpu

REPOSITORY = Path(__file__).resolve().parent.parent

WARM_SCRIPT = """
import time
started = time.perf_counter()
import numpy as np
import fastem
from fastem.datasets import load_faithful
X = load_faithful()
for covariance_type in ("full", "tied", "diag", "spherical"):
    fastem.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
print(time.perf_counter() - started)
"""

TASK_SCRIPT = """
import sys
from fastem._warmup import _task
_task(sys.argv[1], sys.argv[2], "small")
_task(sys.argv[1], sys.argv[2], "large")
"""


def run(command, cache_directory):
    """(wall seconds, CPU seconds of the child, stdout) of one process."""
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(cache_directory))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        command,
        env=environment,
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout


def fastem_command():
    executable = shutil.which("fastem", path=str(Path(sys.executable).parent))
    return [executable] if executable else [sys.executable, "-m", "fastem"]


def cpu_name():
    """The CPU as ``lscpu`` names it (compare.py's reader), with its family, model,
    logical CPUs and whether it has AVX-512 or AVX2."""
    fields = _lscpu()
    flags = fields.get("Flags", "").split()
    isa = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "-"
    return (
        f"{fields.get('Model name', platform.processor() or platform.machine())} "
        f"(family {fields.get('CPU family', '?')}, model {fields.get('Model', '?')}), "
        f"{os.cpu_count()} CPUs, {isa}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument(
        "--skip-compile",
        action="store_true",
        help="only the warm start (compiles into a scratch cache first)",
    )
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastem-first-call-") as scratch:
        scratch = Path(scratch)
        shared_cache = scratch / "cache"
        if not args.skip_compile:
            wall, cpu, _ = run([*fastem_command(), "fit"], shared_cache)
            rows.append(
                (
                    "first `fastem fit` ('full'), empty cache",
                    f"{wall:.1f} s wall",
                    f"{cpu:.1f} s CPU",
                    "<= 10 s wall",
                )
            )
            wall, cpu, _ = run(
                [*fastem_command(), "fit", "--covariance-type", "diag"], shared_cache
            )
            rows.append(
                (
                    "then `fastem fit --covariance-type diag`",
                    f"{wall:.1f} s wall",
                    f"{cpu:.1f} s CPU",
                    "",
                )
            )
            for dtype in ("float64", "float32"):
                for family in ("dense", "diagonal"):
                    wall, cpu, _ = run(
                        [sys.executable, "-c", TASK_SCRIPT, dtype, family],
                        scratch / f"{dtype}-{family}",
                    )
                    rows.append(
                        (
                            f"everything {dtype} '{family}' needs, empty cache",
                            f"{wall:.1f} s wall",
                            f"{cpu:.1f} s CPU",
                            "<= 20 s CPU",
                        )
                    )
        # fill the shared cache with every kernel the warm script needs
        run([sys.executable, "-c", WARM_SCRIPT], shared_cache)
        in_process, walls = [], []
        for _ in range(args.warm_runs):
            wall, _, output = run([sys.executable, "-c", WARM_SCRIPT], shared_cache)
            in_process.append(float(output.strip().splitlines()[-1]))
            walls.append(wall)
        rows.append(
            (
                f"warm: import + a first fit of each covariance type "
                f"(median of {args.warm_runs})",
                f"{statistics.median(walls):.2f} s wall "
                f"({min(walls):.2f}-{max(walls):.2f})",
                f"{statistics.median(in_process):.2f} s in the process "
                f"({min(in_process):.2f}-{max(in_process):.2f})",
                "<= 2 s",
            )
        )
    print(f"- machine: {cpu_name()}")
    options = " ".join(sys.argv[1:] if argv is None else argv)
    print(
        f"- command: `{' '.join(['python benchmarks/first_call.py', options]).strip()}`"
    )
    print(
        f"- load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print()
    print("| | wall | CPU / in process | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
