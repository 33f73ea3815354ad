"""benchmarks/estep_ab.py: the renamed copies --checkouts imports side by side, and
the weights its passes take."""

import importlib.util
from pathlib import Path

from fastem.em import sources
from fastem.kernels import estep

REPOSITORY = Path(__file__).resolve().parent.parent


def _estep_ab():
    spec = importlib.util.spec_from_file_location(
        "fastem_benchmark_estep_ab", REPOSITORY / "benchmarks" / "estep_ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_renamed_copy_renames_fastem_imports_only_and_recopies_on_change(tmp_path):
    estep_ab = _estep_ab()
    checkout = tmp_path / "checkout"
    (checkout / "fastem" / "em").mkdir(parents=True)
    (checkout / "fastem" / "__init__.py").write_text(
        "from fastem.em import driver\nimport fastem.kernels\nfastem_name = 'fastem'\n")
    (checkout / "fastem" / "em" / "driver.py").write_text("from fastem import em\n")
    (checkout / "fastem" / "em" / "__pycache__").mkdir()
    work = tmp_path / "work"

    copy = estep_ab.renamed_copy("old", checkout, work)

    assert copy == work.resolve() / "fastem_old"
    assert (copy / "__init__.py").read_text() == (
        "from fastem_old.em import driver\nimport fastem_old.kernels\n"
        "fastem_name = 'fastem'\n")
    assert (copy / "em" / "driver.py").read_text() == "from fastem_old import em\n"
    assert not (copy / "em" / "__pycache__").exists()
    # unchanged sources: the copy (and numba's cache beside it) is kept
    (copy / "em" / "kept.txt").write_text("cache")
    estep_ab.renamed_copy("old", checkout, work)
    assert (copy / "em" / "kept.txt").exists()
    # changed sources: copied again
    driver = checkout / "fastem" / "em" / "driver.py"
    driver.write_text("from fastem import kernels\n")
    estep_ab.renamed_copy("old", checkout, work)
    assert not (copy / "em" / "kept.txt").exists()
    assert (copy / "em" / "driver.py").read_text() == "from fastem_old import kernels\n"


def test_passes_take_the_weights_of_a_fit_given_none():
    """One weight for every row, as GaussianMixture.fit(X) passes them, not an
    array of ones that the kernels would read row by row."""
    weights = _estep_ab().fit_weights(1000)
    assert sources.are_unit_weights(weights)
    assert sources.kernel_weights(weights) is estep.UNIT_WEIGHT
    assert weights.shape == (1000,) and not weights.flags.writeable


def test_starts_after_iterations_agree_whoever_fits_them():
    """--repo takes its start from scikit-learn (importing fastem there would import
    the checkout under test), --checkouts from the installed fastem: the same
    parameters, to float64's rounding over two EM iterations."""
    import numpy as np
    from benchmark_modules import load_benchmark_module

    estep_ab = _estep_ab()
    problem = load_benchmark_module("problems").make_problem("P2", 1000, "float64")
    by_fastem = estep_ab.start_of(problem, 2)
    by_sklearn = estep_ab.start_of(problem, 2, fitted_by="sklearn")
    for ours, theirs in zip(by_fastem, by_sklearn, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert estep_ab.start_of(problem, 0, fitted_by="sklearn") is None
