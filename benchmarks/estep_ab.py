"""Time one fused E-step pass (the statistics kernel) of P1-P5, for kernel A/B tests.

Two ways to run it:

* ``--repo DIR``: the pass of one checkout, one JSON line per problem and dtype
  ({"problem", "dtype", "threads", "median_ms", "min_ms", "runs_ms"}); run it
  from two checkouts in alternation and compare the medians.
* ``--checkouts LABEL=DIR ...``: several checkouts in one process, their passes
  alternated round by round (the order reversed every other round), so that a
  machine whose speed drifts from minute to minute slows them alike. Each
  checkout's ``fastem`` package is copied to ``--work`` as ``fastem_LABEL``
  with its imports renamed (re-copied when its sources change; numba's cache
  is kept beside the copy). One JSON line per problem and dtype: each label's
  median over the rounds of the best of three passes, and its ratio to the
  first label's.

    python benchmarks/estep_ab.py --repo . --scale 4 --threads 1 --repeats 9
    python benchmarks/estep_ab.py --checkouts old=../before new=. --problems P2,P3 \\
        --scale 2 --threads 1 --rounds 15
    python benchmarks/estep_ab.py --checkouts old=../before new=. --problems P3 \\
        --iterations 5     # from the parameters after five EM iterations
"""

import argparse
import hashlib
import importlib
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=".", help="fastem checkout to import")
    parser.add_argument("--checkouts", nargs="+", metavar="LABEL=DIR",
                        help="checkouts to alternate in this process")
    parser.add_argument("--work", default=".estep_ab",
                        help="where --checkouts puts the renamed copies")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--problems", default="P1,P2,P3,P5")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--iterations", type=int, default=0,
                        help="time the pass from the parameters after this many EM "
                             "iterations from the problem's start (fitted by the "
                             "fastem installed with --checkouts, by scikit-learn "
                             "with --repo; never by a checkout under test; 0: the "
                             "start)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.checkouts:
        modules = {label: renamed_package(label, Path(path), Path(args.work))
                   for label, path in (spec.split("=", 1) for spec in args.checkouts)}
        alternate(modules, args)
        return
    sys.path.insert(0, str(Path(args.repo).resolve()))
    try:
        driver = importlib.import_module("fastem.em.driver")
        threads = importlib.import_module("fastem.kernels.threads")
    except ImportError:  # a checkout from before fastem/em/ and fastem/kernels/
        driver = importlib.import_module("fastem._driver")
        threads = importlib.import_module("fastem._kernels_threads")
    for problem in problems(args):
        runs = []
        start = start_of(problem, args.iterations, fitted_by="sklearn")
        run = pass_of(driver, problem, start)
        with threads.thread_limit(args.threads):
            run()
            for _ in range(args.repeats):
                start = time.perf_counter()
                run()
                runs.append(1e3 * (time.perf_counter() - start))
        print(json.dumps({"problem": problem.name, "dtype": problem.dtype,
                          "threads": args.threads,
                          "median_ms": round(statistics.median(runs), 2),
                          "min_ms": round(min(runs), 2),
                          "runs_ms": [round(run, 2) for run in runs]}), flush=True)


def renamed_package(label, checkout, work):
    """(driver, threads) modules of ``checkout``'s fastem, imported as
    fastem_<label>."""
    copy = renamed_copy(label, checkout, work)
    if str(copy.parent) not in sys.path:
        sys.path.insert(0, str(copy.parent))
    return (importlib.import_module(f"{copy.name}.em.driver"),
            importlib.import_module(f"{copy.name}.kernels.threads"))


def renamed_copy(label, checkout, work):
    """``checkout``'s fastem package copied to ``work``/fastem_<label>, its imports of
    fastem renamed; copied again only when the checkout's sources change, so numba's
    cache beside the copy stays valid. Returns the copy's path."""
    name = f"fastem_{label}"
    source = checkout.resolve() / "fastem"
    files = sorted(source.rglob("*.py"))
    digest = hashlib.sha256(b"".join(str(path.relative_to(source)).encode() + b"\0"
                                     + path.read_bytes() for path in files)).hexdigest()
    copy = work.resolve() / name
    stamp = copy / ".source-digest"
    if not (stamp.exists() and stamp.read_text() == digest):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
        for path in copy.rglob("*.py"):
            text = path.read_text()
            renamed = re.sub(r"\b(from|import) fastem\b", rf"\1 {name}", text)
            if renamed != text:
                path.write_text(renamed)
        stamp.write_text(digest)
    return copy


