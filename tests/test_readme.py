"""The README's Python examples run as written and print what their comments say.

Each ```python block of README.md is executed in a fresh namespace, in a temporary
directory (the examples write files). A line ``print(expression)  # comment`` whose
comment shows a value (its text up to the first ``:`` or ``(`` holds a number:
``# 2314.61: the best BIC``, ``# [100 0 100 ...]``, ``# 3 tied (mclust: EEE, 3)``)
is checked: the printed text must have that text's words, and its numbers to the
digits the comment shows (2314.61 stands for anything that rounds to it); the
comment may go on in words after the printed text ends (``# 3 components in use``),
not in numbers. Comments that describe rather than show a value (``# mixing
proportions, shape (2,)``) are left alone; the tests check those claims on the
namespace.

The Dask example names a scheduler at ``tcp://scheduler:8786`` and two files; the
test starts a ``distributed.LocalCluster`` of one worker process, writes
``embeddings.zarr`` and ``big.npy``, and runs the block with the cluster's address
in place of the scheduler's.
"""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PRINT_LINE = re.compile(r"^print\((?P<args>.*)\)\s+#\s*(?P<comment>.*)$")
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def block_with(fragment):
    """The README's one Python block containing ``fragment``."""
    blocks = [block for block in python_blocks() if fragment in block]
    assert len(blocks) == 1, f"{len(blocks)} README blocks contain {fragment!r}"
    return blocks[0]


def tokens(text):
    return [token for token in re.split(r"[\s\[\],]+", text) if token]


def shown_value(comment):
    """The value part of a comment, or None if the comment describes, not shows."""
    value = re.split(r"[:(]", comment, maxsplit=1)[0].strip()
    words = tokens(value)
    if not words or not any(NUMBER.match(word) for word in words):
        return None
    return value


def check_printed(printed, comment):
    """``printed`` (what print wrote) shows what ``comment`` says."""
    value = shown_value(comment)
    expected, got = tokens(value), tokens(printed)
    # the comment may go on in words ("3 components in use"), not in values
    assert len(got) <= len(expected), (printed, comment)
    rest = expected[len(got):]
    assert not any(NUMBER.match(word) for word in rest), (printed, comment)
    for want, have in zip(expected[:len(got)], got, strict=True):
        if NUMBER.match(want):
            decimals = len(want.split(".")[1]) if "." in want else 0
            assert round(float(have), decimals) == float(want), (printed, comment)
        else:
            assert have == want, (printed, comment)


def checked_source(block):
    """The block with each value-showing print line turned into a check."""
    lines = []
    for line in block.splitlines():
        match = PRINT_LINE.match(line)
        if match and shown_value(match["comment"]) is not None:
            line = f"_check({match['args']}, comment={match['comment']!r})"
        lines.append(line)
    return "\n".join(lines)


def run_block(block, replacements=()):
    """Execute a README block with its print lines checked; returns its namespace
    and the number of print lines checked."""
    for old, new in replacements:
        assert old in block, old
        block = block.replace(old, new)
    checked = []

    def _check(*values, comment):
        check_printed(" ".join(str(value) for value in values), comment)
        checked.append(comment)

    namespace = {"_check": _check, "__name__": "readme_example"}
    exec(compile(checked_source(block), "<README.md example>", "exec"), namespace)
    return namespace, len(checked)


def test_every_python_block_is_run_here():
    """A new example in the README gets a test here (the four below)."""
    fragments = ("fastem.save_model", "BayesianGaussianMixture(n_components=10",
                 "GaussianMixtureIC(random_state=0)", "da.from_zarr")
    assert len(python_blocks()) == len(fragments)
    for fragment in fragments:
        block_with(fragment)


def test_check_printed_fails_on_a_different_value():
    """The checks can fail: a digit, a word or a length off."""
    check_printed("2314.6127", "2314.61: the best BIC")
    check_printed("3 tied", "3 tied (mclust: EEE, 3)")
    check_printed("[0.335 0.    0.   ]", "[0.335 0. 0.]")
    check_printed("3", "3 components in use")
    for printed, comment in (("2314.6227", "2314.61: the best"),
                             ("3 full", "3 tied (mclust: EEE, 3)"),
                             ("[0.335 0.   ]", "[0.335 0. 0.]"),
                             ("3 4", "3 components in use"),
                             ("[100 0]", "[100 0 100]")):
        with pytest.raises(AssertionError):
            check_printed(printed, comment)
    assert shown_value("mixing proportions, shape (2,)") is None


def test_quick_start(tmp_path, monkeypatch):
    import fastem

    monkeypatch.chdir(tmp_path)
    namespace, _ = run_block(block_with("fastem.save_model"))
    model, X, same = namespace["model"], namespace["X"], namespace["same"]
    assert X.shape == (272, 2)
    assert model.weights_.shape == (2,) and model.means_.shape == (2, 2)
    assert namespace["labels"].shape == (272,)
    np.testing.assert_allclose(namespace["resp"].sum(axis=1), 1.0, rtol=1e-12)
    assert isinstance(same, fastem.GaussianMixture)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(same, name), getattr(model, name))
    assert (tmp_path / "faithful.json").exists()


def test_bayesian_example():
    block = block_with("BayesianGaussianMixture(n_components=10")
    _, n_checked = run_block(block)
    assert n_checked == 3


def test_model_selection_example():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace, n_checked = run_block(block_with("GaussianMixtureIC(random_state=0)"))
    plt.close("all")
    assert n_checked == 2
    search = namespace["search"]
    assert len(search.results_.to_frame()) == 36
    np.testing.assert_array_equal(namespace["labels"],
                                  search.best_estimator_.predict(namespace["X"]))


def test_dask_example(tmp_path, monkeypatch):
    """The Dask block on a LocalCluster of one worker process, with the files it
    reads written here (6,000 rows: above the small-data limit for 16 components,
    so the fit runs on the cluster)."""
    zarr = pytest.importorskip("zarr")
    from distributed import LocalCluster

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(6000, 2)) + 8.0 * rng.integers(0, 4, size=(6000, 1))
    zarr.save_array(str(tmp_path / "embeddings.zarr"), data)
    np.save(tmp_path / "big.npy", data)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        namespace, _ = run_block(
            block_with("da.from_zarr"),
            replacements=[('Client("tcp://scheduler:8786")',
                           f'Client("{cluster.scheduler_address}")')])
        try:
            import dask.array as da

            labels = namespace["labels"]
            assert isinstance(labels, da.Array)
            np.testing.assert_array_equal(labels.compute(),
                                          namespace["model"].predict(data))
            assert namespace["streamed"].means_.shape == (16, 2)
        finally:
            namespace["client"].close()
