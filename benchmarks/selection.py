"""Time a model search: GaussianMixtureIC against a hand-written scikit-learn loop.

The same grid (n_components 1..9 x spherical, diag, tied, full) on two data
sets: Old Faithful (272 x 2) and 100,000 rows x 4 features drawn from a
mixture of four Gaussians (seeded). The scikit-learn loop is what users write
(scikit-learn issue #19338): one ``sklearn.mixture.GaussianMixture`` per cell,
``bic(X)`` of each, the smallest kept. fastem runs twice: with the same starts
as the loop (``init_params='kmeans', n_init=1``: the same work, one k-means
start per cell) and with its defaults (an mclust-style hierarchical start and
a k-means start per cell). Each is run once (``--repeats`` for more; the
median is printed); the table gives seconds, the ratio to scikit-learn and the
cell each picks.

    python benchmarks/selection.py
    python benchmarks/selection.py --repeats 3 --n-samples 20000
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fastem  # noqa: E402
from fastem.selection import GaussianMixtureIC  # noqa: E402

TYPES = ("spherical", "diag", "tied", "full")
COUNTS = range(1, 10)


def blobs(n_samples, seed=0):
    """n_samples x 4 from four Gaussians with random covariances (seeded, fixed)."""
    rng = np.random.default_rng(seed)
    n_features, n_components = 4, 4
    centres = rng.normal(scale=5.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = np.empty((n_samples, n_features))
    for k in range(n_components):
        factor = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        members = labels == k
        X[members] = centres[k] + rng.normal(size=(members.sum(), n_features)) @ factor
    return X


def sklearn_loop(X):
    from sklearn.mixture import GaussianMixture

    best = None
    for k in COUNTS:
        for covariance_type in TYPES:
            model = GaussianMixture(k, covariance_type=covariance_type, random_state=0)
            bic = model.fit(X).bic(X)
            if best is None or bic < best[0]:
                best = (bic, k, covariance_type)
    return best


def fastem_grid(X, **params):
    search = GaussianMixtureIC(COUNTS, TYPES, random_state=0, **params).fit(X)
    return search.criterion_, search.n_components_, search.covariance_type_


def timed(function, X, repeats):
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(X)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = "?"
    import sklearn

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs; fastem {fastem.__version__} "
        f"(commit {commit}), scikit-learn {sklearn.__version__}; load average at "
        f"start {', '.join(f'{v:.2f}' for v in load)}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=100_000)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"- machine: {machine()}")
    print(
        f"- command: python benchmarks/selection.py --repeats {args.repeats} "
        f"--n-samples {args.n_samples}"
    )
    print(
        "- grid: n_components 1..9 x spherical, diag, tied, full (36 cells); "
        f"median of {args.repeats} run(s), after one warm-up grid on Old Faithful"
    )
    print()
    print("| data | implementation | seconds | sklearn / this | chosen cell (BIC) |")
    print("|---|---|---|---|---|")
    fastem_grid(fastem.load_faithful())  # load the compiled kernels
    datasets = {
        "Old Faithful (272 x 2)": fastem.load_faithful(),
        f"blobs ({args.n_samples:,} x 4)": blobs(args.n_samples),
    }
    runs = {
        "scikit-learn loop (k-means start)": sklearn_loop,
        "fastem, k-means start (same work)": lambda X: fastem_grid(
            X, init_params="kmeans", n_init=1
        ),
        "fastem, defaults (hc + k-means)": fastem_grid,
    }
    for name, X in datasets.items():
        reference = None
        for label, function in runs.items():
            seconds, (bic, k, covariance_type) = timed(function, X, args.repeats)
            if reference is None:
                reference = seconds
            print(
                f"| {name} | {label} | {seconds:.3g} | {reference / seconds:.2g}x | "
                f"{k} {covariance_type} ({bic:.2f}) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
