"""Reproducibility and concurrency.

* The same ``random_state`` gives bitwise-identical fitted parameters across
  runs, across thread counts 1 and 2, between this process and a fresh one
  that loads the compiled kernels from the cache, and a fresh one that
  compiles them -- on the small-data loop and on the block kernels.
* The 1- and 2-thread fits do run the block kernels on one and two threads
  (tests/conftest.py's ``block_threads`` records it), and fastem's per-thread
  count (``fastem.kernels.threads.current_threads``) is back where it was after
  every fit, also after a fit that raised inside an outer ``thread_limit``.
* Fits running at once in a ThreadPoolExecutor give exactly the sequential
  results, each on its own thread count; numba's own thread count (which
  fastem's kernels do not use) is left alone, also by a fit that raised.
* A fitted model round-trips through pickle, and through the CLI's JSON
  output and ``fastem.load_model``, with identical ``predict_proba``.
* A numba cache directory that is read-only or absent does not break fitting.

The subprocess tests compile kernels in fresh processes (an absent cache
directory, a read-only installation, a fresh cache for the block kernels); they
start when the test session starts (tests/background.py).
"""

import json
import os
import pickle
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import background  # tests/background.py
import numba
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import fastem
from fastem import GaussianMixture, load_model
from fastem.cli import main
from fastem.em.driver import default_block_size
from fastem.kernels.threads import current_threads, max_threads, thread_limit
from fastem.mixture import SingularCovarianceError

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_X = np.array([[1.0, 2.0], [4.0, 2.0], [1.0, 3.0], [4.0, 3.0]])
# Every comparison here is bit for bit. Two earlier CI runs saw fits differ by 1 ulp
# to 4e-12 between processes and within one: numba had compiled the M-step with the
# fastmath flags of whichever kernel called it first (see FASTMATH in
# fastem/kernels/estep.py and the flag tests in tests/test_kernels_cache.py).


@pytest.fixture
def rng():
    return np.random.default_rng(20240706)


@pytest.fixture
def seed(rng):
    return int(rng.integers(2**31 - 1))


def blobs(rng, n_per_component=100, n_features=3, n_components=3):
    centres = rng.normal(scale=5.0, size=(n_components, n_features))
    return np.concatenate(
        [centre + rng.normal(size=(n_per_component, n_features)) for centre in centres]
    )


def fit_quietly(model, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **fit_params)


def assert_identical(actual, expected):
    for name in FITTED:
        assert_array_equal(getattr(actual, name), getattr(expected, name), err_msg=name)
    assert actual.lower_bound_ == expected.lower_bound_
    assert actual.lower_bounds_ == expected.lower_bounds_
    assert actual.n_iter_ == expected.n_iter_
    assert actual.converged_ == expected.converged_
    assert actual.singular_events_ == expected.singular_events_


def fingerprint(model):
    """Exact bytes of the fitted parameters (comparable across processes)."""
    return {name: np.asarray(getattr(model, name)).tobytes().hex() for name in FITTED}


# --------------------------------------------------------------------------
# runs and thread counts

needs_two_threads = pytest.mark.skipif(
    max_threads() < 2,
    reason="fastem's kernels may use one thread only here (NUMBA_NUM_THREADS < 2), "
    "so a fit asked for two threads runs on one and there is nothing to compare",
)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_same_random_state_gives_identical_fits(rng, seed, covariance_type, dtype):
    X = np.vstack([blobs(rng), np.repeat(blobs(rng)[:2], 5, axis=0)]).astype(dtype)
    for init_params in ("kmeans", "random"):
        params = dict(n_components=4, covariance_type=covariance_type, n_init=2,
                      init_params=init_params, reg_covar=0.0, random_state=seed)
        first = fit_quietly(GaussianMixture(**params), X)
        second = fit_quietly(GaussianMixture(**params), X)
        assert_identical(second, first)
        assert_array_equal(second.predict_proba(X), first.predict_proba(X))


@needs_two_threads
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_and_two_threads_give_bitwise_identical_fits(
    rng, seed, covariance_type, dtype, block_threads
):
    """25,000 x 4 data with 4 components: the parallel, many-block path, which the
    fits and the inference do run on one and on two threads."""
    X = blobs(rng, n_per_component=6250, n_features=4, n_components=4).astype(dtype)
    params = dict(n_components=4, covariance_type=covariance_type, init_params="random",
                  max_iter=8, random_state=seed)
    assert current_threads() == max_threads()  # nothing set on this thread
    one = fit_quietly(GaussianMixture(n_threads=1, **params), X)
    block_threads.assert_used(1)
    two = fit_quietly(GaussianMixture(n_threads=2, **params), X)
    block_threads.assert_used(2)
    assert current_threads() == max_threads()
    assert_identical(two, one)
    for method in ("predict_proba", "score_samples"):
        expected = getattr(one, method)(X)
        block_threads.assert_used(1)
        assert_array_equal(getattr(two, method)(X), expected, err_msg=method)
        block_threads.assert_used(2)
    assert current_threads() == max_threads()


