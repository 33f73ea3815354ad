"""k-means++ seeding: fastem's bounded-memory rows beside scikit-learn's kmeans_plusplus.

On one problem of ``benchmarks/problems.py`` (default P2: 10^6 x 8, K=16), unit
weights as a broadcast array, random_state 0, 1, 2 ..., prints per dtype:

* seconds per call, the median over ``--repeats`` in-process calls (kernels
  compiled first), for ``sklearn.cluster.kmeans_plusplus`` and
  ``fastem.em.kmeans_plusplus.kmeans_plusplus_rows``;
* tracemalloc's peak during one call, in bytes and as a multiple of X's size;
* how many of the K rows agree, per seed.

    python benchmarks/kmeans_plusplus.py [--problem P2] [--scale 1] [--repeats 3]

Numbers in the README come from a shared, noisy 2-core machine.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import kmeans_plusplus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.problems import make_problem, traced_peak  # noqa: E402
from fastem.em.kmeans_plusplus import kmeans_plusplus_rows  # noqa: E402


def _sklearn(X, sample_weight, n_clusters, seed):
    return kmeans_plusplus(X, n_clusters, random_state=np.random.RandomState(seed),
                           sample_weight=sample_weight)[1]


def _fastem(X, sample_weight, n_clusters, seed):
    return kmeans_plusplus_rows(X, sample_weight, n_clusters, np.random.RandomState(seed))


IMPLEMENTATIONS = {"sklearn": _sklearn, "fastem": _fastem}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="P2")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    for dtype in ("float64", "float32"):
        problem = make_problem(args.problem, args.scale, dtype)
        X, n_clusters = problem.X, problem.n_components
        unit = np.broadcast_to(1.0, (X.shape[0],))
        _fastem(X[:1000], unit[:1000], n_clusters, 0)  # compile
        seconds = {name: [] for name in IMPLEMENTATIONS}
        rows = {name: [] for name in IMPLEMENTATIONS}
        for seed in range(args.repeats):
            for name, function in IMPLEMENTATIONS.items():
                start = time.perf_counter()
                rows[name].append(function(X, unit, n_clusters, seed))
                seconds[name].append(time.perf_counter() - start)
        agree = [int(np.sum(a == b)) for a, b in zip(rows["fastem"], rows["sklearn"])]
        print(f"{problem.label} {dtype} (X: {X.nbytes} bytes, K={n_clusters}); "
              f"rows equal to scikit-learn's per seed: {agree} of {n_clusters}")
        for name, function in IMPLEMENTATIONS.items():
            peak = traced_peak(function, X, unit, n_clusters, 0)
            print(f"  {name:8s} {statistics.median(seconds[name]):.3f} s (median of "
                  f"{args.repeats}), traced peak {peak} bytes = {peak / X.nbytes:.4f} x X")


if __name__ == "__main__":
    main()
