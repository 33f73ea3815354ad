"""scikit-learn's own mixture tests, run on fastem's estimators.

The test modules ``sklearn/mixture/tests/test_gaussian_mixture.py``,
``test_bayesian_mixture.py`` and ``test_mixture.py`` of the installed
scikit-learn are loaded with ``GaussianMixture`` and ``BayesianGaussianMixture``
swapped for fastem's (see ``tests/sklearn_swap.py``) and their tests exposed
here as ``test_sklearn_<module>__<test>``. Tests that reach into scikit-learn's
private helpers (or test only those) are exempt, each with its reason below.
"""

import numpy as np
import pytest
import sklearn.mixture
from sklearn_swap import collect_tests, load_swapped

import fastem

ONLY_PRIVATE = (
    "tests scikit-learn's private module-level functions only; no estimator is involved"
)
ARRAY_API = (
    "array API inputs (array_api_strict, torch, cupy, dpnp): fastem takes numpy "
    "arrays only (these are skipped by scikit-learn too unless those are installed)"
)

GAUSSIAN_EXEMPT = {
    "test_suffstat_sk_full": ONLY_PRIVATE,
    "test_suffstat_sk_tied": ONLY_PRIVATE,
    "test_suffstat_sk_diag": ONLY_PRIVATE,
    "test_gaussian_suffstat_sk_spherical": ONLY_PRIVATE,
    "test_compute_log_det_cholesky": ONLY_PRIVATE,
    "test_gaussian_mixture_log_probabilities": ONLY_PRIVATE,
    "test_gaussian_mixture_precisions_init": (
        "calls the private methods GaussianMixture._set_parameters and _initialize "
        "(fastem's start from precisions_init is tested in tests/test_mixture.py)"
    ),
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "counts calls of scikit-learn's private _estimate_gaussian_parameters, which "
        "fastem never calls"
    ),
    "test_regularisation": (
        "DEVIATION: expects scikit-learn's ValueError on collapsed components with "
        "reg_covar=0; fastem repairs them by default (on_singular='recover') and "
        "raises its own message with on_singular='raise' (tests/test_degenerate.py)"
    ),
    "test_gaussian_mixture_array_api_compliance": ARRAY_API,
    "test_gaussian_mixture_raises_where_array_api_not_implemented": ARRAY_API,
}
BAYESIAN_EXEMPT = {
    "test_log_dirichlet_norm": ONLY_PRIVATE,
    "test_log_wishart_norm": ONLY_PRIVATE,
    "test_compare_covar_type": (
        "calls the private methods _check_parameters and _initialize_parameters "
        "(fastem's start is compared with scikit-learn's through max_iter=0 in "
        "tests/test_bayesian.py)"
    ),
}
MIXTURE_EXEMPT = {}


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture, at its default value."""
    return 42


@pytest.fixture
def global_dtype():
    """scikit-learn's fixture, at its default (float32 runs only on request there)."""
    return np.float64


GAUSSIAN_MODULE = load_swapped("sklearn.mixture.tests.test_gaussian_mixture")
BAYESIAN_MODULE = load_swapped("sklearn.mixture.tests.test_bayesian_mixture",
                               dependencies=["sklearn.mixture.tests.test_gaussian_mixture"])
MIXTURE_MODULE = load_swapped("sklearn.mixture.tests.test_mixture")

globals().update(collect_tests(GAUSSIAN_MODULE, "test_sklearn_gaussian_mixture__",
                               GAUSSIAN_EXEMPT))
globals().update(collect_tests(BAYESIAN_MODULE, "test_sklearn_bayesian_mixture__",
                               BAYESIAN_EXEMPT))
globals().update(collect_tests(MIXTURE_MODULE, "test_sklearn_mixture__", MIXTURE_EXEMPT))


def test_the_suites_run_on_fastems_estimators():
    """The loaded copies use fastem's classes, also in module-level parametrize
    lists, while sklearn.mixture itself keeps scikit-learn's."""
    assert GAUSSIAN_MODULE.GaussianMixture is fastem.GaussianMixture
    assert BAYESIAN_MODULE.BayesianGaussianMixture is fastem.BayesianGaussianMixture
    assert MIXTURE_MODULE.GaussianMixture is fastem.GaussianMixture
    (mark,) = MIXTURE_MODULE.test_gaussian_mixture_n_iter.pytestmark
    assert {type(estimator) for estimator in mark.args[1]} == {
        fastem.GaussianMixture, fastem.BayesianGaussianMixture}
    assert sklearn.mixture.GaussianMixture.__module__.startswith("sklearn.")
    assert sklearn.mixture.BayesianGaussianMixture.__module__.startswith("sklearn.")
    from sklearn.mixture.tests import test_gaussian_mixture  # the real module
    assert test_gaussian_mixture.GaussianMixture is sklearn.mixture.GaussianMixture
