"""Whether the kernels can use numba's on-disk cache, decided once at import.

Every kernel is declared ``@njit(cache=CACHE, ...)``. numba looks for a
writable cache location when such a decorator runs: next to the source file
(``fastem/kernels/__pycache__``), then ``$NUMBA_CACHE_DIR`` or the user's cache
directory. When none is usable (a read-only installation with no writable
home, say) ``cache=True`` raises ``RuntimeError: cannot cache function ...:
no locator available`` and the package could not even be imported. Probing
with a function defined in this file, which lives beside the kernel modules
and therefore has the same candidate locations, tells which way to go: with
no location the kernels are compiled in every process (correct, only slower
to start) and a ``KernelCacheWarning`` says so once.

numba checks a cached function only against its own source file, but a
kernel's cached machine code also contains the callees it inlined from the
other kernel modules: after an edit of ``exp.py``, say, the cached
``estep`` kernels would keep the old ``exp64``. The kernel modules are all
the ``.py`` files of this directory (``fastem/kernels/``), and numba's cache
location is per source directory (in-tree, under ``$NUMBA_CACHE_DIR`` or
the user's cache directory alike), so every ``.nbi``/``.nbc`` file in it is
one of theirs. That cache directory also holds a digest of all those
sources; when it does not match the sources being imported, the cached
kernels there are deleted (and recompiled on first use) before any kernel
is loaded.
"""

import hashlib
import os
import warnings

from numba import njit

DIGEST_FILE = "fastem_kernels.sha256"


def read_only(array):
    """A read-only view of ``array``, as every kernel call takes its data.

    numba compiles a kernel separately for writable and read-only arrays;
    handing it read-only views only (the kernels never write their data)
    means one compiled version serves both a user's ndarray and a read-only
    one (a memory-mapped .npy, say), not two. The Python wrappers of the
    kernel modules (``loop.dense_em``, ``small.dense_statistics_rows``, ...)
    take views of their data themselves, so every caller shares that version.
    """
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


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


def kernel_sources_digest(package_directory=None):
    """sha256 of every ``.py`` file of the kernels' directory (names and contents)."""
    package_directory = package_directory or os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in sorted(os.listdir(package_directory)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(package_directory, name), "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()


def drop_stale_kernels(cache_directory, digest):
    """Delete the cached kernels (every ``.nbi``/``.nbc`` file) in ``cache_directory``
    unless they were compiled from sources with this ``digest``; then record it.
    Returns True if it deleted.

    Failures (a read-only directory, a file another process removed first) are
    ignored: the worst outcome is a recompilation.
    """
    stamp = os.path.join(cache_directory, DIGEST_FILE)
    try:
        with open(stamp) as recorded:
            if recorded.read().strip() == digest:
                return False
    except OSError:
        pass
    try:
        names = os.listdir(cache_directory)
    except OSError:
        return False
    for name in names:
        if name.endswith((".nbi", ".nbc")):
            try:
                os.remove(os.path.join(cache_directory, name))
            except OSError:
                pass
    try:
        partial = f"{stamp}.{os.getpid()}"
        with open(partial, "w") as recorded:
            recorded.write(digest + "\n")
        os.replace(partial, stamp)
    except OSError:
        pass
    return True


def _cache_directory():
    """The directory numba caches the kernels in, or None if unknown."""
    try:
        from numba.core.caching import FunctionCache

        return FunctionCache(_probe)._cache_path  # numba internals: may change
    except Exception:  # noqa: BLE001 -- the guard is optional, never fatal
        return None


CACHE = cache_available()

if CACHE:
    _directory = _cache_directory()
    if _directory is not None and os.path.isdir(_directory):
        drop_stale_kernels(_directory, kernel_sources_digest())

if not CACHE:
    warnings.warn(
        "numba has no writable cache location for fastem's kernels (the package "
        "directory, NUMBA_CACHE_DIR and the user cache directory are all unusable): "
        "the kernels will be compiled in every process, which takes tens of seconds. "
        "Set NUMBA_CACHE_DIR to a writable directory to avoid this.",
        KernelCacheWarning,
        stacklevel=2,
    )
