"""Spark ML's GaussianMixture on local[2] beside fastem, per EM iteration, on P2.

The data is P2 (``problems.make_problem("P2", scale, "float64")``: 10^6 / scale
rows x 8, K = 16, full covariances). In the same run:

* **Spark ML** (``pyspark.ml.clustering.GaussianMixture``) on ``local[2]``, the
  data a cached DataFrame of vectors (counted before timing). Spark cannot take a
  start, so a fit also pays for its own initialisation; seconds per iteration =
  (time of a fit with ``maxIter = 1 + n`` - time of a fit with ``maxIter = 1``) / n,
  with ``tol = 0`` (no early stop), which cancels the one-off work; an untimed
  ``maxIter = 1`` fit runs first, so that neither pays the JVM's warm-up.
* **fastem on a LocalCluster** of 2 worker processes x 1 thread, X a persisted dask
  array (chunks of ``scale_out.ZARR_CHUNK_ROWS`` rows), kernels loaded on the workers
  first; **fastem in memory** (the ndarray). Both from P2's start with ``tol = 0``;
  seconds per iteration = the median of the iterations' own times
  (``scale_out._fit``, as in ``benchmarks/scale_out.py``).

Prints a markdown table, the ratio Spark / fastem-LocalCluster against the issue's
target (>= 10x) and the machine (CPU model, cores, load average at start and end).

pyspark is not a dependency of fastem: ``pip install pyspark`` and a Java 17 runtime
(``apt-get install openjdk-17-jre-headless``) are needed for this script only.

    python benchmarks/spark_ml.py [--scale 1] [--n-iter 3]

Numbers in the README come from a shared, noisy 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import problems
import scale_out

TARGET_RATIO = 10.0


def machine():
    """CPU model name and core count from lscpu (empty strings if it is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        text = ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return (fields.get("Model name", "").strip(), fields.get("CPU(s)", "").strip())


def spark_seconds(X, n_iter, partitions=2):
    """Seconds per iteration of Spark ML's GaussianMixture on local[2], by differencing."""
    import pandas as pd
    from pyspark.ml.clustering import GaussianMixture
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("fastem-spark-ml")
             .config("spark.driver.memory", "3g")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        columns = [f"x{j}" for j in range(X.shape[1])]
        frame = spark.createDataFrame(pd.DataFrame(np.asarray(X), columns=columns))
        data = (VectorAssembler(inputCols=columns, outputCol="features")
                .transform(frame).select("features").repartition(partitions).cache())
        assert data.count() == X.shape[0]
        fits = {}
        # an untimed fit first: the JVM's warm-up (JIT, class loading) is not in either
        for max_iter in (0, 1, 1 + n_iter):
            model = GaussianMixture(k=16, maxIter=max(max_iter, 1), seed=0,
                                    featuresCol="features")
            model.setTol(0.0)
            began = time.perf_counter()
            fitted = model.fit(data)
            fits[max_iter] = time.perf_counter() - began
            if getattr(fitted.summary, "numIter", max(max_iter, 1)) != max(max_iter, 1):
                raise RuntimeError(f"Spark ran {fitted.summary.numIter} iterations, "
                                   f"asked for {max_iter}")
        data.unpersist()
    finally:
        spark.stop()
    return (fits[1 + n_iter] - fits[1]) / n_iter, fits


def _start(problem):
    return {"weights": problem.weights_init, "means": problem.means_init,
            "precisions": problem.precisions_init}


def fastem_cluster_seconds(X, start, n_iter):
    """Median seconds per iteration of fastem on a LocalCluster, 2 workers x 1 thread."""
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import fastem

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit=0) as cluster, \
            Client(cluster) as client:
        client.run(fastem.warmup, dtypes=("float64",), covariance_types=("full",),
                   n_jobs=1)
        data = da.from_array(np.asarray(X), chunks=(scale_out.ZARR_CHUNK_ROWS, X.shape[1]))
        data = data.persist()
        wait(data)
        scale_out._fit(data[:100_000], start, 1)  # every worker has run the kernels
        model, seconds, _ = scale_out._fit(data, start, n_iter)
    return float(np.median(seconds)), model


def fastem_memory_seconds(X, start, n_iter):
    """Median seconds per iteration of fastem on the ndarray."""
    scale_out._fit(np.array(X[:100_000]), start, 1)  # load the kernels
    model, seconds, _ = scale_out._fit(np.asarray(X), start, n_iter)
    return float(np.median(seconds)), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=1,
                        help="P2's rows divided by this (default 1: 10^6 rows)")
    parser.add_argument("--n-iter", type=int, default=3,
                        help="iterations timed (Spark: 1 + n minus 1; fastem: n)")
    args = parser.parse_args(argv)
    if args.n_iter < 1:
        raise ValueError(f"--n-iter must be >= 1, got {args.n_iter}.")
    model_name, cores = machine()
    load_start = os.getloadavg()
    problem = problems.make_problem("P2", args.scale, "float64")
    X, start = problem.X, _start(problem)
    print(f"P2 at scale {args.scale}: {X.shape[0]} x {X.shape[1]} float64, K = 16 full; "
          f"machine: {model_name}, {cores} CPUs; load average at start "
          f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spark, fits = spark_seconds(X, args.n_iter)
        print(f"Spark fits: maxIter=1 {fits[1]:.1f} s, maxIter={1 + args.n_iter} "
              f"{fits[1 + args.n_iter]:.1f} s", flush=True)
        cluster, cluster_model = fastem_cluster_seconds(X, start, args.n_iter)
        memory, memory_model = fastem_memory_seconds(X, start, args.n_iter)
    same = (np.array_equal(cluster_model.means_, memory_model.means_)
            and np.array_equal(cluster_model.covariances_, memory_model.covariances_))
    load_end = os.getloadavg()
    ratio = spark / cluster
    print()
    print("| implementation | s / iteration | Spark / this |")
    print("|---|---|---|")
    print(f"| Spark ML {_spark_version()} GaussianMixture, local[2], cached DataFrame | "
          f"{spark:.3f} | 1 |")
    print(f"| fastem, LocalCluster 2 workers x 1 thread, X persisted | {cluster:.3f} | "
          f"{ratio:.1f} |")
    print(f"| fastem, in memory | {memory:.3f} | {spark / memory:.1f} |")
    print()
    print(f"Spark / fastem-LocalCluster = {ratio:.1f}x (target >= {TARGET_RATIO:g}x: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}); fastem LocalCluster and in "
          f"memory same parameters bit for bit: {same}; load average at end "
          f"{load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    return 0


def _spark_version():
    import pyspark

    return pyspark.__version__


if __name__ == "__main__":
    sys.exit(main())
