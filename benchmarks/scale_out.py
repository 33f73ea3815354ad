"""Scale-out benchmark: P2 x10 in memory, memory-mapped, from zarr and on a LocalCluster.

P2 x10 is P2's mixture (``problems.SPECS['P2']``: D = 8, K = 16, full
covariances, float64) with ten times the rows (10^7, 640 MB), fitted for a few
EM iterations from P2's start (``tol=0``: a fixed number of iterations). Every
configuration runs in a fresh process and reports:

* seconds per EM iteration: the median of the iterations' own times (the E-step
  pass and the M-step, as the EM loop measures them for its progress callback),
  so the one-off work of a fit (checks, reading a start) is left out;
* the fit's wall time (including the pass that checks the data);
* peak RSS of the process (``VmHWM``: the interpreter and libraries too; for a memory
  map, the file's pages it has mapped), the peak anonymous memory (``RssAnon``
  sampled every 5 ms, the memory a streamed fit allocates; file pages are the
  kernel's page cache), and how much each of ``RssAnon`` and ``VmRSS`` (file pages
  included) grew during the fit, at most (sampled the same way);
* for the LocalCluster, the same for the client and the sum over the workers.

Configurations: ``memory`` (np.load of the .npy), ``memmap`` (np.load with
mmap_mode='r', page cache warm: the file was just read), ``memmap-cold`` (the
file's pages dropped with posix_fadvise(DONTNEED) first), ``zarr`` (a zarr array
of 131072-row chunks unless ``--zarr-chunk-rows`` says otherwise, zarr's default
codec), ``cluster`` (a distributed
LocalCluster of 2 worker processes x 1 thread, X read from the zarr store and
persisted on the workers). All fits must give the same parameters bit for bit;
the script checks it.

    python benchmarks/scale_out.py [--rows 10000000] [--n-iter 5] [--dir DIR]
                                   [--configs memory,memmap,...]
                                   [--zarr-chunk-rows 131072]

Numbers in the README come from a shared, noisy 2-core machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import problems

CONFIGS = ("memory", "memmap", "memmap-cold", "zarr", "cluster")
ZARR_CHUNK_ROWS = 131072  # P2 x10's blocks (8 MiB of float64 rows)


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak RssAnon and VmRSS of this process, sampled on a thread."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.baseline = self.peak = _status_kib("RssAnon")
        self.baseline_rss = self.peak_rss = _status_kib("VmRSS")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        self.peak = max(self.peak, _status_kib("RssAnon"))
        self.peak_rss = max(self.peak_rss, _status_kib("VmRSS"))

    def _run(self):
        while not self._done.is_set():
            self._sample()
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._sample()


def write_data(directory, n_rows, zarr_chunk_rows=ZARR_CHUNK_ROWS):
    """The .npy and zarr copies of P2 x n_rows/10^6, and P2's start (written once)."""
    npy = os.path.join(directory, f"p2_{n_rows}.npy")
    start = os.path.join(directory, f"p2_{n_rows}_start.npz")
    if not (os.path.exists(npy) and os.path.exists(start)):
        spec = dataclasses.replace(problems.SPECS["P2"], n_samples=n_rows)
        X, weights, means, precisions = problems._mixture_problem(
            spec, n_rows, np.dtype("float64"))
        np.save(npy, X)
        np.savez(start, weights=weights, means=means, precisions=precisions)
        del X
    suffix = "" if zarr_chunk_rows == ZARR_CHUNK_ROWS else f"_c{zarr_chunk_rows}"
    store = os.path.join(directory, f"p2_{n_rows}{suffix}.zarr")
    if not os.path.exists(store):
        import zarr

        X = np.load(npy, mmap_mode="r")
        out = zarr.open_array(store, mode="w", shape=X.shape, dtype=X.dtype,
                              chunks=(zarr_chunk_rows, X.shape[1]))
        step = zarr_chunk_rows * max(1, ZARR_CHUNK_ROWS // zarr_chunk_rows)
        for begin in range(0, X.shape[0], step):
            out[begin:begin + step] = X[begin:begin + step]
    return npy, store, start


def _drop_from_page_cache(path):
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _fit(X, start, n_iter):
    from fastem import GaussianMixture

    model = GaussianMixture(16, covariance_type="full", tol=0, max_iter=n_iter,
                            weights_init=start["weights"], means_init=start["means"],
                            precisions_init=start["precisions"], reg_covar=1e-6)
    seconds = []
    model._progress = lambda n_iter, bound, change, elapsed: seconds.append(elapsed)
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    wall = time.perf_counter() - began
    del model._progress
    return model, seconds, wall


def run_config(config, npy, store, start_path, n_iter):
    """One configuration in this process; returns a JSON-able dict."""
    start = dict(np.load(start_path))
    result = {"config": config}
    client = cluster = None
    if config == "memory":
        X = np.load(npy)
    elif config in ("memmap", "memmap-cold"):
        if config == "memmap-cold":
            _drop_from_page_cache(npy)
        X = np.load(npy, mmap_mode="r")
    elif config == "zarr":
        import zarr

        X = zarr.open_array(store, mode="r")
    elif config == "cluster":
        import dask.array as da
        from distributed import Client, LocalCluster

        import fastem

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=0)
        client = Client(cluster)
        client.run(fastem.warmup, n_jobs=1)
        X = da.from_zarr(store).persist()
        from distributed import wait

        wait(X)
    else:
        raise ValueError(config)
    # load the kernels (and numba's compiled code) before measuring the fit's memory
    _fit(np.array(np.load(npy, mmap_mode="r")[:100_000]), start, 1)
    with PeakMemory() as anonymous:
        model, seconds, wall = _fit(X, start, n_iter)
    result.update(
        seconds_per_iteration=float(np.median(seconds)), iterations=seconds,
        fit_seconds=wall, peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024, peak_anonymous_mib=anonymous.peak / 1024,
        added_anonymous_mib=(anonymous.peak - anonymous.baseline) / 1024,
        added_rss_mib=(anonymous.peak_rss - anonymous.baseline_rss) / 1024,
        lower_bound=model.lower_bound_,
        digest=hashlib.sha256(model.means_.tobytes() + model.covariances_.tobytes()
                              + model.weights_.tobytes()).hexdigest(),
    )
    if client is not None:
        workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        result["workers_peak_rss_mib"] = sum(workers.values()) / 1024
        client.close()
        cluster.close()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--n-iter", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the data files go "
                        "(default: a directory under the system's temp dir, kept)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--zarr-chunk-rows", type=int, default=ZARR_CHUNK_ROWS,
                        help="rows per zarr storage chunk (default 131072: 8 MiB; "
                        "16384, 1 MiB, holds less while decoding, see the README)")
    parser.add_argument("--worker", nargs=4, metavar=("CONFIG", "NPY", "ZARR", "START"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config, npy, store, start = args.worker
        print(json.dumps(run_config(config, npy, store, start, args.n_iter)))
        return 0
    directory = args.dir or os.path.join(tempfile.gettempdir(), "fastem_scale_out")
    os.makedirs(directory, exist_ok=True)
    npy, store, start = write_data(directory, args.rows, args.zarr_chunk_rows)
    data_mib = os.path.getsize(npy) / 2**20
    print(f"P2 x{args.rows / 1e6:g}: {args.rows} x 8 float64 ({data_mib:.0f} MiB), K = 16 "
          f"full, {args.n_iter} iterations from P2's start; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("| configuration | s / iteration | fit s | peak RSS MiB | peak anon MiB |"
          " anon added by the fit MiB | RSS added by the fit MiB | workers' peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    results = []
    for config in args.configs.split(","):
        if config == "memmap":  # warm the page cache: read the file once
            with open(npy, "rb") as handle:
                while handle.read(64 << 20):
                    pass
        output = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--n-iter", str(args.n_iter),
             "--worker", config, npy, store, start],
            capture_output=True, text=True, check=True,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        workers = result.get("workers_peak_rss_mib")
        print(f"| {config} | {result['seconds_per_iteration']:.3f} | "
              f"{result['fit_seconds']:.1f} | {result['peak_rss_mib']:.0f} | "
              f"{result['peak_anonymous_mib']:.0f} | "
              f"{result['added_anonymous_mib']:.0f} | {result['added_rss_mib']:.0f} | "
              f"{'' if workers is None else f'{workers:.0f}'} |", flush=True)
    digests = {(r["digest"], r["lower_bound"]) for r in results}
    print(f"same parameters bit for bit in every configuration: {len(digests) == 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
