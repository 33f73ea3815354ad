"""fastem.kernels.cache: the cache decision and the guard against stale kernels."""

import json
import os
import subprocess
import sys
from pathlib import Path

import background  # tests/background.py

from fastem.kernels import cache as _kernels_cache
from fastem.kernels.cache import DIGEST_FILE, drop_stale_kernels, kernel_sources_digest

PACKAGE = Path(_kernels_cache.__file__).resolve().parent
# the directory that holds the fastem package under test (fastem/kernels/../..): on a
# fresh process's path first, so that it imports this tree, not an installed fastem
SOURCE_ROOT = PACKAGE.parents[1]


def cached_files(directory):
    """numba's cache files of two kernel modules, and (as in the in-tree cache
    directory, ``fastem/kernels/__pycache__``) the modules' bytecode beside them."""
    names = [
        "estep.dense_statistics-512.py311.nbi",
        "estep.dense_statistics-512.py311.1.nbc",
        "exp.exp64-263.py311.nbi",
    ]
    for name in names:
        (directory / name).write_bytes(b"cached")
    (directory / BYTECODE).write_bytes(b"not numba's")
    return names


BYTECODE = "estep.cpython-311.pyc"


def test_kernels_are_cached_when_a_location_is_writable():
    # The test run imports fastem from a writable checkout.
    assert _kernels_cache.CACHE is True


def test_digest_covers_every_kernel_module_and_nothing_else(tmp_path):
    assert {"estep.py", "exp.py", "cache.py"} <= {p.name for p in PACKAGE.glob("*.py")}
    for source in PACKAGE.glob("*.py"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / BYTECODE).write_bytes(b"1")
    (tmp_path / "notes.txt").write_text("x = 1\n")
    digest = kernel_sources_digest(tmp_path)
    assert digest == kernel_sources_digest(PACKAGE)
    (tmp_path / "__pycache__" / BYTECODE).write_bytes(b"2")
    (tmp_path / "notes.txt").write_text("x = 2\n")
    assert kernel_sources_digest(tmp_path) == digest
    exp = tmp_path / "exp.py"
    exp.write_bytes(exp.read_bytes() + b"\n# an edit\n")
    edited = kernel_sources_digest(tmp_path)
    assert edited != digest
    (tmp_path / "new_kernels.py").write_text("x = 1\n")  # a new module counts too
    assert kernel_sources_digest(tmp_path) not in (digest, edited)


def test_stale_kernels_are_deleted_and_the_digest_recorded(tmp_path):
    names = cached_files(tmp_path)
    (tmp_path / DIGEST_FILE).write_text("digest of other sources\n")
    assert drop_stale_kernels(tmp_path, "new digest") is True
    assert not any((tmp_path / name).exists() for name in names)
    assert (tmp_path / BYTECODE).read_bytes() == b"not numba's"
    assert (tmp_path / DIGEST_FILE).read_text().strip() == "new digest"


def test_a_cache_without_a_digest_counts_as_stale(tmp_path):
    names = cached_files(tmp_path)
    assert drop_stale_kernels(tmp_path, "digest") is True
    assert not any((tmp_path / name).exists() for name in names)


def test_kernels_compiled_from_the_same_sources_are_kept(tmp_path):
    names = cached_files(tmp_path)
    (tmp_path / DIGEST_FILE).write_text("same digest\n")
    assert drop_stale_kernels(tmp_path, "same digest") is False
    assert all((tmp_path / name).exists() for name in names)


def test_an_unusable_directory_is_left_alone(tmp_path):
    missing = tmp_path / "absent"
    assert drop_stale_kernels(missing, "digest") is False
    assert not missing.exists()


def test_the_package_cache_directory_records_the_current_sources():
    directory = _kernels_cache._cache_directory()
    assert directory is not None
    recorded = (Path(directory) / DIGEST_FILE).read_text().strip()
    assert recorded == kernel_sources_digest()


# --------------------------------------------------------------------------
# compilation flags: one compiled version of every kernel, whoever calls it first


def kernel_dispatchers():
    import importlib

    from numba.core.registry import CPUDispatcher

    for source in sorted(PACKAGE.glob("*.py")):
        if source.stem == "__init__":
            module = importlib.import_module("fastem.kernels")
        else:
            module = importlib.import_module(f"fastem.kernels.{source.stem}")
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__:
                yield f"{source.stem}.{name}", value


