"""Compile (or load from numba's cache) the kernels a user's fits will need.

numba compiles each kernel on its first call and keeps the machine code in
its on-disk cache; a fresh installation, a read-only one, or a new Dask
worker pays that once. :func:`warmup` pays it up front: it runs small real
fits and inference, one task per data type and covariance family (and size
class: the row kernels of small data, the tiled block kernels of large data),
in parallel processes where there are cores for them, so that what they
compile lands in the cache that later processes load.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

__all__ = ["warmup", "kernels_need_compiling"]

DTYPES = ("float64", "float32")
FAMILIES = {"dense": ("full", "tied"), "diagonal": ("diag", "spherical")}
SIZES = ("small", "large")


def _task(dtype, family, size):
    """Fit and infer once per covariance type of ``family`` on data of ``size``;
    returns (dtype, family, size, seconds)."""
    from fastem.em import driver as _driver
    from fastem.mixture import GaussianMixture

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    n_components, n_features = 2, 2
    if size == "small":
        n_samples = 16
    else:  # just above the small-data limit, in one block
        n_samples = _driver.SMALL_WORK_LIMIT // (n_components * (n_features + 1) ** 2) + 64
    X = rng.normal(size=(n_samples, n_features)).astype(dtype)
    X[: n_samples // 2] += 4.0
    for covariance_type in FAMILIES[family]:
        model = GaussianMixture(n_components, covariance_type=covariance_type, max_iter=2,
                                init_params="random_from_data", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        model.predict(X)
        model.predict_proba(X)
        model.score_samples(X)
    return dtype, family, size, time.perf_counter() - started


def warmup(dtypes=("float64",), covariance_types=("full", "tied", "diag", "spherical"),
           n_jobs=None, progress=None):
    """Compile the kernels for the given data types and covariance types.

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}, default=("float64",)
        Data types the fits will see.
    covariance_types : sequence of str, default: all four
        Covariance types the fits will use ('full' and 'tied' share their
        kernels, as do 'diag' and 'spherical').
    n_jobs : int or None, default=None
        Processes compiling at the same time (None: one per CPU, at most
        one per task). 1 compiles in this process.
    progress : callable or None
        Called with a line of text as each task finishes.

    Returns
    -------
    list of (dtype, family, size, seconds)
        One entry per task, in the order they finished.
    """
    dtypes = [np.dtype(dtype).name for dtype in dtypes]
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes must be among {DTYPES}, got {dtype!r}")
    families = []
    for covariance_type in covariance_types:
        family = next((name for name, types in FAMILIES.items() if covariance_type in types),
                      None)
        if family is None:
            raise ValueError(
                "covariance_types must be among 'full', 'tied', 'diag', 'spherical', "
                f"got {covariance_type!r}"
            )
        if family not in families:
            families.append(family)
    tasks = [(dtype, family, size) for dtype in dtypes for family in families
             for size in SIZES]
    if n_jobs is None:
        n_jobs = os.cpu_count() or 1
    n_jobs = max(1, min(int(n_jobs), len(tasks)))
    done = []

    def report(result):
        done.append(result)
        if progress is not None:
            dtype, family, size, seconds = result
            progress(f"[{len(done)}/{len(tasks)}] {dtype} {family} ({size} data) "
                     f"ready in {seconds:.1f} s")

    if n_jobs == 1:
        for task in tasks:
            report(_task(*task))
        return done
    with ProcessPoolExecutor(max_workers=n_jobs) as pool:
        futures = [pool.submit(_task, *task) for task in tasks]
        for future in as_completed(futures):
            report(future.result())
    return done


def kernels_need_compiling(n_samples, n_features, n_components, covariance_type,
                           inference=False, dtype=np.float64):
    """Whether a fit of this shape (with ``inference``: predict, score_samples) on X
    of ``dtype`` will compile kernels: neither compiled in this process nor in
    numba's cache for X's dtype on this CPU (judged by the kernels' cache index
    files; False when that cannot be told)."""
    from fastem.em import driver as _driver
    from fastem.kernels import estep as _kernels_estep
    from fastem.kernels import loop as _kernels_loop
    from fastem.kernels import small as _kernels_small

    dense = covariance_type in ("full", "tied")
    small = _driver.is_small(n_samples, n_features, n_components)
    if small and inference:
        kernel = (_kernels_small.dense_weighted_log_prob_rows_into if dense
                  else _kernels_small.diagonal_weighted_log_prob_rows_into)
    elif small:
        kernel = (_kernels_loop.dense_em_into if dense
                  else _kernels_loop.diagonal_em_into)
    else:
        kernel = (_kernels_estep.dense_statistics_blocks if dense
                  else _kernels_estep.diagonal_statistics_blocks)
    try:
        return not _compiled_for(kernel, np.dtype(dtype))
    except Exception:  # numba's cache internals, which this reads, changed
        return False


def _compiled_for(kernel, dtype):
    """Whether ``kernel`` (a numba dispatcher whose first argument is X) is compiled
    in this process, or in numba's disk cache for this CPU and this source of the
    kernel, for X of ``dtype``. Reads numba's private cache index: a key is
    (argument types, the CPU and its features, hashes of the function's code)."""
    def takes(argument_types):
        return np.dtype(str(argument_types[0].dtype)) == dtype

    if any(takes(signature) for signature in kernel.signatures):
        return True
    cache = kernel._cache
    _, machine, code = cache._index_key((), kernel.targetctx.codegen())
    return any(
        key[1] == machine and key[2] == code and takes(key[0])
        for key in cache._cache_file._load_index()
    )