def alternate(modules, args):
    for problem in problems(args):
        start = start_of(problem, args.iterations)
        runs = {label: (pass_of(driver, problem, start), threads)
                for label, (driver, threads) in modules.items()}
        times = {label: [] for label in modules}
        for round_index in range(args.rounds):
            order = list(modules) if round_index % 2 == 0 else list(modules)[::-1]
            for label in order:
                run, threads = runs[label]
                with threads.thread_limit(args.threads):
                    if round_index == 0:
                        run()  # compiles, or loads from numba's cache
                    best = float("inf")
                    for _ in range(3):
                        start = time.perf_counter()
                        run()
                        best = min(best, time.perf_counter() - start)
                times[label].append(1e3 * best)
        medians = {label: statistics.median(values) for label, values in times.items()}
        first = medians[next(iter(modules))]
        print(json.dumps({"problem": problem.name, "dtype": problem.dtype,
                          "threads": args.threads, "rounds": args.rounds,
                          "median_ms": {label: round(value, 2)
                                        for label, value in medians.items()},
                          "ratio": {label: round(value / first, 3)
                                    for label, value in medians.items()}}), flush=True)


def problems(args):
    from problems import make_problem

    for name in args.problems.split(","):
        for dtype in args.dtypes.split(","):
            yield make_problem(name, args.scale, dtype)


def start_of(problem, iterations, fitted_by="fastem"):
    """None (the problem's start), or (weights, means, covariances, precisions_chol)
    after ``iterations`` EM iterations from it (components separate and
    responsibilities sparsen as a fit goes on, which the problem's start does not
    show), the same parameters for every checkout: fitted by the installed fastem
    (``fitted_by="fastem"``, for --checkouts, whose checkouts are renamed copies),
    or by scikit-learn (``"sklearn"``, for --repo, where ``import fastem`` would
    import the checkout under test)."""
    if not iterations:
        return None
    import warnings

    if fitted_by == "sklearn":
        from sklearn.mixture import GaussianMixture
    else:
        from fastem import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0: ConvergenceWarning
        model = GaussianMixture(
            problem.n_components, covariance_type=problem.covariance_type, tol=0,
            max_iter=iterations, weights_init=problem.weights_init,
            means_init=problem.means_init, precisions_init=problem.precisions_init,
        ).fit(problem.X)
    return (model.weights_, model.means_, model.covariances_,
            model.precisions_cholesky_)


def parameters_of(driver, problem, start=None):
    """``driver``'s Parameters at ``problem``'s start, or at ``start`` (start_of)."""
    import numpy as np

    if start is not None:
        return driver.Parameters(*start)
    covariance_type = problem.covariance_type
    precisions_chol = driver.precision_cholesky_from_precisions(
        np.asarray(problem.precisions_init), covariance_type)
    covariances = driver.covariances_from_precisions_chol(precisions_chol,
                                                          covariance_type)
    return driver.Parameters(np.asarray(problem.weights_init),
                             np.asarray(problem.means_init), covariances,
                             precisions_chol)


def pass_of(driver, problem, start=None):
    """One E-step pass of ``problem`` by ``driver``'s statistics, from its start or
    from ``start`` (see start_of)."""
    X = problem.X
    covariance_type = problem.covariance_type
    parameters = parameters_of(driver, problem, start)
    block_size = driver.default_block_size(*X.shape, problem.n_components,
                                           covariance_type, X.itemsize)
    weights = fit_weights(X.shape[0])
    return lambda: driver.sufficient_statistics(X, weights, parameters, covariance_type,
                                                block_size)


def fit_weights(n_samples):
    """The sample weights of a fit given none: a read-only zero-stride view of 1.0
    (``fastem.em.sources.unit_weights``), which the kernels take as one weight for
    every row. An array of ones is a per-row weight they read from memory with the
    data (a copy loop of 8% of P1's pass under perf), which fits without weights
    do not do. Built here, not imported from fastem.em.sources: ``--repo`` also
    times checkouts from before fastem/em/ existed."""
    import numpy as np

    return np.broadcast_to(np.float64(1.0), (n_samples,))


if __name__ == "__main__":
    main()
