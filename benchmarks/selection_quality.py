"""Which search reaches mclust's choices? GaussianMixtureIC against mclust's table.

For every data set of ``tests/data/mclust/reference.csv`` and every search
strategy (start and number of runs per cell), fits the grid (VII, VVI, EEE,
VVV = spherical, diag, tied, full; G = 1..9) and prints the model chosen by
BIC and by ICL, its criterion, mclust's choice and best value (in
scikit-learn's sign), and whether fastem's choice is mclust's or within 0.1%.

    python benchmarks/selection_quality.py
    python benchmarks/selection_quality.py --strategies hc:1 kmeans:20 --tol 1e-5
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastem.selection import GaussianMixtureIC  # noqa: E402
from tests.mclust_data import MODEL_OF_TYPE, load_dataset, mclust_reference  # noqa: E402

TOLERANCE = 1e-3  # relative, of mclust's best value


def evaluate(name, init_params, n_init, tol, random_state=0):
    X = load_dataset(name)
    reference = mclust_reference(name)
    rows = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GaussianMixtureIC(
            range(1, 10),
            init_params=init_params,
            n_init=n_init,
            tol=tol,
            random_state=random_state,
        ).fit(X)
    seconds = time.perf_counter() - start
    for criterion in ("bic", "icl"):
        from fastem.selection import _best_index

        best = search.results_[_best_index(search.results_, criterion)]
        mine = (MODEL_OF_TYPE[best["covariance_type"]], best["n_components"])
        theirs, their_value = reference.best(criterion)
        ok = mine == theirs or best[criterion] <= their_value + TOLERANCE * abs(
            their_value
        )
        rows.append((criterion, mine, best[criterion], theirs, their_value, ok))
    return rows, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=["kmeans:1", "kmeans:5", "kmeans:20", "hc:1", "hc:5"],
        help="START:N_INIT pairs",
    )
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--datasets", nargs="+", default=None)
    args = parser.parse_args(argv)
    from tests.mclust_data import DATASETS

    names = args.datasets or list(DATASETS)
    print(f"tol={args.tol}; criterion values in scikit-learn's sign (lower is better)")
    print(
        "| data | start | n_init | criterion | fastem choice | fastem value | "
        "mclust choice | mclust value | same or within 0.1% | grid seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for strategy in args.strategies:
            init_params, n_init = strategy.split(":")
            rows, seconds = evaluate(name, init_params, int(n_init), args.tol)
            for criterion, mine, value, theirs, their_value, ok in rows:
                print(
                    f"| {name} | {init_params} | {n_init} | {criterion} | "
                    f"{mine[0]} {mine[1]} | {value:.2f} | {theirs[0]} {theirs[1]} | "
                    f"{their_value:.2f} | {'yes' if ok else 'NO'} | {seconds:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
