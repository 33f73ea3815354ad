"""Memory an in-memory fit's start adds, per ``init_params`` (issue 13: at most 0.15x
the data for every start but scikit-learn's exact k-means).

Fits the benchmark problem (default P2: 10^6 x 8 float64, K = 16, full) in memory
from each start for ``--n-iter`` iterations and prints the peak of ``tracemalloc``
during ``fit`` (what numpy, scikit-learn and fastem allocate; the data, allocated
before, is not counted) in MiB and as a multiple of the data's size. Each start is
fitted once before it is measured, so that numba's compiler (which allocates) has
finished. The sampled starts (``init_sample_size``) are measured too.

    python benchmarks/start_memory.py [--problem P2] [--dtype float64] [--n-iter 2]

Numbers in the README come from a shared, noisy 2-core machine (the peak does not
depend on the machine's speed).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.problems import make_problem, traced_peak

STARTS = (
    ("random_from_data", {}),
    ("random", {}),
    ("k-means++", {}),
    ("k-means++", {"init_sample_size": 100_000}),
    ("kmeans", {"init_sample_size": 100_000}),
    ("kmeans", {}),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="P2")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--n-iter", type=int, default=2)
    args = parser.parse_args(argv)
    import fastem

    problem = make_problem(args.problem, dtype=args.dtype)
    X = problem.X
    print(f"{args.problem} {X.shape} {X.dtype}: data {X.nbytes / 2**20:.1f} MiB, "
          f"K = {problem.spec.n_components}, {problem.spec.covariance_type}, "
          f"{args.n_iter} iterations")
    print(f"{'start':<40} {'peak MiB':>9} {'x data':>7}")
    for init_params, extra in STARTS:
        def fit(init_params=init_params, extra=extra):
            model = fastem.GaussianMixture(
                problem.spec.n_components, covariance_type=problem.spec.covariance_type,
                init_params=init_params, max_iter=args.n_iter, tol=0.0, random_state=0,
                **extra,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X)

        fit()  # compile and load first
        peak = traced_peak(fit)
        name = init_params + "".join(f", {key}={value}" for key, value in extra.items())
        print(f"{name:<40} {peak / 2**20:9.1f} {peak / X.nbytes:7.3f}", flush=True)


if __name__ == "__main__":
    main()
