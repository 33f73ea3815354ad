"""Time fastem's and scikit-learn's BayesianGaussianMixture side by side.

Run from the repository root::

    python benchmarks/compare_bayesian.py                     # P1 P2 P3 P5, full size
    python benchmarks/compare_bayesian.py --scale 100         # N/100: a quick look
    python benchmarks/compare_bayesian.py --problems P1 --prior dirichlet_distribution

The data are those of ``benchmarks/problems.py`` (P4, a whole fit of four
points, is left out). Both estimators start from the same responsibilities
(``init_params='random_from_data'``, ``random_state=0``: the same K rows) with
``tol=0``, so a fit runs exactly ``max_iter`` iterations, in this one process,
one after the other, with their default threads. Figures are medians of
``--repeats`` marginal seconds per iteration, (time of a fit of 3
iterations - time of a fit of 1) / 2, as ``benchmarks/compare.py``
measures them (``problems.seconds_per_iteration``): what a fit does once (input
checks, priors, the initialisation) cancels. "lower bound rel. diff." compares
the final ``lower_bound_`` of a fit of the problem's iteration count (10).
"fastem GMM s/iter" is fastem's ``GaussianMixture`` on the same problem from
the same start (``problems.FastemRandomStart``), for the cost of the
variational extras. The estimators are ``problems.py``'s adapters
(``problems.FastemBayesian``, ``problems.SklearnBayesian``), the ones the asv
suite and ``tests/test_benchmarks.py`` time and check.
"""

import argparse
import contextlib
import os
import shlex
import sys

try:
    from . import compare, problems
except ImportError:  # run as a script: python benchmarks/compare_bayesian.py
    import compare
    import problems

PROBLEMS = problems.BAYESIAN_PROBLEM_NAMES
PRIORS = problems.BAYESIAN_PRIORS
# issue 15: the same targets as GaussianMixture's, fastem float64 against scikit-learn
SKLEARN_TARGETS = {name: compare.SKLEARN_TARGETS[name] for name in PROBLEMS}


def implementations(prior_type):
    """{'sklearn': fit, 'fastem': fit} for the weight prior (problems.py's adapters)."""
    return {
        "sklearn": problems.SklearnBayesian(prior_type).fit,
        "fastem": problems.FastemBayesian(prior_type).fit,
    }


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Time fastem's and scikit-learn's BayesianGaussianMixture side by "
        "side on P1, P2, P3 and P5 and print a markdown table."
    )
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS,
                        metavar="P", help="problems to run (default: P1 P2 P3 P5)")
    parser.add_argument("--prior", choices=PRIORS, default="dirichlet_process",
                        help="weight_concentration_prior_type (default: dirichlet_process)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="repeats per figure; the median is reported (default: 5)")
    parser.add_argument("--dtype", choices=problems.DTYPES, default="float64",
                        help="dtype of X for both implementations (default: float64)")
    parser.add_argument("--scale", type=int, default=None,
                        help="divide n_samples by this (default: "
                        f"${problems.SCALE_ENV} or 1, the full problems)")
    parser.add_argument("--target-seconds", type=float, default=0.2,
                        help="calibrate each timed difference to about this long "
                        "(default: 0.2)")
    parser.add_argument("--sklearn-blas-threads", type=int, default=None, metavar="N",
                        help="limit scikit-learn's BLAS to N threads while it is timed "
                        "(threadpoolctl; default: its own setting). On small problems "
                        "on a busy machine OpenBLAS's threads can make scikit-learn "
                        "many times slower than one thread")
    parser.add_argument("--no-gmm", action="store_true",
                        help="leave out the fastem GaussianMixture column")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.sklearn_blas_threads is not None and args.sklearn_blas_threads < 1:
        parser.error("--sklearn-blas-threads must be >= 1")
    if args.scale is None:
        args.scale = problems.scale_from_env(default=1)
    if args.scale < 1:
        parser.error("--scale must be >= 1")
    return args


def header_lines(args, load_at_start):
    """compare.py's machine description, with this script's command and figures."""
    lines = compare.machine_lines(args, None, load_at_start)
    command = shlex.join(["python", "benchmarks/compare_bayesian.py", *sys.argv[1:]])
    for index, line in enumerate(lines):
        if line.startswith("- command:"):
            lines[index] = f"- command: `{command}`"
        elif line.startswith("- figures:"):
            lines[index] = (
                f"- figures: median of {args.repeats} repeats; seconds per iteration "
                "(marginal: (time of a fit of {1} iterations - time of a fit of {0}) "
                "/ {2}, every implementation over the same iterations); weight prior "
                "{3}; start init_params='random_from_data', random_state=0".format(
                    *problems.TIMED_ITERATIONS,
                    problems.TIMED_ITERATIONS[1] - problems.TIMED_ITERATIONS[0],
                    args.prior)
            )
    if args.sklearn_blas_threads is not None:
        lines.append(f"- scikit-learn timed with its BLAS limited to "
                     f"{args.sklearn_blas_threads} thread(s) (--sklearn-blas-threads)")
    return lines


def _blas_limit(args):
    """threadpoolctl's limit of the BLAS threads for --sklearn-blas-threads."""
    if args is None or args.sklearn_blas_threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=args.sklearn_blas_threads, user_api="blas")


def run(args, out=print):
    load_at_start = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    fits = implementations(args.prior)
    gmm = problems.FastemRandomStart()
    # compile fastem's kernels (and start numba's threads) before anything is timed
    warm_up = problems.make_problem("P1", max(args.scale, 1000), args.dtype)
    fits["fastem"](warm_up, 2)
    columns = ["problem", "N", "D", "K", "covariance", "sklearn s/iter", "fastem s/iter",
               "sklearn/fastem (target)", "lower bound rel. diff."]
    if not args.no_gmm:
        columns += ["fastem GMM s/iter", "Bayesian/GMM"]
    rows = []
    for name in args.problems:
        problem = problems.make_problem(name, args.scale, args.dtype)
        measured = {}
        for implementation, fit in fits.items():
            with _blas_limit(args if implementation == "sklearn" else None):
                measured[implementation] = problems.measure(
                    fit, problem, args.repeats, args.target_seconds
                )
        row = [
            problem.label,
            f"{problem.n_samples:,}",
            str(problem.n_features),
            str(problem.n_components),
            problem.covariance_type,
            compare._time_cell(measured["sklearn"]),
            compare._time_cell(measured["fastem"]),
            f"{compare._ratio(measured['sklearn'], measured['fastem'])} "
            f"(>= {SKLEARN_TARGETS[name]}x)",
            compare._relative_difference(measured["fastem"].log_likelihood,
                                         measured["sklearn"].log_likelihood),
        ]
        if not args.no_gmm:
            measured["gmm"] = problems.measure(gmm.fit, problem, args.repeats,
                                               args.target_seconds)
            row += [compare._time_cell(measured["gmm"]),
                    compare._ratio(measured["fastem"], measured["gmm"])]
        rows.append(row)
        print(f"# {problem.label} done", file=sys.stderr, flush=True)
    for line in header_lines(args, load_at_start):
        out(line)
    out("")
    out("| " + " | ".join(columns) + " |")
    out("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        out("| " + " | ".join(row) + " |")


def main(argv=None):
    run(parse_arguments(argv))


if __name__ == "__main__":
    main()
