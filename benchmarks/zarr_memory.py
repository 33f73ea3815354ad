"""Memory a streamed fit from a zarr array adds, and where it goes.

Writes a float64 array (``--rows`` x 8, P2-like: 16 clusters) as a ``.npy`` and as
zarr arrays with the given storage chunks (rows x 8, zarr's default codec) into a
temporary directory (removed at the end), then fits each from the same start
(K = 16, full, ``--n-iter`` iterations, ``chunk_size=--block``: 131072 rows is the
block P2 x10 gets in ``benchmarks/scale_out.py``) in fresh processes and prints, per
configuration and run:

* ``anon``: peak anonymous memory (RssAnon, sampled every 2 ms) during the fit
  minus that before it (the kernels loaded), as ``scale_out.py`` measures it;
* ``traced``: the peak of tracemalloc during the same fit in another process
  (numpy's, zarr's and Python's buffers; not what glibc keeps of freed ones).

Configurations: ``memmap`` (the .npy memory-mapped), ``zarr-<rows>`` for each
``--storage-rows``, and the same with ``zarr.config`` ``threading.max_workers=1``
(``zarr-<rows>-1worker``: zarr decodes on one thread).

    python benchmarks/zarr_memory.py [--rows 3200000] [--block 131072]
        [--storage-rows 131072,16384] [--n-iter 5] [--runs 3]

Numbers in the README come from a shared, noisy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

N_FEATURES, N_COMPONENTS = 8, 16


def _anonymous_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def write_data(directory, n_rows, storage_rows):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(N_COMPONENTS, N_FEATURES))
    npy = os.path.join(directory, "x.npy")
    X = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float64,
                                  shape=(n_rows, N_FEATURES))
    step = 1 << 18
    for begin in range(0, n_rows, step):
        n = min(step, n_rows - begin)
        X[begin:begin + n] = (centres[rng.integers(0, N_COMPONENTS, n)]
                              + rng.normal(size=(n, N_FEATURES)))
    X.flush()
    import zarr

    for rows in storage_rows:
        out = zarr.open_array(os.path.join(directory, f"x_{rows}.zarr"), mode="w",
                              shape=X.shape, dtype=X.dtype, chunks=(rows, N_FEATURES))
        for begin in range(0, n_rows, rows * 8):
            out[begin:begin + rows * 8] = X[begin:begin + rows * 8]
    del X


def run(config, directory, block, n_iter, trace):
    """One fit in this process; returns a JSON-able dict."""
    import zarr

    from fastem import GaussianMixture

    X = np.load(os.path.join(directory, "x.npy"), mmap_mode="r")
    start = dict(weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS),
                 means_init=np.array(X[:N_COMPONENTS]),
                 precisions_init=np.stack([np.eye(N_FEATURES)] * N_COMPONENTS))
    model = GaussianMixture(N_COMPONENTS, max_iter=n_iter, tol=0, chunk_size=block,
                            **start)
    warnings.simplefilter("ignore")
    model.fit(np.array(X[:200_000]))  # load the kernels before measuring
    if config.startswith("zarr"):
        parts = config.split("-")
        if parts[-1] == "1worker":
            zarr.config.set({"threading.max_workers": 1})
        X = zarr.open_array(os.path.join(directory, f"x_{parts[1]}.zarr"), mode="r")
    if trace:
        import tracemalloc

        tracemalloc.start()
    baseline = _anonymous_kib()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _anonymous_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    result = {"config": config, "seconds": seconds,
              "anon_mib": (max(peak[0], _anonymous_kib()) - baseline) / 1024}
    if trace:
        result["traced_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_200_000)
    parser.add_argument("--block", type=int, default=131072)
    parser.add_argument("--storage-rows", default="131072,16384")
    parser.add_argument("--n-iter", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("CONFIG", "DIR", "TRACE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config, directory, trace = args.worker
        print(json.dumps(run(config, directory, args.block, args.n_iter, trace == "1")))
        return 0
    storage_rows = [int(rows) for rows in args.storage_rows.split(",")]
    directory = tempfile.mkdtemp(prefix="fastem_zarr_memory_")
    try:
        write_data(directory, args.rows, storage_rows)
        configs = ["memmap"] + [f"zarr-{rows}{suffix}" for rows in storage_rows
                                for suffix in ("", "-1worker")]
        data_mib = args.rows * N_FEATURES * 8 / 2**20
        print(f"{args.rows} x {N_FEATURES} float64 ({data_mib:.0f} MiB), blocks of "
              f"{args.block} rows, {args.n_iter} iterations")
        print("| configuration | anon added MiB (each run) | tracemalloc peak MiB "
              "| s |")
        print("|---|---|---|---|")
        for config in configs:
            results = []
            for trace in ["0"] * args.runs + ["1"]:
                output = subprocess.run(
                    [sys.executable, __file__, "--block", str(args.block), "--n-iter",
                     str(args.n_iter), "--worker", config, directory, trace],
                    capture_output=True, text=True, check=True).stdout
                results.append(json.loads(output.strip().splitlines()[-1]))
            anon = ", ".join(f"{result['anon_mib']:.1f}" for result in results[:-1])
            seconds = np.median([result["seconds"] for result in results[:-1]])
            print(f"| {config} | {anon} | {results[-1]['traced_mib']:.1f} | "
                  f"{seconds:.2f} |")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
