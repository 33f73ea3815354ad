"""``fastem fit big.npy``: a .npy too large to read into memory is memory-mapped and
fitted block by block (the same summary as the in-memory fit from the same start),
with a progress line on stderr for fits longer than a second."""

import re

import numpy as np
import pytest

from fastem import cli
from fastem.cli import main
from fastem.em import sources as _sources
from fastem.mixture import GaussianMixture


@pytest.fixture
def big_npy(tmp_path):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(8000, 3)) + rng.integers(0, 3, size=(8000, 1)) * 4.0
    path = tmp_path / "big.npy"
    np.save(path, X)
    return path


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def without_time(summary):
    return re.sub(r"fit time .*", "", summary)


def test_a_large_npy_is_memory_mapped_and_gives_the_same_summary(
    capsys, monkeypatch, big_npy
):
    options = ["fit", big_npy, "-k", "3", "--init-sample-size", "3000", "--quiet"]
    status, in_memory, err = run(capsys, *options)
    assert status == 0, err
    fitted = []
    fit = GaussianMixture.fit

    def recording_fit(self, X, *args, **kwargs):
        fitted.append(type(X))
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "fit", recording_fit)
    monkeypatch.setattr(cli, "NPY_IN_MEMORY_BYTES", 1024)
    monkeypatch.setattr(_sources, "CHUNK_BYTES", 4096 * 3 * 8)
    status, streamed, err = run(capsys, *options)
    assert status == 0, err
    assert fitted == [np.memmap]
    assert "init_sample_size=3000" in streamed
    assert without_time(streamed) == without_time(in_memory)


def test_nan_in_a_memory_mapped_npy_names_the_row(capsys, monkeypatch, tmp_path):
    X = np.random.default_rng(0).normal(size=(9000, 2))
    X[7000, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    monkeypatch.setattr(cli, "NPY_IN_MEMORY_BYTES", 1024)
    status, out, err = run(capsys, "fit", tmp_path / "nan.npy", "-k", "4")
    assert status == 2 and out == ""
    assert re.fullmatch(r"fastem: error: Input X contains NaN at row 7000 \(block \d+\), "
                        r"column 1 \(1 non-finite value\(s\) in all\)\. .*\n", err), err


def test_progress_line_on_a_terminal(capsys, monkeypatch, big_npy):
    monkeypatch.setattr(cli._FitProgress, "DELAY", 0.0)
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    status, out, err = run(capsys, "fit", big_npy, "-k", "3", "--max-iter", "4",
                           "--tol", "0")
    assert status == 0
    lines = err.replace("\x1b[K", "").split("\r")
    updates = [line for line in lines if line.startswith("fastem: iteration")]
    assert len(updates) == 4, err
    assert re.match(r"fastem: iteration 4, log-likelihood -?\d+\.\d+ per sample, "
                    r"change \S+, \S+ rows/s", updates[-1]), updates
    # --quiet, or stderr not a terminal: no progress
    status, _, err = run(capsys, "fit", big_npy, "-k", "3", "--max-iter", "4",
                         "--tol", "0", "--quiet")
    assert status == 0
    assert "iteration" not in err
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: False, raising=False)
    status, _, err = run(capsys, "fit", big_npy, "-k", "3", "--max-iter", "4",
                         "--tol", "0")
    assert status == 0
    assert "iteration" not in err
