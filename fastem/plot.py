"""Pictures of fitted mixtures and of a model search, as mclust's ``plot()`` draws them.

Needs matplotlib (``pip install "fastem[plot]"``); it is imported only when a
function here is called, so ``import fastem`` never imports it. Every function but
:func:`pairs` (a figure of its own) takes an optional matplotlib ``ax`` (a new
figure is made without one) and returns the axes it drew on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clusters", "convergence", "criterion_curves", "pairs", "uncertainty"]

#: Ellipses drawn by :func:`clusters`: 1 and 2 standard deviations.
ELLIPSE_SIGMAS = (1.0, 2.0)
#: :func:`pairs` draws at most this many features.
MAX_PAIRS_FEATURES = 6
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "fastem.plot needs matplotlib; install it with "
            '`pip install "fastem[plot]"` '
            "or `pip install matplotlib`"
        ) from exc
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots()
    return ax


def _check_fitted(model):
    """(the fitted mixture to draw, the feature names it or the search was fitted
    with, or None)."""
    from sklearn.utils.validation import check_is_fitted

    names = getattr(model, "feature_names_in_", None)
    if hasattr(model, "best_estimator_") or (
        not hasattr(model, "means_") and hasattr(model, "results_")
    ):
        check_is_fitted(model, "best_estimator_")
        return model.best_estimator_, names
    check_is_fitted(model, "means_")
    return model, names


def _data(model, X):
    """(X as a float64 array, to draw; X as the model's inference takes it: as given
    when the model was fitted with feature names, whose columns it then checks)."""
    points = np.asarray(X, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(
            f"X must be 2-D (n_samples, n_features), got shape {points.shape}."
        )
    n_features = model.means_.shape[1]
    if points.shape[1] != n_features:
        raise ValueError(
            f"X has {points.shape[1]} features, but the model was fitted on "
            f"{n_features}."
        )
    return points, (X if hasattr(model, "feature_names_in_") else points)


def component_covariance(model, k):
    """The (n_features, n_features) covariance of component ``k`` of a fitted model."""
    covariances = np.asarray(model.covariances_, dtype=np.float64)
    n_features = model.means_.shape[1]
    covariance_type = model.covariance_type
    if covariance_type == "full":
        return covariances[k]
    if covariance_type == "tied":
        return covariances
    if covariance_type == "diag":
        return np.diag(covariances[k])
    return np.eye(n_features) * covariances[k]


def ellipse_geometry(mean, covariance, dims, n_sigma=1.0):
    """Centre, full axis lengths and angle (degrees) of an n-sigma ellipse.

    The ellipse of the component's marginal distribution on features ``dims``:
    ``(x - mean)^T C^-1 (x - mean) = n_sigma**2`` with C the 2 x 2 block of the
    covariance. Returns ``(centre, width, height, angle)`` as
    :class:`matplotlib.patches.Ellipse` takes them (width along the first
    eigenvector).
    """
    dims = list(dims)
    block = np.asarray(covariance)[np.ix_(dims, dims)]
    eigenvalues, eigenvectors = np.linalg.eigh(block)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    width, height = 2.0 * n_sigma * np.sqrt(eigenvalues[::-1])
    major = eigenvectors[:, -1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    return np.asarray(mean)[dims], float(width), float(height), angle


def criterion_curves(selection, ax=None, criterion=None):
    """The criterion against n_components, one line per covariance type.

    mclust's BIC plot, in scikit-learn's sign (lower is better); the chosen
    cell (the best by the criterion drawn) is circled. Failed and skipped cells
    are left out of their line.

    Parameters
    ----------
    selection : fastem.GaussianMixtureIC
        A fitted search.
    ax : matplotlib Axes, optional
    criterion : {'bic', 'aic', 'icl'}, optional
        Default: the one the search chose by.

    Returns
    -------
    ax : matplotlib Axes
    """
    from sklearn.utils.validation import check_is_fitted

    from fastem.selection import CRITERIA, _best_index

    check_is_fitted(selection, "results_")
    criterion = criterion or selection.criterion
    if criterion not in CRITERIA:
        raise ValueError(
            f"criterion must be one of {', '.join(map(repr, CRITERIA))} (lower is "
            f"better), got {criterion!r}."
        )
    rows, columns, values = selection.results_.table(criterion)
    ax = _axes(ax)
    for j, covariance_type in enumerate(columns):
        ax.plot(
            rows,
            values[:, j],
            marker=_MARKERS[j % len(_MARKERS)],
            label=covariance_type,
        )
    records = list(selection.results_)
    chosen = records[_best_index(records, criterion)]  # the best by this criterion
    ax.plot(
        [chosen["n_components"]],
        [chosen[criterion]],
        marker="o",
        markersize=16,
        markerfacecolor="none",
        markeredgecolor="black",
        linestyle="none",
        label=f"best: {chosen['n_components']} {chosen['covariance_type']}",
    )
    ax.set_xlabel("n_components")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_xticks(rows)
    ax.legend()
    return ax


def clusters(model, X, dims=(0, 1), ax=None):
    """Points coloured by component, with each component's 1 and 2 sigma ellipses.

    Parameters
    ----------
    model : fastem.GaussianMixture or fitted GaussianMixtureIC (its best model)
    X : array-like of shape (n_samples, n_features)
    dims : pair of int, default=(0, 1)
        The two features shown; the ellipses are those of the components'
        marginal distributions on them.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
        Its patches are the ellipses, component by component, 1 sigma then
        2 sigma.
    """
    model, names = _check_fitted(model)
    points, X = _data(model, X)
    return _clusters(model, names, points, model.predict(X), dims, ax)


def _clusters(model, names, X, labels, dims, ax):
    """:func:`clusters` of the points X (an array) with their labels."""
    from matplotlib.patches import Ellipse

    dims = _check_dims(dims, X.shape[1])
    ax = _axes(ax)
    colours = _colours(model.n_components)
    for k in range(model.n_components):
        members = labels == k
        ax.scatter(
            X[members, dims[0]],
            X[members, dims[1]],
            s=12,
            color=colours[k],
            marker=_MARKERS[k % len(_MARKERS)],
            label=f"component {k + 1}",
        )
        covariance = component_covariance(model, k)
        for n_sigma in ELLIPSE_SIGMAS:
            centre, width, height, angle = ellipse_geometry(
                model.means_[k], covariance, dims, n_sigma
            )
            ax.add_patch(
                Ellipse(
                    centre,
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    edgecolor=colours[k],
                    linestyle="-" if n_sigma == 1 else "--",
                )
            )
        ax.plot(*model.means_[k][list(dims)], marker="+", color="black", markersize=10)
    _label_axes(ax, names, dims)
    ax.legend(fontsize="small")
    return ax


def pairs(model, X):
    """:func:`clusters` for every pair of features (at most six features).

    Parameters
    ----------
    model : fastem.GaussianMixture or fitted GaussianMixtureIC
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    axes : ndarray of matplotlib Axes, shape (n_features, n_features)
        Off-diagonal (i, j) shows feature j against feature i; the diagonal
        holds each feature's histogram.
    """
    model, names = _check_fitted(model)
    X, given = _data(model, X)
    n_features = X.shape[1]
    if n_features < 2 or n_features > MAX_PAIRS_FEATURES:
        raise ValueError(
            f"pairs draws 2 to {MAX_PAIRS_FEATURES} features, X has {n_features}; "
            "use clusters(model, X, dims=(i, j)) for chosen features"
        )
    plt = _pyplot()
    labels = model.predict(given)  # once, for every panel
    figure, axes = plt.subplots(
        n_features,
        n_features,
        figsize=(2.2 * n_features, 2.2 * n_features),
        squeeze=False,
    )
    for i in range(n_features):
        for j in range(n_features):
            ax = axes[i, j]
            if i == j:
                ax.hist(X[:, i], bins=20, color="grey")
            else:
                _clusters(model, names, X, labels, (j, i), ax)
                legend = ax.get_legend()
                if legend is not None:
                    legend.remove()
    figure.tight_layout()
    return axes


def uncertainty(model, X, dims=(0, 1), ax=None):
    """Points sized by their classification uncertainty, 1 - max_k r_ik.

    Parameters
    ----------
    model : fastem.GaussianMixture or fitted GaussianMixtureIC
    X : array-like of shape (n_samples, n_features)
    dims : pair of int, default=(0, 1)
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    model, names = _check_fitted(model)
    X, given = _data(model, X)
    dims = _check_dims(dims, X.shape[1])
    ax = _axes(ax)
    resp = model.predict_proba(given)
    doubt = 1.0 - resp.max(axis=1)
    largest = 1.0 - 1.0 / model.n_components if model.n_components > 1 else 1.0
    sizes = 4 + 200 * doubt / largest
    colours = _colours(model.n_components)
    ax.scatter(
        X[:, dims[0]],
        X[:, dims[1]],
        s=sizes,
        c=[colours[k] for k in resp.argmax(1)],
        alpha=0.6,
        edgecolors="none",
    )
    _label_axes(ax, names, dims)
    ax.set_title("classification uncertainty (larger: less certain)")
    return ax


