"""Datasets bundled with fastem."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["FAITHFUL_FEATURES", "load_faithful"]

#: Column names of :func:`load_faithful`, in order.
FAITHFUL_FEATURES = ("eruptions", "waiting")


def load_faithful(return_frame=False):
    """Load the Old Faithful geyser data (272 eruptions, 2 features).

    The classic two-cluster example for Gaussian mixtures: short eruptions are
    followed by short waits, long eruptions by long waits.

    ============  =====================================================
    Column        Meaning
    ============  =====================================================
    ``eruptions`` eruption duration, in minutes
    ``waiting``   waiting time to the next eruption, in minutes
    ============  =====================================================

    Parameters
    ----------
    return_frame : bool, default=False
        If True, return a :class:`pandas.DataFrame` with columns
        ``FAITHFUL_FEATURES`` instead of an array. Needs pandas, which is not a
        dependency of fastem.

    Returns
    -------
    X : ndarray of shape (272, 2), dtype float64, or pandas.DataFrame
        A new C-contiguous array (or frame) on every call; columns in the order
        of ``fastem.datasets.FAITHFUL_FEATURES`` = ``("eruptions", "waiting")``.

    Notes
    -----
    The data are those distributed as ``faithful`` with R's ``datasets``
    package, shipped in ``fastem/datasets/faithful.csv``.

    References
    ----------
    .. [1] A. Azzalini and A. W. Bowman, "A look at some data on the Old
       Faithful geyser", Applied Statistics 39(3), 357-365, 1990.
    .. [2] W. Härdle, "Smoothing Techniques with Implementation in S",
       Springer, New York, 1991.

    Examples
    --------
    >>> from fastem.datasets import FAITHFUL_FEATURES, load_faithful
    >>> X = load_faithful()
    >>> X.shape, X.dtype
    ((272, 2), dtype('float64'))
    >>> FAITHFUL_FEATURES
    ('eruptions', 'waiting')
    """
    path = resources.files(__name__).joinpath("faithful.csv")
    with path.open("r", encoding="ascii") as handle:
        header = handle.readline().strip().split(",")
        if tuple(header) != FAITHFUL_FEATURES:
            raise RuntimeError(
                f"bundled faithful.csv has header {header}, expected "
                f"{list(FAITHFUL_FEATURES)}: the fastem installation is damaged"
            )
        X = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    X = np.ascontiguousarray(X)
    if not return_frame:
        return X
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "load_faithful(return_frame=True) needs pandas; install it with "
            "`pip install pandas` or call load_faithful() for an ndarray"
        ) from exc
    return pd.DataFrame(X, columns=list(FAITHFUL_FEATURES))
