"""Draw the README's two pictures of the Old Faithful model search.

    python docs/make_pictures.py   # docs/faithful_bic.png, docs/faithful_clusters.png
"""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

import fastem
from fastem import plot

HERE = Path(__file__).resolve().parent


def main():
    X = fastem.load_faithful(return_frame=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = fastem.GaussianMixtureIC(random_state=0).fit(X)
    figure = Figure(figsize=(5.5, 4), layout="constrained")
    ax = plot.criterion_curves(search, ax=figure.subplots())
    ax.set_ylim(
        2250, 2700
    )  # the spherical line starts at 4025; keep the minimum readable
    ax.set_title("Old Faithful: BIC of every cell")
    figure.savefig(HERE / "faithful_bic.png", dpi=80)
    figure = Figure(figsize=(5.5, 4), layout="constrained")
    ax = plot.clusters(search.best_estimator_, X.to_numpy(), ax=figure.subplots())
    ax.set_xlabel("eruptions (minutes)")
    ax.set_ylabel("waiting (minutes)")
    ax.set_title(
        f"chosen: {search.n_components_} components, '{search.covariance_type_}'"
    )
    figure.savefig(HERE / "faithful_clusters.png", dpi=80)
    print("wrote", HERE / "faithful_bic.png", "and", HERE / "faithful_clusters.png")


if __name__ == "__main__":
    main()
