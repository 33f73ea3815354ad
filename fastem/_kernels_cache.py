"""Whether the kernels can use numba's on-disk cache, decided once at import.

Every kernel is declared ``@njit(cache=CACHE, ...)``. numba looks for a
writable cache location when such a decorator runs: next to the source file
(``fastem/__pycache__``), then ``$NUMBA_CACHE_DIR`` or the user's cache
directory. When none is usable (a read-only installation with no writable
home, say) ``cache=True`` raises ``RuntimeError: cannot cache function ...:
no locator available`` and the package could not even be imported. Probing
with a function defined in this file, which lives beside the kernel modules
and therefore has the same candidate locations, tells which way to go: with
no location the kernels are compiled in every process (correct, only slower
to start) and a ``KernelCacheWarning`` says so once.
"""

import warnings

from numba import njit


class KernelCacheWarning(UserWarning):
    """numba has no writable cache location: kernels are compiled in every process."""


def _probe():
    return 0


def cache_available():
    """True if numba can cache a function defined beside the kernel modules."""
    try:
        njit(cache=True)(_probe)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return False
    return True


CACHE = cache_available()

if not CACHE:
    warnings.warn(
        "numba has no writable cache location for fastem's kernels (the package "
        "directory, NUMBA_CACHE_DIR and the user cache directory are all unusable): "
        "the kernels will be compiled in every process, which takes tens of seconds. "
        "Set NUMBA_CACHE_DIR to a writable directory to avoid this.",
        KernelCacheWarning,
        stacklevel=2,
    )