@needs_two_threads
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_starts_from_the_data_give_bitwise_identical_fits_on_one_and_two_threads(
    rng, seed, covariance_type, init_params, block_threads
):
    """The starts computed from the data (scikit-learn's k-means, fastem's k-means++,
    rows of X), as the default start is: the same bits on one and two threads
    (which the fits do use)."""
    X = blobs(rng, n_per_component=6250, n_features=4, n_components=4)
    params = dict(n_components=4, covariance_type=covariance_type,
                  init_params=init_params, max_iter=8, random_state=seed)
    one = fit_quietly(GaussianMixture(n_threads=1, **params), X)
    block_threads.assert_used(1)
    two = fit_quietly(GaussianMixture(n_threads=2, **params), X)
    block_threads.assert_used(2)
    assert current_threads() == max_threads()
    assert_identical(two, one)
    assert_array_equal(two.predict_proba(X), one.predict_proba(X))


# --------------------------------------------------------------------------
# concurrency


def test_concurrent_fits_equal_sequential_fits(rng, seed, block_threads):
    """Eight fits (four covariance types x two sizes, 1 or 2 threads) at once: the
    sequential results, each fit on its own thread count (the count is per calling
    thread), and each worker's count back at the default afterwards."""
    small = blobs(rng)
    # above SERIAL_WORK_LIMIT (21,000 rows were not): many blocks, so two threads
    large = blobs(rng, n_per_component=10000, n_features=4)
    assert default_block_size(*large.shape, 3, "full", 8) < len(large)
    jobs = [
        (X, dict(n_components=3, covariance_type=covariance_type, n_threads=n_threads,
                 init_params="random", max_iter=10, random_state=seed + i))
        for i, (covariance_type, X, n_threads) in enumerate(
            (covariance_type, X, 1 + (j % 2))
            for j, X in enumerate((small, large))
            for covariance_type in COVARIANCE_TYPES
        )
    ]

    def run(job):
        X, params = job
        block_threads.take()  # this worker's calls from its previous job
        model = GaussianMixture(**params).fit(X)
        resp = model.predict_proba(X)
        if X is large:  # small data never reaches the block kernels
            block_threads.assert_used(min(params["n_threads"], max_threads()))
        assert current_threads() == max_threads(), "the count leaked on this thread"
        return model, resp

    threads_before = numba.get_num_threads()
    # One filter for all the threads, set here: warnings.catch_warnings is not
    # thread-safe (each thread's exit restores the filters as its entry saw them,
    # so a fit's ConvergenceWarning escaped now and then).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sequential = [run(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=4) as pool:
            concurrent = list(pool.map(run, jobs))
    # fastem never changes numba's own count; this would catch a fit that did
    # (numba.set_num_threads is per calling thread too) and left it changed
    assert numba.get_num_threads() == threads_before
    assert current_threads() == max_threads()
    for (model, resp), (expected, expected_resp) in zip(concurrent, sequential, strict=True):
        assert_identical(model, expected)
        assert_array_equal(resp, expected_resp)


def test_kernels_release_the_gil():
    from numba.core.registry import CPUDispatcher

    from fastem.kernels import estep as _kernels_estep
    from fastem.kernels import loop as _kernels_loop
    from fastem.kernels import small as _kernels_small

    kernels = [
        getattr(module, name) for module in (_kernels_estep, _kernels_loop, _kernels_small)
        for name in dir(module)
        if not name.startswith("_") and isinstance(getattr(module, name), CPUDispatcher)
    ]
    names = {kernel.__name__ for kernel in kernels}
    assert {"dense_statistics_blocks", "diagonal_statistics_blocks",
            "log_resp_blocks", "dense_em_into",
            "diagonal_em_into", "dense_weighted_log_prob_rows_into"} <= names
    assert all(kernel.targetoptions.get("nogil") for kernel in kernels)
    # no numba parallel loops: threads come from run_blocks
    assert not any(kernel.targetoptions.get("parallel") for kernel in kernels)


