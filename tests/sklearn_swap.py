"""Load scikit-learn's own test modules with fastem's estimators swapped in.

:func:`load_swapped` executes a fresh copy of one of scikit-learn's test modules
(``sklearn.mixture.tests.test_*``) while ``sklearn.mixture.GaussianMixture`` and
``BayesianGaussianMixture`` are fastem's, so that the copy's own names -- and
estimators its module-level ``parametrize`` builds -- are fastem's; the real
``sklearn.mixture`` is restored at once. :func:`collect_tests` turns the copy's
test functions into names a pytest module can expose (``globals().update``),
marking the exempt ones as skipped with their reason.
"""

import importlib
import importlib.util

import pytest
import sklearn.mixture

import fastem

SWAPS = {
    "GaussianMixture": fastem.GaussianMixture,
    "BayesianGaussianMixture": fastem.BayesianGaussianMixture,
}


def load_swapped(module_name, dependencies=()):
    """A copy of the test module ``module_name`` whose estimators are fastem's.

    ``dependencies`` are modules it imports helpers from; they are imported
    first, unswapped, so that the real modules in ``sys.modules`` keep
    scikit-learn's classes.
    """
    for dependency in dependencies:
        importlib.import_module(dependency)
    origin = importlib.util.find_spec(module_name).origin
    alias = "fastem_swapped_" + module_name.rsplit(".", 1)[-1]
    spec = importlib.util.spec_from_file_location(alias, origin)
    module = importlib.util.module_from_spec(spec)
    saved = {name: getattr(sklearn.mixture, name) for name in SWAPS}
    try:
        for name, estimator in SWAPS.items():
            setattr(sklearn.mixture, name, estimator)
        spec.loader.exec_module(module)
    finally:
        for name, estimator in saved.items():
            setattr(sklearn.mixture, name, estimator)
    for name, estimator in SWAPS.items():
        if name in vars(module):
            setattr(module, name, estimator)
    return module


def collect_tests(module, prefix, exempt):
    """{prefix + name: test function} for every ``test_*`` function of ``module``.

    ``exempt`` maps test names to the reason they do not apply; those are
    marked skipped with it. A name in ``exempt`` that the module lacks is an
    error (the list must follow scikit-learn's module).
    """
    tests = {
        name: function for name, function in vars(module).items()
        if name.startswith("test_") and callable(function)
    }
    unknown = set(exempt) - set(tests)
    if unknown:
        raise LookupError(f"{module.__name__} has no tests named {sorted(unknown)}")
    collected = {}
    for name, function in tests.items():
        if name in exempt:
            function = pytest.mark.skip(reason=f"exempt: {exempt[name]}")(function)
        collected[prefix + name[len("test_"):]] = function
    return collected
