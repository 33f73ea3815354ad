"""fastem: Gaussian mixture models fitted by EM with numba kernels.

A drop-in for :class:`sklearn.mixture.GaussianMixture` and
:class:`sklearn.mixture.BayesianGaussianMixture`::

    import fastem
    X = fastem.load_faithful()
    model = fastem.GaussianMixture(n_components=2, random_state=0).fit(X)

The public names are imported lazily (PEP 562), so ``import fastem`` is cheap and
``import fastem.reference`` (the plain numpy/scipy oracle) never imports numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY_IMPORTS = {
    "BayesianGaussianMixture": "fastem.bayesian",
    "GaussianMixture": "fastem.mixture",
    "GaussianMixtureIC": "fastem.selection",
    "SingularCovarianceWarning": "fastem.mixture",
    "load_faithful": "fastem.datasets",
    "save_model": "fastem._io",
    "load_model": "fastem._io",
    "warmup": "fastem._warmup",
}
# public submodules, also reachable as attributes after a bare ``import fastem``
_SUBMODULES = ("datasets", "plot", "reference", "selection")

__all__ = [
    "BayesianGaussianMixture",
    "GaussianMixture",
    "GaussianMixtureIC",
    "SingularCovarianceWarning",
    "__version__",
    "load_faithful",
    "load_model",
    "save_model",
    "warmup",
]

if TYPE_CHECKING:  # static analysers and IDEs see ordinary imports
    from fastem._io import load_model, save_model
    from fastem.bayesian import BayesianGaussianMixture
    from fastem.datasets import load_faithful
    from fastem._warmup import warmup
    from fastem.mixture import GaussianMixture, SingularCovarianceWarning
    from fastem.selection import GaussianMixtureIC


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"fastem.{name}")
    module_name = _LAZY_IMPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fastem' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups bypass __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES])