def test_every_called_kernel_states_its_floating_point_flags():
    # numba compiles a jitted callee that leaves fastmath / error_model unset with
    # its caller's flags and keeps that as its only compilation for those argument
    # types; the first caller would decide whether the M-step reassociates.
    # Functions inlined at numba level are lowered inside their caller by design.
    checked = []
    for name, dispatcher in kernel_dispatchers():
        options = dispatcher.targetoptions
        if options.get("inline", "never") == "always":
            continue
        checked.append(name)
        assert "fastmath" in options, f"{name} does not state fastmath"
        assert "error_model" in options, f"{name} does not state error_model"
    assert {"mstep.dense_mstep_into", "exp.exp64",
            "linalg.cholesky_lower", "loop.dense_em_into"} <= set(checked)


ORDER_OF_FIRST_CALLS = """
import json, sys
import numpy as np
from numba import njit
import fastem.kernels
from fastem.kernels.estep import FASTMATH
from fastem.kernels.exp import exp_inplace64
from fastem.kernels.mstep import dense_mstep, dense_mstep_into

@njit(fastmath=FASTMATH, error_model="numpy")
def fastmath_caller(nk, sum_x, scatter, centres, values):
    exp_inplace64(values)
    k, d = sum_x.shape
    dense_mstep_into(nk, sum_x, scatter, centres, 0.0, np.empty(k), np.empty((k, d)),
                     np.empty((1, d, d)), np.empty((1, d, d)), np.empty(k, np.int64),
                     np.empty(k, np.bool_), np.empty((d, d)))

rng = np.random.default_rng(7)
n_components, n_features = 3, 7
resp = rng.dirichlet(np.ones(n_components), size=200)
X = rng.normal(size=(200, n_features)) * rng.uniform(0.1, 10.0, size=n_features)
centres = resp.T @ X / resp.sum(axis=0)[:, None] + 0.01
nk = resp.sum(axis=0)
sum_x = np.stack([resp[:, k] @ (X - centres[k]) for k in range(n_components)])
scatter = sum(
    (resp[:, k, None] * (X - centres[k])).T @ (X - centres[k]) for k in range(n_components)
)[None]
values = rng.uniform(-700.0, 700.0, size=1000)

def from_python():
    out = values.copy()
    exp_inplace64(out)
    return [out, *dense_mstep(nk, sum_x, scatter, centres, 0.0)]

if sys.argv[1] == "fastmath-caller-first":
    fastmath_caller(nk, sum_x, scatter, centres, values.copy())
results = from_python()
print(json.dumps({"package": fastem.kernels.__path__[0],
                  "results": [np.asarray(r).tobytes().hex() for r in results]}))
"""


@background.fixture
def first_calls_in_either_order(directory):
    """ORDER_OF_FIRST_CALLS in two fresh processes, each with an empty numba cache."""
    outputs = {}
    for order in ("python-first", "fastmath-caller-first"):
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("NUMBA_")}
        env["NUMBA_CACHE_DIR"] = str(directory / order)
        # (PACKAGE.parent, fastem/ itself, put no fastem on the path: the process
        # imported whichever fastem was installed, not necessarily this tree)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        result = subprocess.run(
            [sys.executable, "-c", ORDER_OF_FIRST_CALLS, order], env=env,
            capture_output=True, text=True, timeout=600, cwd=SOURCE_ROOT,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        output = json.loads(result.stdout)
        assert Path(output["package"]).resolve() == PACKAGE, output["package"]
        outputs[order] = output["results"]
    return outputs


def test_kernels_compute_the_same_bits_whichever_caller_compiled_them_first(
    first_calls_in_either_order
):
    """A fresh process (empty numba cache) whose first call of the M-step and exp
    comes from a fastmath kernel, against one whose first call comes from Python."""
    outputs = first_calls_in_either_order
    names = ["exp", "weights", "means", "covariances", "precisions_chol", "status"]
    for name, python_first, caller_first in zip(
        names, outputs["python-first"], outputs["fastmath-caller-first"]
    ):
        assert caller_first == python_first, name
