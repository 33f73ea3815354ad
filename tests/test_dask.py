"""Fits and inference on Dask arrays (``fastem.em.dask_source``), on dask's threaded
scheduler and on a real ``distributed.LocalCluster`` of worker processes.

From the same start a Dask fit gives the in-memory fit's bits whatever the
chunking (rows not lined up with the blocks, chunks along features), the number
of workers and threads, and when a worker dies mid-fit. Each EM iteration is one
graph, whose parameters are one shared key.
"""

import contextlib
import os
import pickle
import threading
import time
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from bayesian_helpers import (  # noqa: E402  (tests/bayesian_helpers.py)
    PRIOR_TYPES,
    SOURCE_FIT_PARAMS,
    WEIGHT_SCALE,
    assert_identical_posterior,
    fit_bayesian,
    in_memory_fits_fixture,
)
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402

from fastem import BayesianGaussianMixture  # noqa: E402
from fastem.em import dask_source as _dask  # noqa: E402
from fastem.em import driver as _driver  # noqa: E402
from fastem.em import sources as _sources  # noqa: E402
from fastem.mixture import GaussianMixture  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_")
N_SAMPLES, N_FEATURES, N_COMPONENTS = 6100, 3, 3
BLOCK = 512


def make_data(seed=0, n_samples=N_SAMPLES):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(N_COMPONENTS, N_FEATURES))
    labels = rng.integers(0, N_COMPONENTS, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, N_FEATURES))


def make_weights(seed=1):
    weights = np.random.default_rng(seed).uniform(0.0, 3.0, size=N_SAMPLES)
    weights[::11] = 0.0
    return weights


FIT_PARAMS = dict(n_components=N_COMPONENTS, random_state=0, chunk_size=BLOCK,
                  max_iter=15, tol=1e-8, init_sample_size=2000)