@pytest.mark.parametrize(
    ("X", "params", "error"),
    [
        (np.tile([[1.0, 2.0]], (10, 1)), dict(reg_covar=0.0, on_singular="raise"),
         SingularCovarianceError),
        (NOTEBOOK_X * 1e160, dict(), ValueError),
    ],
    ids=["singular covariance", "beyond float64"],
)
@needs_two_threads
def test_thread_count_is_restored_after_a_fit_that_raised(seed, X, params, error):
    """A fit with n_threads=1 that raises inside ``thread_limit(2)`` leaves the
    kernels' count at 2 there and at the default after it. numba's own count,
    set to 2 here, is checked too: fastem does not use or set it, and a fit that
    set it (numba.set_num_threads) without restoring it would show here."""
    original = numba.get_num_threads()
    assert current_threads() == max_threads()  # nothing set on this thread
    try:
        numba.set_num_threads(2)
        model = GaussianMixture(1, n_threads=1, random_state=seed, **params)
        with thread_limit(2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with pytest.raises(error):
                    model.fit(X)
            assert current_threads() == 2
        assert current_threads() == max_threads()
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(original)


# --------------------------------------------------------------------------
# pickle and the CLI's JSON


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_pickle_round_trip(rng, seed, covariance_type):
    X = np.vstack([blobs(rng), np.repeat(blobs(rng)[:1], 20, axis=0)]).astype(np.float32)
    model = fit_quietly(
        GaussianMixture(4, covariance_type=covariance_type, reg_covar=0.0, random_state=seed), X
    )
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.get_params() == model.get_params()
    assert_identical(loaded, model)
    assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert_array_equal(loaded.sample(50)[0], model.sample(50)[0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_cli_json_output_loads_to_the_same_model(rng, seed, covariance_type, tmp_path, capsys):
    X = blobs(rng)
    data = tmp_path / "data.csv"
    data.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    output = tmp_path / "model.json"
    status = main(["fit", str(data), "-k", "3", "--covariance-type", covariance_type,
                   "--random-state", str(seed), "-o", str(output)])
    assert status == 0, capsys.readouterr().err
    loaded = load_model(output)
    expected = fit_quietly(
        GaussianMixture(3, covariance_type=covariance_type, random_state=seed), X
    )
    assert_identical(loaded, expected)
    assert_array_equal(loaded.predict_proba(X), expected.predict_proba(X))
    new = blobs(rng, n_per_component=10)
    assert_array_equal(loaded.predict_proba(new), expected.predict_proba(new))
    assert_array_equal(loaded.score_samples(new), expected.score_samples(new))


# --------------------------------------------------------------------------
# fresh processes and the numba cache

SUBPROCESS_FIT = """
import json, sys, warnings
import numpy as np
import fastem
fits = {}
for i, X in enumerate(json.loads(sys.argv[1])):
    for covariance_type in ("full", "tied", "diag", "spherical"):
        model = fastem.GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0,
                                       random_state=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(np.array(X))
        fits[f"{i}-{covariance_type}"] = {
            name: np.asarray(getattr(model, name)).tobytes().hex()
            for name in ("weights_", "means_", "covariances_", "precisions_",
                         "precisions_cholesky_")
        }
print(json.dumps(fits))
"""


# Prepended to a script: writes the functions numba compiled in the process (module and
# qualified name; numba's own implementations of numpy functions included) as a JSON
# list to the file named by FASTEM_TEST_COMPILED when the process exits.
RECORD_COMPILES = """
import atexit, json, os
from numba.core import event
_compiled = set()

class _Recorder(event.Listener):
    def on_start(self, event):
        pass

    def on_end(self, event):
        function = event.data["dispatcher"].py_func
        _compiled.add(f"{function.__module__}.{function.__qualname__}")

def _write_compiled():
    with open(os.environ["FASTEM_TEST_COMPILED"], "w") as file:
        json.dump(sorted(_compiled), file)

event.register("numba:compile", _Recorder())
atexit.register(_write_compiled)
"""


def run_in_subprocess(script, env_changes, args=(), package_root=REPO, timeout=600,
                      record_compiles_to=None, with_stderr=False):
    """Run ``script`` in a fresh interpreter (no inherited NUMBA_* settings, the
    package importable from ``package_root``) and return its JSON output (and its
    stderr, ``with_stderr``). With ``record_compiles_to`` (a path), the functions numba
    compiled are written there (RECORD_COMPILES)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    env.update(env_changes)
    if record_compiles_to is not None:
        script = RECORD_COMPILES + script
        env["FASTEM_TEST_COMPILED"] = str(record_compiles_to)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(package_root), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=package_root,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if with_stderr:
        return json.loads(result.stdout), result.stderr
    return json.loads(result.stdout)


def fit_in_subprocess(X, env_changes, package_root=REPO, timeout=600,
                      record_compiles_to=None):
    datasets = json.dumps([x.tolist() for x in X])
    return run_in_subprocess(SUBPROCESS_FIT, env_changes, [datasets], package_root,
                             timeout, record_compiles_to)


def fits_here(datasets):
    """What SUBPROCESS_FIT computes, computed in this process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fits_here(datasets)


def _fits_here(datasets):
    return {
        f"{i}-{covariance_type}": fingerprint(
            GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0, random_state=5)
            .fit(X)
        )
        for i, X in enumerate(datasets)
        for covariance_type in COVARIANCE_TYPES
    }


def make_small_data():
    """Small data sets (120 x 3), fitted on the compiled serial path; the last has a
    constant feature, so that 'full', 'tied' and 'diag' fits (reg_covar=0) go through
    the singular-covariance fallback."""
    rng = np.random.default_rng(20240706)
    datasets = [blobs(rng, n_per_component=40) for _ in range(3)]
    constant_feature = blobs(rng, n_per_component=40)
    constant_feature[:, 1] = 0.5
    return [*datasets, constant_feature]


@pytest.fixture(scope="module")
def small_data():
    return make_small_data()


@background.fixture
def compiled_in_absent_cache_dir(directory):
    """A fresh process whose NUMBA_CACHE_DIR does not exist yet: numba creates it and
    compiles every kernel the fits need (the module's one compilation, ~25 s of CPU).
    Returns the fits, the cache directory and the functions numba compiled."""
    cache = directory / "not" / "yet" / "there"
    fits = fit_in_subprocess(make_small_data(), {"NUMBA_CACHE_DIR": str(cache)},
                             record_compiles_to=directory / "compiled.json")
    return fits, cache, json.loads((directory / "compiled.json").read_text())


def test_fresh_process_compiling_into_an_absent_cache_dir_fits(
    small_data, compiled_in_absent_cache_dir
):
    fits, cache, _ = compiled_in_absent_cache_dir
    assert any(cache.rglob("*.nbi")), "the kernels were compiled and cached there"
    # This process may have compiled its kernels or loaded them from a cache.
    assert fits == fits_here(small_data)


def test_process_that_compiled_and_process_that_loaded_the_kernels_fit_identically(
    small_data, compiled_in_absent_cache_dir
):
    compiled, cache, _ = compiled_in_absent_cache_dir
    loaded = fit_in_subprocess(small_data, {"NUMBA_CACHE_DIR": str(cache)})
    assert loaded == compiled


PARALLEL_FIT = """
import json, warnings
import numpy as np
import fastem
rng = np.random.default_rng(7)
centres = rng.normal(scale=5.0, size=(3, 3))
X = np.concatenate([centre + rng.normal(size=(20_000, 3)) for centre in centres])
model = fastem.GaussianMixture(3, covariance_type="diag", random_state=5, max_iter=10, tol=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model.fit(X)
print(json.dumps({name: np.asarray(getattr(model, name)).tobytes().hex()
                  for name in ("weights_", "means_", "covariances_")}))
"""


@background.fixture
def block_kernels_compiled_and_loaded(directory):
    """PARALLEL_FIT in a fresh process compiling into an empty cache, then in one
    loading from it; and the functions numba compiled in the first."""
    cache = {"NUMBA_CACHE_DIR": str(directory / "numba")}
    compiled = run_in_subprocess(PARALLEL_FIT, cache,
                                 record_compiles_to=directory / "compiled.json")
    return (compiled, run_in_subprocess(PARALLEL_FIT, cache),
            json.loads((directory / "compiled.json").read_text()))


def test_block_kernels_compiled_and_loaded_fit_identically(
    block_kernels_compiled_and_loaded
):
    """60,000 x 3 'diag' goes through the block kernels on a thread pool, not the
    compiled small-data loop that the small_data tests use. (With numba's parallel
    loops, which fastem used before, the process that compiled them ran a copy of
    the loop body optimised once and the one that loaded them one optimised twice:
    the fits differed in the last bits.)"""
    compiled, loaded, _ = block_kernels_compiled_and_loaded
    assert loaded == compiled


BAYESIAN_FITS = """
import json, warnings
import numpy as np
import fastem
X = fastem.load_faithful()
scores = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for covariance_type in ("full", "tied", "diag", "spherical"):
        model = fastem.BayesianGaussianMixture(n_components=3, random_state=0,
                                               covariance_type=covariance_type).fit(X)
        scores[covariance_type] = float(model.score(X))
print(json.dumps(scores))
"""


@background.fixture
def bayesian_fits_compiled(directory):
    """BAYESIAN_FITS (small data, the row kernels' statistics) in a fresh process with
    an empty cache: the functions numba compiled."""
    run_in_subprocess(BAYESIAN_FITS, {"NUMBA_CACHE_DIR": str(directory / "numba")},
                      record_compiles_to=directory / "compiled.json")
    return json.loads((directory / "compiled.json").read_text())


def test_fresh_processes_compile_no_numpy_function_of_numbas(
    compiled_in_absent_cache_dir, block_kernels_compiled_and_loaded,
    bayesian_fits_compiled
):
    """numba compiles each numpy function a kernel calls (np.empty, np.zeros,
    ``.sum()``, np.finfo, ...) as a function of its own, once per array type: they
    took 0.3-0.5 s of a first fit's compile and about 1 s of a covariance family's.
    numpy allocates in Python and the kernels sum in loops; this lists any that
    comes back, in the small-data loop (all four covariance types, the singular
    fallback included), in the block kernels ('diag', two threads) or in small
    BayesianGaussianMixture fits."""
    for *_, compiled in (compiled_in_absent_cache_dir,
                         block_kernels_compiled_and_loaded, [bayesian_fits_compiled]):
        assert any(name.startswith("fastem.kernels.") for name in compiled), compiled
        assert [name for name in compiled if name.startswith("numba.np.")] == []


def test_fresh_process_fits_identically_run_after_run(small_data, tmp_path):
    """Two fresh processes loading the same cache give the same bits."""
    first = fit_in_subprocess(small_data, {})
    assert fit_in_subprocess(small_data, {}) == first
    assert first == fits_here(small_data)


def test_unusable_numba_cache_dir_does_not_break_fitting(small_data, tmp_path):
    """NUMBA_CACHE_DIR read-only: a directory that cannot be written or created even by
    root (it lies under a regular file). numba falls back to the package's cache."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    caches = [blocker / "numba-cache"]
    if os.geteuid() != 0:  # root writes into a mode 0o555 directory anyway
        read_only = tmp_path / "read-only"
        read_only.mkdir()
        read_only.chmod(0o555)
        caches.append(read_only)
    expected = fits_here(small_data)
    for cache in caches:
        fits = fit_in_subprocess(small_data, {"NUMBA_CACHE_DIR": str(cache)})
        assert fits == expected


@background.fixture
def fits_in_read_only_installation(directory):
    """SUBPROCESS_FIT in a fresh process importing a copy of the package that has no
    usable numba cache location (in-tree, NUMBA_CACHE_DIR, user cache directory)."""
    package = directory / "site-packages"
    (package / "fastem").mkdir(parents=True)
    for source in (REPO / "fastem").rglob("*"):
        if "__pycache__" in source.parts or source.is_dir():
            continue
        target = package / source.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    for subpackage in ("fastem", "fastem/kernels"):  # in-tree caches unusable
        (package / subpackage / "__pycache__").write_text("")
    blocker = directory / "a-file"
    blocker.write_text("")
    env = {
        "NUMBA_CACHE_DIR": str(blocker / "numba"),
        "HOME": str(blocker / "home"),
        "XDG_CACHE_HOME": str(blocker / "cache"),
    }
    # the kernels imported before the fits, whose warning filters would hide the
    # KernelCacheWarning of that import
    script = "import fastem.kernels.estep, fastem.kernels.loop\n" + SUBPROCESS_FIT
    datasets = json.dumps([x.tolist() for x in make_small_data()])
    return run_in_subprocess(script, env, [datasets], package_root=package,
                             with_stderr=True)


def test_read_only_installation_without_any_cache_location_can_fit(
    small_data, fits_in_read_only_installation
):
    """It fits (the kernels compiled in the process), gives the same bits, and says
    why it is slow to start once: a KernelCacheWarning, not one per kernel module."""
    fits, stderr = fits_in_read_only_installation
    assert fits == fits_here(small_data)
    assert stderr.count("KernelCacheWarning") == 1, stderr[-3000:]
    assert "numba has no writable cache location for fastem's kernels" in stderr
    assert fastem.__file__.startswith(str(REPO))  # this process still uses the repository
