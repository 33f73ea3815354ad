"""The bundled Old Faithful data and the lazy public namespace of ``fastem``."""

import subprocess
import sys
from importlib import metadata, resources

import background  # tests/background.py
import numpy as np
import pytest

import fastem
from fastem.datasets import FAITHFUL_FEATURES, load_faithful


def test_load_faithful_shape_dtype_layout():
    X = load_faithful()
    assert X.shape == (272, 2)
    assert X.dtype == np.float64
    assert X.flags.c_contiguous
    assert FAITHFUL_FEATURES == ("eruptions", "waiting")


def test_load_faithful_values():
    X = load_faithful()
    # first and last rows of R's datasets::faithful
    np.testing.assert_array_equal(X[0], [3.6, 79.0])
    np.testing.assert_array_equal(X[-1], [4.467, 74.0])
    # summary statistics as R reports them
    np.testing.assert_allclose(X.mean(axis=0), [3.487783, 70.897059], atol=1e-6)
    np.testing.assert_array_equal(X.min(axis=0), [1.6, 43.0])
    np.testing.assert_array_equal(X.max(axis=0), [5.1, 96.0])


def test_load_faithful_returns_a_new_array_each_call():
    X = load_faithful()
    X[:] = 0.0
    assert load_faithful()[0, 1] == 79.0


def test_load_faithful_frame():
    pd = pytest.importorskip("pandas")
    frame = load_faithful(return_frame=True)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(FAITHFUL_FEATURES)
    np.testing.assert_array_equal(frame.to_numpy(), load_faithful())


def test_csv_is_package_data():
    text = resources.files("fastem.datasets").joinpath("faithful.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "eruptions,waiting"
    assert len(lines) == 273


def test_public_names_resolve():
    assert fastem.load_faithful is load_faithful
    from fastem import _io, mixture

    assert fastem.GaussianMixture is mixture.GaussianMixture
    assert fastem.SingularCovarianceWarning is mixture.SingularCovarianceWarning
    assert issubclass(fastem.SingularCovarianceWarning, Warning)
    assert fastem.save_model is _io.save_model
    assert fastem.load_model is _io.load_model
    for name in fastem.__all__:
        assert getattr(fastem, name) is not None
    assert set(fastem.__all__) <= set(dir(fastem))


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fastem.nope  # noqa: B018


def test_version_matches_installed_metadata():
    try:
        installed = metadata.version("fastem")
    except metadata.PackageNotFoundError:
        pytest.skip("fastem is not installed (running from a source tree)")
    assert fastem.__version__ == installed


LIGHT_IMPORTS = [
    "import fastem",
    "import fastem.reference",
    "import fastem.datasets; fastem.load_faithful()",
    "import fastem._io",
    "import fastem.cli",
]


@background.fixture
def light_imports(directory):
    """Each ``LIGHT_IMPORTS`` statement in a fresh process that then prints whether
    numba was imported (``directory`` is not needed)."""
    code = "{}; import sys; print('numba' in sys.modules)"
    return {
        statement: subprocess.run([sys.executable, "-c", code.format(statement)],
                                  capture_output=True, text=True)
        for statement in LIGHT_IMPORTS
    }


@pytest.mark.parametrize("statement", LIGHT_IMPORTS)
def test_light_imports_do_not_import_numba(light_imports, statement):
    result = light_imports[statement]
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
