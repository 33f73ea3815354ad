"""fastem.plot: PNGs are written and show something, and the ellipses are where the
components are (centre, axes and angle of the patches)."""

import subprocess
import sys
import warnings

import background  # tests/background.py
import numpy as np
import pytest
from numpy.testing import assert_allclose

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from fastem import GaussianMixture, GaussianMixtureIC, load_faithful, plot  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()


@pytest.fixture(scope="module")
def search(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixtureIC((1, 2, 3), random_state=0).fit(faithful)


def assert_png_not_blank(path):
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # more than one colour, and a fair number of non-white pixels
    rgb = image[..., :3]
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10
    assert np.mean(np.any(rgb < 0.9, axis=-1)) > 0.01


def test_clusters_ellipses_are_the_components(tmp_path):
    """A fixed 'full' model: its ellipses have the components' centres and axes."""
    covariances = np.array([[[4.0, 0.0], [0.0, 1.0]], [[2.0, 1.0], [1.0, 2.0]]])
    means = np.array([[0.0, 0.0], [10.0, 5.0]])
    model = GaussianMixture(
        2,
        weights_init=[0.5, 0.5],
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
        max_iter=0,
    )
    X = np.vstack(
        [
            np.random.default_rng(0).multivariate_normal(m, c, 50)
            for m, c in zip(means, covariances, strict=False)
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    ax = plot.clusters(model, X)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 4  # two per component: 1 and 2 sigma
    first, first2, second, second2 = ellipses
    # component 1: axis-aligned, standard deviations 2 and 1
    assert_allclose(first.center, [0.0, 0.0], atol=1e-12)
    assert_allclose([first.width, first.height], [4.0, 2.0], rtol=1e-5)
    assert_allclose(first.angle % 180, 0.0, atol=1e-6)
    assert_allclose([first2.width, first2.height], [8.0, 4.0], rtol=1e-5)
    # component 2: eigenvalues 3 and 1 along the diagonals
    assert_allclose(second.center, [10.0, 5.0], atol=1e-12)
    assert_allclose([second.width, second.height], [2 * np.sqrt(3), 2.0], rtol=1e-5)
    assert_allclose(second.angle % 180, 45.0, atol=1e-6)
    assert_allclose([second2.width, second2.height], [4 * np.sqrt(3), 4.0], rtol=1e-5)
    path = tmp_path / "clusters.png"
    ax.figure.savefig(path)
    assert_png_not_blank(path)


def axes_of_2x2(covariance):
    """(major, minor, angle of the major axis in degrees) of a 2 x 2 covariance
    [[a, b], [b, c]], in closed form: eigenvalues (a + c) / 2 +- sqrt(((a - c) / 2)**2
    + b**2), the major axis at atan2(2 b, a - c) / 2."""
    (a, b), (_, c) = covariance
    middle, radius = (a + c) / 2, np.hypot((a - c) / 2, b)
    return middle + radius, middle - radius, np.degrees(np.arctan2(2 * b, a - c) / 2)


def assert_same_direction(angle, expected):
    """Angles in degrees of the same axis (180 degrees apart count as the same)."""
    turn = (angle - expected) % 180
    assert min(turn, 180 - turn) < 1e-6, (angle, expected)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_ellipse_of_other_covariance_types(faithful, covariance_type):
    """Component 2's 1-sigma ellipse: its mean, twice the square roots of its
    covariance's eigenvalues, width along the major axis at its angle (a circle,
    'spherical', has no angle to check)."""
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    model.fit(faithful)
    ax = plot.clusters(model, faithful)
    ellipse = [p for p in ax.patches if isinstance(p, Ellipse)][
        2
    ]  # component 2, 1 sigma
    covariance = {  # component 2's, from the fitted covariances_ of its type
        "tied": lambda c: c,
        "diag": lambda c: np.diag(c[1]),
        "spherical": lambda c: c[1] * np.eye(2),
    }[covariance_type](model.covariances_)
    assert_allclose(ellipse.center, model.means_[1], rtol=1e-12)
    major, minor, angle = axes_of_2x2(covariance)
    assert_allclose([ellipse.width, ellipse.height], 2 * np.sqrt([major, minor]),
                    rtol=1e-10)
    if covariance_type == "spherical":
        assert ellipse.width == ellipse.height
    else:
        assert major > 1.01 * minor  # an angle to check
        assert_same_direction(ellipse.angle, angle)


def test_ellipse_on_chosen_features_is_the_marginal():
    covariance = np.array([[1.0, 0.2, 0.0], [0.2, 9.0, 0.0], [0.0, 0.0, 4.0]])
    centre, width, height, angle = plot.ellipse_geometry(
        np.array([1.0, 2.0, 3.0]), covariance, dims=(2, 0)
    )
    assert_allclose(centre, [3.0, 1.0])
    assert_allclose([width, height], [4.0, 2.0])
    assert_allclose(angle % 180, 0.0, atol=1e-9)


def test_criterion_curves(search, tmp_path):
    ax = plot.criterion_curves(search)
    lines = ax.get_lines()
    # one line per covariance type plus the best-cell marker
    assert len(lines) == 5
    _rows, columns, values = search.results_.table("bic")
    for j, line in enumerate(lines[:4]):
        assert line.get_label() == columns[j]
        assert_allclose(line.get_ydata(), values[:, j])
    marker = lines[4]
    assert list(marker.get_xdata()) == [search.n_components_]
    assert_allclose(marker.get_ydata(), [search.criterion_])
    path = tmp_path / "bic.png"
    ax.figure.savefig(path)
    assert_png_not_blank(path)


@pytest.mark.parametrize("criterion", ["bic", "aic", "icl"])
def test_criterion_curves_circle_the_best_of_the_criterion_drawn(search, criterion):
    """On Old Faithful the three criteria choose three cells (BIC 3 tied, AIC 3 full,
    ICL 2 full): the circle is on the lowest value of the curves drawn."""
    ax = plot.criterion_curves(search, criterion=criterion)
    rows, columns, values = search.results_.table(criterion)
    i, j = np.unravel_index(np.nanargmin(values), values.shape)
    marker = ax.get_lines()[-1]
    assert list(marker.get_xdata()) == [rows[i]]
    assert_allclose(marker.get_ydata(), [values[i, j]], rtol=0)
    assert marker.get_label() == f"best: {rows[i]} {columns[j]}"
    assert ax.get_ylabel() == f"{criterion.upper()} (lower is better)"


@pytest.mark.parametrize("criterion", ["BIC", "log_likelihood", "mdl"])
def test_criterion_curves_take_only_the_three_criteria(search, criterion):
    with pytest.raises(ValueError, match=f"criterion must be one of 'bic', 'aic', "
                                         f"'icl' .lower is better., got '{criterion}'"):
        plot.criterion_curves(search, criterion=criterion)


def test_dataframes_name_the_axes_and_raise_no_warning(faithful):
    """A model or search fitted on a DataFrame: the axes carry its column names, and
    drawing the DataFrame asks for no scikit-learn feature-name warning."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(faithful, columns=["eruptions", "waiting"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(2, random_state=0).fit(frame)
        search = GaussianMixtureIC((1, 2), ("full",), random_state=0).fit(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fitted in (model, search):
            for ax in (plot.clusters(fitted, frame), plot.uncertainty(fitted, frame)):
                assert (ax.get_xlabel(), ax.get_ylabel()) == ("eruptions", "waiting")
            upper_right = plot.pairs(fitted, frame)[0, 1]  # feature 1 against 0
            assert (upper_right.get_xlabel(), upper_right.get_ylabel()) == (
                "waiting", "eruptions")


def test_pairs_uncertainty_convergence(search, faithful, tmp_path):
    rng = np.random.default_rng(1)
    X = np.column_stack([faithful, rng.normal(size=len(faithful))])
    model = GaussianMixture(2, random_state=0).fit(X)
    axes = plot.pairs(model, X)
    assert axes.shape == (3, 3)
    assert len([p for p in axes[0, 1].patches if isinstance(p, Ellipse)]) == 4
    axes[0, 0].figure.savefig(tmp_path / "pairs.png")
    assert_png_not_blank(tmp_path / "pairs.png")

    ax = plot.uncertainty(search, faithful)
    sizes = ax.collections[0].get_sizes()
    doubt = 1 - search.predict_proba(faithful).max(axis=1)
    # larger for more uncertain points: sizes in the order of the doubts never
    # shrink, and grow wherever the doubt does by more than rounding
    assert sizes.shape == doubt.shape
    order = np.argsort(doubt, kind="stable")
    size_steps, doubt_steps = np.diff(sizes[order]), np.diff(doubt[order])
    assert np.all(size_steps >= 0)
    assert np.all(size_steps[doubt_steps > 1e-9] > 0)
    assert np.count_nonzero(doubt_steps > 1e-9) > len(doubt) // 2
    ax.figure.savefig(tmp_path / "uncertainty.png")
    assert_png_not_blank(tmp_path / "uncertainty.png")

    ax = plot.convergence(model)
    assert_allclose(ax.get_lines()[0].get_ydata(), model.lower_bounds_)
    assert len(model.lower_bounds_) == model.n_iter_
    assert model.lower_bounds_[-1] == model.lower_bound_
    ax.figure.savefig(tmp_path / "convergence.png")
    assert_png_not_blank(tmp_path / "convergence.png")


def test_bad_arguments(search, faithful):
    with pytest.raises(ValueError, match="features"):
        plot.clusters(search, faithful[:, :1])
    with pytest.raises(ValueError, match="dims"):
        plot.clusters(search, faithful, dims=(0, 0))
    with pytest.raises(ValueError, match="dims holds feature 2"):
        plot.clusters(search, faithful, dims=(0, 2))
    with pytest.raises(ValueError, match="pairs draws 2 to 6"):
        wide = np.random.default_rng(0).normal(size=(40, 7))
        plot.pairs(GaussianMixture(1).fit(wide), wide)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        plot.clusters(GaussianMixture(2), faithful)
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\), "
                                         r"got shape \(272,\)"):
        plot.clusters(search, faithful[:, 0])
    no_iterations = GaussianMixture(2, max_iter=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_iterations.fit(faithful)
    with pytest.raises(ValueError, match="records no lower bounds"):
        plot.convergence(no_iterations)


@background.fixture
def fastem_imports(directory):
    """A fresh process imports fastem, fastem.selection and fastem.cli, then prints
    whether matplotlib was imported (``directory`` is not needed)."""
    code = (
        "import sys, fastem, fastem.selection, fastem.cli; "
        "print('matplotlib' in sys.modules)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_fastem_does_not_import_matplotlib(fastem_imports):
    assert fastem_imports.returncode == 0, fastem_imports.stderr
    assert fastem_imports.stdout.strip() == "False"
