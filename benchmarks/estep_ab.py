"""Time one fused E-step pass (the statistics kernel) of P1-P5 in this checkout.

An A/B helper for kernel changes: run it from two checkouts (``--repo``) in
alternation, same machine, and compare the medians. Prints one JSON line per
problem: {"problem", "dtype", "threads", "median_ms", "runs_ms"}.

    python benchmarks/estep_ab.py --repo . --scale 4 --threads 1 --repeats 9
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".", help="fastem checkout to import")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--problems", default="P1,P2,P3,P5")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    sys.path.insert(0, str(repo))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    from problems import make_problem

    try:
        from fastem.em import driver as _driver
        from fastem.kernels.threads import thread_limit
    except ImportError:  # a checkout from before fastem/em/ and fastem/kernels/
        from fastem import _driver
        from fastem._kernels_threads import thread_limit

    for name in args.problems.split(","):
        for dtype in args.dtypes.split(","):
            problem = make_problem(name, args.scale, dtype)
            X = problem.X
            covariance_type = problem.covariance_type
            precisions_chol = _driver.precision_cholesky_from_precisions(
                np.asarray(problem.precisions_init), covariance_type)
            covariances = _driver.covariances_from_precisions_chol(precisions_chol,
                                                                   covariance_type)
            parameters = _driver.Parameters(np.asarray(problem.weights_init),
                                            np.asarray(problem.means_init), covariances,
                                            precisions_chol)
            block_size = _driver.default_block_size(*X.shape, problem.n_components,
                                                    covariance_type, X.itemsize)
            weights = np.ones(X.shape[0])
            runs = []
            with thread_limit(args.threads):
                _driver.sufficient_statistics(X, weights, parameters, covariance_type,
                                              block_size)
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    _driver.sufficient_statistics(X, weights, parameters, covariance_type,
                                                  block_size)
                    runs.append(1e3 * (time.perf_counter() - start))
            print(json.dumps({"problem": name, "dtype": dtype, "threads": args.threads,
                              "median_ms": round(statistics.median(runs), 2), "min_ms": round(min(runs), 2),
                              "runs_ms": [round(run, 2) for run in runs]}), flush=True)


if __name__ == "__main__":
    main()