def fit(X, sample_weight=None, **params):
    settings = dict(FIT_PARAMS)
    settings.update(params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(**settings).fit(X, sample_weight=sample_weight)


def assert_same_fit(expected, got):
    for name in FITTED:
        assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    assert got.lower_bounds_ == expected.lower_bounds_
    assert got.n_iter_ == expected.n_iter_


@pytest.fixture(scope="module")
def expected_fits():
    cache = {}

    def get(covariance_type, dtype="float64", weighted=False, **params):
        key = (covariance_type, dtype, weighted, tuple(sorted(params.items())))
        if key not in cache:
            cache[key] = fit(make_data().astype(dtype),
                             make_weights() if weighted else None,
                             covariance_type=covariance_type, **params)
        return cache[key]

    return get


@pytest.fixture
def threads():
    with dask.config.set(scheduler="threads", num_workers=4):
        yield


# --------------------------------------------------------------------------
# threaded scheduler


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_threaded_dask_fit_is_the_in_memory_fit(expected_fits, covariance_type, dtype):
    X = da.from_array(make_data().astype(dtype), chunks=(1000, N_FEATURES))
    assert_same_fit(expected_fits(covariance_type, dtype),
                    fit(X, covariance_type=covariance_type))


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_dask_weights_and_feature_chunks(expected_fits, covariance_type):
    """Weights as a Dask array with other chunks, or as an ndarray; X chunked along
    features is rechunked to whole rows."""
    expected = expected_fits(covariance_type, weighted=True)
    X = da.from_array(make_data(), chunks=(700, 1))
    weights = da.from_array(make_weights(), chunks=2500)
    assert_same_fit(expected, fit(X, weights, covariance_type=covariance_type))
    assert_same_fit(expected, fit(X, make_weights(), covariance_type=covariance_type))


@pytest.mark.parametrize("num_workers", [1, 3])
@pytest.mark.parametrize("init_params", ["random_from_data", "k-means++"])
def test_thread_count_and_starts(expected_fits, num_workers, init_params):
    X = da.from_array(make_data(), chunks=1024)
    with dask.config.set(scheduler="threads", num_workers=num_workers):
        got = fit(X, covariance_type="tied", init_params=init_params)
    assert_same_fit(expected_fits("tied", init_params=init_params), got)


def assert_lazy_fit_predict(estimator, model):
    """fit_predict of a Dask array gives lazy labels, the fitted model's predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = estimator.fit_predict(da.from_array(make_data(), chunks=1000))
    assert isinstance(labels, da.Array)
    assert_array_equal(labels.compute(), model.predict(make_data()))


def assert_lazy_inference(model):
    """predict, predict_proba and score_samples of a Dask array are lazy Dask arrays
    with the in-memory results; score is the in-memory score (to rounding)."""
    X = make_data(seed=4)
    lazy = da.from_array(X, chunks=1500)
    for method in ("predict", "predict_proba", "score_samples"):
        result = getattr(model, method)(lazy)
        assert isinstance(result, da.Array), method
        assert_array_equal(result.compute(), getattr(model, method)(X), err_msg=method)
    assert model.score(lazy) == pytest.approx(model.score(X), rel=1e-14)


@pytest.fixture
def random_chunks(monkeypatch):
    """The 'random' start in chunks of 1000 rows: several tasks per pass."""
    monkeypatch.setattr(_driver, "INIT_CHUNK", 1000)


RANDOM = dict(init_params="random", n_init=2)


@pytest.mark.usefixtures("threads", "random_chunks")
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_threaded_random_start_is_the_in_memory_fit(covariance_type):
    expected = fit(make_data(), covariance_type=covariance_type, **RANDOM)
    for chunks in (900, 3000):  # rechunked to whole 1000-row chunks; kept
        X = da.from_array(make_data(), chunks=(chunks, N_FEATURES))
        assert_same_fit(expected, fit(X, covariance_type=covariance_type, **RANDOM))


@pytest.mark.usefixtures("threads")
def test_lazy_inference(expected_fits):
    model = expected_fits("full")
    assert_lazy_inference(model)
    assert_lazy_fit_predict(GaussianMixture(**FIT_PARAMS), model)


@pytest.mark.usefixtures("threads")
def test_bad_dask_input():
    X = make_data()
    X[5000, 2] = np.inf
    with pytest.raises(ValueError, match=r"\+inf at row 5000 \(block 9\), column 2"):
        fit(da.from_array(X, chunks=1000))
    with pytest.raises(ValueError, match="2-D array"):
        fit(da.zeros((100, 3, 2)))
    unknown = da.from_array(make_data(), chunks=1000)
    unknown = unknown[unknown[:, 0] > -np.inf]  # chunk sizes unknown until computed
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        fit(unknown)


BAD_WEIGHTS = {
    # a negative weight, and a smaller one further on: the smallest is named
    "two negatives": ({1000: -0.5, 5000: -2.0},
                      "non-negative; found -2.0 at index 5000"),
    # equal smallest weights: the first of them
    "equal negatives": ({1000: -2.0, 5000: -2.0},
                        "non-negative; found -2.0 at index 1000"),
    # a negative weight, then one that is not finite: the non-finite one is named
    "negative then nan": ({1000: -0.5, 5000: np.nan}, "contains nan at index 5000"),
    "negative then -inf": ({1000: -0.5, 5000: -np.inf}, "contains -inf at index 5000"),
}


@pytest.mark.usefixtures("threads")
@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
def test_bad_weights_are_named_alike_in_memory_streamed_and_in_dask(tmp_path, case):
    """The same bad sample_weight gives the same message in memory, streamed from a
    memory-mapped .npy and in Dask (the streamed and Dask checks, block by block,
    named the first negative weight, in memory the smallest)."""
    changes, expected = BAD_WEIGHTS[case]
    weights = make_weights()
    for index, value in changes.items():
        weights[index] = value
    np.save(tmp_path / "w.npy", weights)
    np.save(tmp_path / "x.npy", make_data())
    inputs = {
        "in memory": (make_data(), weights),
        "streamed": (np.load(tmp_path / "x.npy", mmap_mode="r"),
                     np.load(tmp_path / "w.npy", mmap_mode="r")),
        "dask": (da.from_array(make_data(), chunks=1000),
                 da.from_array(weights, chunks=1000)),
    }
    messages = {}
    for name, (X, sample_weight) in inputs.items():
        with pytest.raises(ValueError) as raised:
            fit(X, sample_weight)
        messages[name] = str(raised.value)
    assert expected in messages["in memory"]
    assert messages["streamed"] == messages["in memory"], messages
    assert messages["dask"] == messages["in memory"], messages


def test_chunks_that_compute_to_other_shapes_than_declared_are_a_clear_error():
    """dask does not check that a chunk computes to the shape its array declares
    (da.from_delayed takes the shape on trust): fastem does, before its kernels,
    which have no bounds checks, read or write past their arrays."""
    X = make_data()
    model = fit(X)
    # chunks of whole blocks (1024 rows), so that no rechunking (whose concatenation
    # would notice) comes between the chunk and the kernels
    wide = np.c_[X[1024:2048], X[1024:2048, :1]]  # one column more than declared
    pieces = [da.from_array(X[:1024], chunks=1024),
              da.from_delayed(dask.delayed(np.array)(wide), shape=(1024, X.shape[1]),
                              dtype=X.dtype),
              da.from_array(X[2048:], chunks=1024)]
    lying = da.concatenate(pieces)
    message = (r"The Dask array's chunk of X at rows 1024 to 2047 computed to shape "
               rf"\(1024, {X.shape[1] + 1}\), but its chunks declare "
               rf"\(1024, {X.shape[1]}\)")
    with pytest.raises(ValueError, match=message):
        fit(lying)
    with pytest.raises(ValueError, match=message):
        model.predict(lying).compute()
    short_weights = da.concatenate([da.ones(1024, chunks=1024),
                                    da.from_delayed(dask.delayed(np.ones)(1023),
                                                    shape=(1024,), dtype=float),
                                    da.ones(len(X) - 2048, chunks=1024)])
    with pytest.raises(ValueError, match=(r"The Dask array's chunk of sample_weight at "
                                          r"rows 1024 to 2047 computed to shape "
                                          r"\(1023,\)")):
        fit(da.from_array(X, chunks=1024), short_weights)


@pytest.mark.parametrize("dtype", ["int32", "float16"])
def test_other_numeric_dtypes_fit_as_in_memory(dtype):
    """Integers and float16 in Dask are fitted in float64, as an ndarray of them is."""
    X = np.round(make_data() * 100).astype(dtype)
    expected = fit(X)
    assert_same_fit(expected, fit(da.from_array(X, chunks=1000)))
    assert_array_equal(expected.predict(da.from_array(X, chunks=1000)).compute(),
                       expected.predict(X))


def test_small_data_chunks_are_checked_too():
    """Small data is computed into memory to be fitted (DaskSource.materialise):
    its chunks are checked there too (a chunk one row short fitted the rows it had,
    or blamed the weights)."""
    X = make_data(n_samples=200)
    lying = da.concatenate([
        da.from_array(X[:100], chunks=100),
        da.from_delayed(dask.delayed(np.array)(X[100:199]), shape=(100, X.shape[1]),
                        dtype=X.dtype)])
    message = (r"The Dask array's chunk of X at rows 100 to 199 computed to shape "
               rf"\(99, {X.shape[1]}\), but its chunks declare \(100, {X.shape[1]}\)")
    for weights in (None, np.ones(200)):
        with pytest.raises(ValueError, match=message):
            GaussianMixture(2, random_state=0).fit(lying, sample_weight=weights)
    short_weights = da.concatenate([
        da.ones(100, chunks=100),
        da.from_delayed(dask.delayed(np.ones)(99), shape=(100,), dtype=float)])
    with pytest.raises(ValueError, match=r"The Dask array's chunk of sample_weight at "
                                         r"rows 100 to 199 computed to shape \(99,\)"):
        GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=100),
                                               sample_weight=short_weights)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inference_on_small_dask_data_is_the_in_memory_inference(dtype):
    """Small data in memory takes the row kernels (float64 whatever X's dtype); the
    chunks of a small Dask array take them too, lazily: the same bits (they took
    the block kernels, in float32 for float32 data, about 1e-7 off)."""
    X = make_data(n_samples=500).astype(dtype)
    assert _driver.is_small(*X.shape, N_COMPONENTS)
    lazy = da.from_array(X, chunks=128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variational = BayesianGaussianMixture(n_components=N_COMPONENTS,
                                              random_state=0, max_iter=20).fit(X)
    for model in (fit(X), variational):  # the variational one: its log weights
        for method in ("predict", "predict_proba", "score_samples"):
            result = getattr(model, method)(lazy)
            assert isinstance(result, da.Array), method
            assert_array_equal(result.compute(), getattr(model, method)(X),
                               err_msg=method)
        # dask's mean of the chunks adds in another order than numpy's
        assert model.score(lazy) == pytest.approx(model.score(X), rel=1e-14)


@pytest.mark.parametrize("estimator", ["GaussianMixture", "BayesianGaussianMixture"])
def test_fit_predict_of_small_dask_data_is_a_dask_array(estimator):
    """Small data is fitted in memory; its fit_predict labels come back as a Dask array
    of X's row chunks (as predict's do), the in-memory fit_predict's labels."""
    X = make_data(n_samples=500)
    assert _driver.is_small(*X.shape, N_COMPONENTS)
    lazy = da.from_array(X, chunks=128)
    make = {"GaussianMixture": lambda: GaussianMixture(N_COMPONENTS, random_state=0),
            "BayesianGaussianMixture": lambda: BayesianGaussianMixture(
                n_components=N_COMPONENTS, random_state=0, max_iter=20)}[estimator]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = make().fit_predict(lazy)
        expected = make().fit_predict(X)
    assert isinstance(labels, da.Array)
    assert labels.chunks == ((128, 128, 128, 116),)
    assert_array_equal(labels.compute(), expected)


class FailingRows:
    """An array-like for da.from_array whose rows past ``fail_from`` cannot be read
    once ``armed`` (as a file damaged mid-fit)."""

    def __init__(self, array, fail_from, armed=True):
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.fail_from = fail_from
        self.armed = armed

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        if self.armed and rows.stop > self.fail_from:
            raise OSError("Can't read data (inflate() failed)")
        return self._array[key].copy()


# 1000-row chunks rechunked to whole 512-row blocks: chunks of 1024 rows; rows 4000
# and on fail, so the chunk of rows 3072 to 4095 fails, at its second block
FAILED_BLOCK = r"Reading block 7 \(rows 3584 to 4095\) of X failed: OSError"


@pytest.mark.usefixtures("threads")
def test_a_read_error_mid_fit_names_the_block(monkeypatch):
    """As a streamed source's (tests/test_sources.py): the checks pass, then a read
    fails; the error names the first block that cannot be read, and the pass."""
    source = FailingRows(make_data(), fail_from=4000, armed=False)
    scan = _dask.DaskSource.scan

    def scan_then_break(self, *args, **kwargs):
        summary = scan(self, *args, **kwargs)
        source.armed = True
        return summary

    monkeypatch.setattr(_dask.DaskSource, "scan", scan_then_break)
    X = make_data()
    start = dict(weights_init=np.full(N_COMPONENTS, 1 / N_COMPONENTS),
                 means_init=X[:N_COMPONENTS], precisions_init=np.stack(
                     [np.eye(N_FEATURES)] * N_COMPONENTS))
    model = GaussianMixture(**FIT_PARAMS, **start)
    with pytest.raises(_sources.DataReadError,
                       match=FAILED_BLOCK + r".*pass chunk_statistics"):
        model.fit(da.from_array(source, chunks=(1000, N_FEATURES)))
    assert not any(name.endswith("_") for name in vars(model))  # no half-fitted model
    # the sampled start's rows: the first 1000-row chunk with a row that cannot be read
    source.armed = False
    with pytest.raises(_sources.DataReadError,
                       match=r"Reading rows 4000 to 4999 of X failed: OSError"):
        fit(da.from_array(source, chunks=(1000, N_FEATURES)))
    weights = FailingRows(make_weights(), fail_from=4000)
    with pytest.raises(_sources.DataReadError,
                       match=r"block 7 \(rows 3584 to 4095\) of sample_weight"):
        fit(da.from_array(make_data(), chunks=1000),
            da.from_array(weights, chunks=1000))


@pytest.mark.usefixtures("threads")
def test_a_read_error_in_the_starts_weights_names_the_rows(monkeypatch):
    """The sampled start picks rows of positive weight: the weights' chunks holding the
    picked ranks are read once more, and one that fails then is named."""
    weights = FailingRows(make_weights(), fail_from=4000, armed=False)
    map_chunks = _dask.DaskSource.map_chunks

    def count_then_break(self, function, *args, **kwargs):
        results = list(map_chunks(self, function, *args, **kwargs))
        if function is _sources.chunk_positive_counts:
            weights.armed = True
        return results

    monkeypatch.setattr(_dask.DaskSource, "map_chunks", count_then_break)
    with pytest.raises(_sources.DataReadError,
                       match=r"Reading blocks 6 to 7 \(rows 3072 to 4095\) of sample_weight "
                             r"failed: OSError.*picked for the start"):
        fit(da.from_array(make_data(), chunks=1000), da.from_array(weights, chunks=1000))


@pytest.mark.usefixtures("threads")
def test_a_damaged_zarr_chunk_names_the_block(tmp_path):
    zarr = pytest.importorskip("zarr")
    store = zarr.open_array(str(tmp_path / "X.zarr"), mode="w", shape=(N_SAMPLES, 3),
                            dtype="float64", chunks=(900, 3))
    store[:] = make_data()
    chunk_files = sorted(os.path.join(root, name)
                         for root, _, names in os.walk(tmp_path / "X.zarr")
                         for name in names if not name.startswith(("zarr.json", ".z")))
    assert len(chunk_files) == 7
    with open(chunk_files[3], "wb") as damaged:  # rows 2700 to 3599
        damaged.write(b"not a chunk")
    with pytest.raises(_sources.DataReadError,
                       match=r"block 5 \(rows 2560 to 3071\) of X failed"):
        fit(da.from_zarr(store))


# --------------------------------------------------------------------------
# distributed: a LocalCluster of two worker processes with one thread each


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        client.run(_warm_worker)
        yield client
    finally:
        client.close()
        cluster.close()


def _warm_worker():
    """Load (or compile) the kernels a fit on a worker needs."""
    _sources.chunk_statistics  # noqa: B018
    fit(make_data(), max_iter=1)
    return True


@pytest.mark.parametrize("covariance_type, dtype", [("full", "float64"),
                                                    ("diag", "float32")])
def test_local_cluster_fit_is_the_in_memory_fit(client, expected_fits, covariance_type,
                                                 dtype):
    X = da.from_array(make_data().astype(dtype), chunks=(900, N_FEATURES))
    assert_same_fit(expected_fits(covariance_type, dtype),
                    fit(X, covariance_type=covariance_type))


def test_local_cluster_with_dask_weights(client, expected_fits):
    X = client.persist(da.from_array(make_data(), chunks=1024))
    weights = da.from_array(make_weights(), chunks=3000)
    assert_same_fit(expected_fits("tied", weighted=True),
                    fit(X, weights, covariance_type="tied"))


@pytest.mark.usefixtures("random_chunks")
@pytest.mark.parametrize("covariance_type, dtype, chunks", [("full", "float64", 900),
                                                            ("diag", "float32", 2000)])
def test_local_cluster_random_start_is_the_in_memory_fit(client, covariance_type, dtype,
                                                         chunks):
    """The workers draw the 'random' start's numbers from the states the client sends:
    the in-memory bits, weights as a Dask array too."""
    X = make_data().astype(dtype)
    # two restarts: the second starts where the client advanced the RandomState to
    params = dict(covariance_type=covariance_type, max_iter=2, **RANDOM)
    assert_same_fit(fit(X, **params), fit(da.from_array(X, chunks=chunks), **params))
    expected = fit(X, make_weights(), **params)
    got = fit(da.from_array(X, chunks=chunks),
              da.from_array(make_weights(), chunks=2500), **params)
    assert_same_fit(expected, got)


def test_local_cluster_object_dtype_of_numbers_is_fitted_as_in_memory(client):
    """A Dask array of dtype object holding numbers (Python ints and floats) is
    converted block by block on the workers, as an ndarray of them is converted in
    memory: the same fit and inference; an element that is not a number is the
    in-memory TypeError, naming its row."""
    X = make_data().astype(object)
    X[::7, 0] = [int(round(value)) for value in X[::7, 0]]
    expected = fit(X)
    lazy = da.from_array(X, chunks=(900, N_FEATURES))
    assert_same_fit(expected, fit(lazy))
    assert_array_equal(expected.predict(lazy).compute(), expected.predict(X))
    assert_array_equal(expected.predict_proba(lazy).compute(),
                       expected.predict_proba(X))
    with_text = X.copy()
    with_text[4000, 1] = "n/a"
    with pytest.raises(TypeError) as in_memory:
        fit(with_text)
    with pytest.raises(TypeError) as in_dask:
        fit(da.from_array(with_text, chunks=(900, N_FEATURES)))
    assert str(in_dask.value) == str(in_memory.value)
    assert "row 4000, column 1 ('n/a')" in str(in_dask.value)
    with pytest.raises(TypeError) as in_dask:
        expected.predict(da.from_array(with_text, chunks=(900, N_FEATURES))).compute()
    assert "row 4000, column 1 ('n/a')" in str(in_dask.value)


def test_local_cluster_read_error_names_the_block(client):
    """On a distributed Client the passes run as futures (the failed one is known)."""
    assert _dask._distributed_client([dask.delayed(int)(1)]) is client
    X = da.from_array(FailingRows(make_data(), fail_from=4000),
                      chunks=(1000, N_FEATURES))
    with pytest.raises(_sources.DataReadError,
                       match=FAILED_BLOCK + r".*pass chunk_scan"):
        fit(X)


def test_a_worker_killed_mid_fit_changes_nothing(client, expected_fits):
    """A worker process exits during the fit; its nanny restarts it, dask reruns its
    tasks, and the fit gives the same bits."""
    params = dict(covariance_type="full", max_iter=20, tol=0)
    expected = expected_fits(**params)
    X = da.from_array(make_data(), chunks=600)
    pids = client.run(os.getpid)  # {worker address: process id}
    victim = sorted(pids)[0]
    killed = threading.Event()
    kill_sent = []

    def kill():
        time.sleep(0.3)
        kill_sent.append(time.perf_counter())
        try:
            client.run(os._exit, 1, workers=[victim])
        except Exception:  # the worker dies before answering
            pass
        killed.set()

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    got = fit(X, **params)
    fit_ended = time.perf_counter()
    killer.join(timeout=30)
    # the kill was sent while the fit ran, and a worker process did die: the nanny
    # restarted it, so the cluster's process ids are not the ones before
    assert killed.is_set() and kill_sent[0] < fit_ended
    client.wait_for_workers(2, timeout=60)
    deadline = time.monotonic() + 60
    while set(client.run(os.getpid).values()) == set(pids.values()):
        assert time.monotonic() < deadline, "no worker process was restarted"
        time.sleep(0.1)
    assert pids[victim] not in client.run(os.getpid).values()
    assert_same_fit(expected, got)


# --------------------------------------------------------------------------
# the graphs each pass sends, on the threaded scheduler and on the LocalCluster


class GraphRecorder(SchedulerPlugin):
    """On the scheduler: every graph it receives (update_graph), as {key: (its task
    pickled, as the scheduler ships it to a worker, the keys it depends on)}."""

    name = "fastem-test-graph-recorder"

    def __init__(self):
        self.graphs = []

    def update_graph(self, scheduler, *, tasks, **kwargs):
        states = [scheduler.tasks[key] for key in tasks]
        self.graphs.append({
            state.key: (pickle.dumps(state.run_spec),
                        {dependency.key for dependency in state.dependencies})
            for state in states})


def _recorded_graphs(dask_scheduler, name):
    return dask_scheduler.plugins[name].graphs


def _local_graph(collections):
    """The graph dask.compute runs for ``collections``, as GraphRecorder records one."""
    graph = dict(dask.base.collections_to_expr(collections).__dask_graph__()
                 if hasattr(dask.base, "collections_to_expr")
                 else dask.base.collections_to_dsk(collections))
    return {key: (pickle.dumps(task), dask.core.get_dependencies(graph, key))
            for key, task in graph.items()}


@contextlib.contextmanager
def recorded_graphs(client):
    """A list of the graphs computed in the block, each {key: (the task pickled, the
    keys it depends on)}: on a distributed ``client`` those its scheduler receives
    (GraphRecorder: every graph, whoever computes it); on dask's local
    schedulers (``client`` None) those given to dask.compute, which fastem's
    passes call (a spy that records and calls through)."""
    graphs = []
    if client is None:
        compute = dask.compute

        def recording_compute(*args, **kwargs):
            graphs.append(_local_graph(args))
            return compute(*args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dask, "compute", recording_compute)
            yield graphs
        return
    client.register_plugin(GraphRecorder())
    try:
        yield graphs
        graphs.extend(client.run_on_scheduler(_recorded_graphs,
                                              name=GraphRecorder.name))
    finally:
        client.unregister_scheduler_plugin(GraphRecorder.name)


@pytest.fixture(params=["threads", "distributed"])
def scheduler_client(request):
    """None on dask's threaded scheduler (four threads), or the module's LocalCluster
    client: fastem computes a pass with dask.compute on the one, with
    client.compute on the other."""
    if request.param == "threads":
        with dask.config.set(scheduler="threads", num_workers=4):
            yield None
    else:
        yield request.getfixturevalue("client")


TASK_BYTES_LIMIT = 20_000  # a task without the parameters or a chunk's numbers


def test_one_graph_per_iteration_with_parameters_as_one_shared_key(scheduler_client):
    """With a user-given start and no weights a fit computes one graph to check the
    data and one per iteration; in each, the kernels' inputs are one key, which
    every chunk's task depends on, not a copy inside each task: the precisions
    alone (36.9 KB) make that key the one task past 20 KB."""
    rng = np.random.default_rng(0)
    n_features, n_components = 24, 8
    X = da.random.default_rng(1).normal(size=(40_000, n_features), chunks=5000)
    start = dict(weights_init=np.full(n_components, 1 / n_components),
                 means_init=rng.normal(size=(n_components, n_features)),
                 precisions_init=np.stack([np.eye(n_features)] * n_components))
    with recorded_graphs(scheduler_client) as graphs:
        model = fit(X, n_components=n_components, max_iter=3, tol=0, chunk_size=1000,
                    **start)
    assert model.n_iter_ == 3
    assert len(graphs) == 1 + 3
    parameters_bytes = n_components * n_features * n_features * 8
    n_chunks = 8  # 5000-row chunks hold whole 1000-row blocks: not rechunked
    for graph in graphs[1:]:
        sizes = {key: len(task) for key, (task, _) in graph.items()}
        large = [key for key, size in sizes.items() if size > TASK_BYTES_LIMIT]
        assert len(large) == 1, sorted(sizes.values())[-3:]  # the shared key, once
        assert sizes[large[0]] > parameters_bytes
        chunk_tasks = [key for key in graph if "run_chunk" in str(key)]
        assert len(chunk_tasks) == n_chunks
        assert all(large[0] in graph[key][1] for key in chunk_tasks)


@pytest.mark.usefixtures("random_chunks")
def test_random_start_sends_states_not_numbers(scheduler_client):
    """Each task of the 'random' start's passes gets its RandomState's state (2.5 KB),
    not its rows' random numbers (5000 rows x 8 components x 8 bytes = 320 KB)."""
    X = da.random.default_rng(1).normal(size=(40_000, 4), chunks=5000)
    with recorded_graphs(scheduler_client) as graphs:
        fit(X, n_components=8, max_iter=0, init_params="random", chunk_size=1000)
    drawing = [graph for graph in graphs
               if any(b"chunk_random" in task for task, _ in graph.values())]
    assert len(drawing) == 2  # the sums, then the scatters
    for graph in drawing:
        sizes = sorted(len(task) for task, _ in graph.values())
        assert 2500 < sizes[-1] < TASK_BYTES_LIMIT, sizes[-3:]


# --------------------------------------------------------------------------
# BayesianGaussianMixture on the LocalCluster


expected_bayesian = in_memory_fits_fixture(make_data, make_weights)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_local_cluster_bayesian_fit_is_the_in_memory_fit(client, expected_bayesian,
                                                         prior_type, covariance_type,
                                                         dtype):
    """Chunks of 900 rows, rechunked to the fit's 512-row blocks; the posterior and
    lower bounds are the in-memory fit's bit for bit."""
    X = da.from_array(make_data().astype(dtype), chunks=(900, N_FEATURES))
    params = dict(covariance_type=covariance_type, weight_concentration_prior_type=prior_type)
    expected = expected_bayesian(dtype=dtype, **params)
    assert expected.n_iter_ == 10
    assert_identical_posterior(fit_bayesian(X, **params), expected)


def test_local_cluster_bayesian_weights_and_lazy_inference(client, expected_bayesian):
    X = client.persist(da.from_array(make_data(), chunks=1024))
    weights = da.from_array(WEIGHT_SCALE * make_weights(), chunks=3000)
    assert_identical_posterior(fit_bayesian(X, weights, covariance_type="tied"),
                               expected_bayesian("tied", weighted=True))
    model = expected_bayesian("full")
    assert_lazy_inference(model)
    assert_lazy_fit_predict(BayesianGaussianMixture(**SOURCE_FIT_PARAMS), model)