def convergence(model, ax=None):
    """The mean per-sample log-likelihood at every EM iteration of the kept run.

    Parameters
    ----------
    model : fastem.GaussianMixture or fitted GaussianMixtureIC
        Reads ``lower_bounds_``.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    model, _ = _check_fitted(model)
    lower_bounds = np.asarray(getattr(model, "lower_bounds_", []), dtype=np.float64)
    if lower_bounds.size == 0:
        raise ValueError(
            "the model records no lower bounds (fitted with max_iter=0?); "
            "nothing to draw"
        )
    ax = _axes(ax)
    ax.plot(np.arange(1, lower_bounds.size + 1), lower_bounds, marker=".")
    ax.set_xlabel("iteration")
    ax.set_ylabel("lower bound (mean log-likelihood per sample)")
    return ax


def _label_axes(ax, names, dims):
    """Feature names (those the model or search was fitted with, else x1, x2, ...) on
    the axes."""
    ax.set_xlabel(names[dims[0]] if names is not None else f"x{dims[0] + 1}")
    ax.set_ylabel(names[dims[1]] if names is not None else f"x{dims[1] + 1}")


def _check_dims(dims, n_features):
    dims = tuple(int(d) for d in dims)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must be two different feature indices, got {dims}.")
    for d in dims:
        if not 0 <= d < n_features:
            raise ValueError(
                f"dims holds feature {d}, but X has {n_features} features (0 to "
                f"{n_features - 1})."
            )
    return dims


def _colours(n_components):
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n_components <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(n_components)]
