"""The ``fastem`` command: summaries on good input, one-line errors on bad input."""

import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import background  # tests/background.py
import numpy as np
import pytest

import fastem._io
from fastem import GaussianMixture, load_faithful, load_model
from fastem._warmup import kernels_need_compiling
from fastem.cli import main


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture
def two_blobs(rng):
    """60 samples x 3 features in two well separated groups."""
    return np.vstack(
        [rng.normal(0.0, 1.0, size=(30, 3)), rng.normal(8.0, 1.0, size=(30, 3))]
    )


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def summary_value(out, label):
    match = re.search(rf"^{label}\s+(.*)$", out, flags=re.MULTILINE)
    assert match, f"no {label!r} line in:\n{out}"
    return match.group(1)


# The summary prints numbers with 6 significant digits (``%.6g``): each is within
# half a unit of its 6th digit of the value, 5e-6 relative.
PRINTED_RTOL = 5e-6


def printed_table(out, title):
    """The numbers of the summary table under the line ``title``.

    Returns
    -------
    ndarray of shape (n_rows, n_columns)
        One row per printed row (its label dropped), up to the next blank line.
    """
    lines = out.splitlines()
    assert title in lines, f"no {title!r} table in:\n{out}"
    rows = []
    for line in lines[lines.index(title) + 2:]:  # the title, then the column labels
        if not line.strip():
            break
        rows.append([float(cell) for cell in line.split()[1:]])
    return np.array(rows)


def assert_summary_shows(out, model):
    """The printed weights, means and covariances are the model's."""
    def assert_printed(title, expected):
        np.testing.assert_allclose(printed_table(out, title), expected,
                                   rtol=PRINTED_RTOL, atol=0, err_msg=title)

    assert_printed("weights", [model.weights_])
    assert_printed("means", model.means_.T)
    covariances = model.covariances_
    if model.covariance_type == "full":
        for k in range(model.n_components):
            assert_printed(f"covariance, component {k + 1}", covariances[k])
    elif model.covariance_type == "tied":
        assert_printed("covariance, shared by all components", covariances)
    elif model.covariance_type == "diag":
        assert_printed("variances", covariances.T)
    else:
        assert_printed("variance (same for every feature)", [covariances])


# ----------------------------------------------------------------------------
# good input


def test_fit_bundled_data(capsys):
    status, out, err = run(capsys, "fit")
    assert status == 0, err
    for field in (
        "Old Faithful",
        "272 samples x 2 features",
        "covariance_type='full'",
        "converged",
        "fit time",
        "log-likelihood",
        "BIC",
        "weights",
        "means",
        "covariance, component 1",
        "covariance, component 2",
        "eruptions",
        "waiting",
    ):
        assert field in out
    assert "component 3" not in out
    assert "n_iter=" in summary_value(out, "converged")

    # the numbers are those of the same fit done in Python
    X = load_faithful()
    model = GaussianMixture(n_components=2, random_state=0).fit(X)
    total, per_sample = re.match(
        r"(\S+) total, (\S+) per sample", summary_value(out, "log-likelihood")
    ).groups()
    assert float(total) == pytest.approx(model.score(X) * len(X), abs=1e-6)
    assert float(per_sample) == pytest.approx(model.score(X), abs=1e-6)
    assert float(summary_value(out, "BIC")) == pytest.approx(model.bic(X), abs=1e-6)
    assert float(summary_value(out, "AIC")) == pytest.approx(model.aic(X), abs=1e-6)
    assert_summary_shows(out, model)
    # the long-eruption component waits about 80 minutes
    assert re.search(r"waiting\s+(54\.4\d*\s+79\.9|79\.9\d*\s+54\.4)", out)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_fit_csv_without_header(capsys, tmp_path, two_blobs, covariance_type):
    path = tmp_path / "data.csv"
    np.savetxt(path, two_blobs, delimiter=",")
    status, out, err = run(
        capsys, "fit", path, "-k", 2, "--covariance-type", covariance_type,
        "--n-init", 2,
    )  # fmt: skip
    assert status == 0, err
    assert "60 samples x 3 features" in out
    assert f"covariance_type='{covariance_type}'" in out
    assert "n_init=2" in out
    assert re.search(r"^  x3\s", out, flags=re.MULTILINE)  # default feature names
    weights = summary_value(out, "  weight").split()
    assert [float(w) for w in weights] == pytest.approx([0.5, 0.5], abs=1e-6)
    model = GaussianMixture(
        n_components=2, covariance_type=covariance_type, n_init=2, random_state=0
    ).fit(two_blobs)  # the CSV holds two_blobs exactly (np.savetxt's %.18e)
    assert_summary_shows(out, model)


def test_fit_csv_with_header(capsys, tmp_path, two_blobs):
    path = tmp_path / "data.csv"
    np.savetxt(path, two_blobs, delimiter=",", header="alpha,beta,gamma", comments="")
    status, out, err = run(capsys, "fit", path, "-k", 2)
    assert status == 0, err
    assert "60 samples x 3 features" in out  # the header is not a sample
    for name in ("alpha", "beta", "gamma"):
        assert re.search(rf"^  {name}\s", out, flags=re.MULTILINE)


def test_fit_options_reach_the_model(capsys, tmp_path, two_blobs):
    """Each option of `fastem fit` is the fitted model's parameter of that name (read
    back from the file -o writes), none left at its default."""
    path = tmp_path / "data.csv"
    np.savetxt(path, two_blobs, delimiter=",")
    output = tmp_path / "model.json"
    status, out, err = run(
        capsys, "fit", path, "-k", 3, "--covariance-type", "diag", "--n-init", 2,
        "--init-params", "random_from_data", "--max-iter", 40, "--tol", "1e-5",
        "--reg-covar", "1e-4", "--random-state", 7, "--on-singular", "raise",
        "--n-threads", 1, "--init-sample-size", 50, "--quiet", "--output", output,
    )  # fmt: skip
    assert status == 0, err
    expected = {
        "n_components": 3, "covariance_type": "diag", "n_init": 2,
        "init_params": "random_from_data", "max_iter": 40, "tol": 1e-5,
        "reg_covar": 1e-4, "random_state": 7, "on_singular": "raise",
        "n_threads": 1, "init_sample_size": 50,
    }  # fmt: skip
    params = load_model(output).get_params()
    assert {name: params[name] for name in expected} == expected
    assert summary_value(out, "initialisation") == (
        "init_params='random_from_data', n_init=2, random_state=7, "
        "init_sample_size=50"
    )
    assert summary_value(out, "converged").endswith("max_iter=40, tol=1e-05)")


def test_an_interrupt_exits_130_with_one_line(capsys, monkeypatch):
    """Ctrl-C during the fit: status 130 (128 + SIGINT, as a shell reports), one line
    on stderr, nothing on stdout, no traceback."""
    def interrupted_fit(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(GaussianMixture, "fit", interrupted_fit)
    assert run(capsys, "fit") == (130, "", "fastem: interrupted\n")


def test_numeric_first_row_is_data_not_header(capsys, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2\n\n4,2\n1,3\n4,3.5\n")  # blank lines are skipped
    status, out, err = run(capsys, "fit", path, "-k", 1)
    assert status == 0, err
    assert "4 samples x 2 features" in out


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("1.5,2\n3,4e0\n5,6\n", None),  # plain: the numpy.loadtxt fast path
        ("\ufeffa,b\n1.5,2\n3,4e0\n5,6\n", ["a", "b"]),  # byte-order mark
        ('\n "a", b\n\n 1.5 , 2\n"3",4e0\n,\n5,  6\n', ["a", "b"]),  # quotes, blanks
    ],
)
def test_load_data_accepts_ordinary_csv_variants(tmp_path, text, names):
    from fastem.cli import _read_csv_checked, load_data

    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    X, feature_names = load_data(str(path))
    np.testing.assert_array_equal(X, [[1.5, 2.0], [3.0, 4.0], [5.0, 6.0]])
    assert X.dtype == np.float64 and X.flags.c_contiguous
    assert feature_names == names
    X_checked, names_checked = _read_csv_checked(str(path), ",")
    np.testing.assert_array_equal(X_checked, X)
    assert names_checked == names


def test_fit_other_delimiter(capsys, tmp_path, two_blobs):
    path = tmp_path / "data.tsv"
    np.savetxt(path, two_blobs, delimiter="\t")
    status, out, err = run(capsys, "fit", path, "--delimiter", "\t")
    assert status == 0, err
    assert "60 samples x 3 features" in out


def test_fit_npy(capsys, tmp_path, two_blobs):
    path = tmp_path / "data.npy"
    np.save(path, two_blobs.astype(np.float32))
    status, out, err = run(capsys, "fit", path, "-k", 2, "--covariance-type", "diag")
    assert status == 0, err
    assert "60 samples x 3 features" in out
    assert "variances" in out


def test_fit_one_dimensional_npy_is_one_feature(capsys, tmp_path, two_blobs):
    path = tmp_path / "data.npy"
    np.save(path, two_blobs[:, 0])
    status, out, err = run(capsys, "fit", path)
    assert status == 0, err
    assert "60 samples x 1 features" in out


def test_output_json_loads_to_the_same_model(capsys, tmp_path, monkeypatch):
    saved = []
    original_save_model = fastem._io.save_model

    def recording_save_model(model, path):
        saved.append(model)
        original_save_model(model, path)

    monkeypatch.setattr(fastem._io, "save_model", recording_save_model)
    output = tmp_path / "model.json"
    status, out, err = run(
        capsys, "fit", "-k", 3, "--covariance-type", "tied", "--output", output
    )
    assert status == 0, err
    assert f"model written to {output}" in out
    (model,) = saved
    loaded = load_model(output)
    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == model.get_params()
    # the bundled data's column names, kept as a fit on a DataFrame keeps them
    assert list(loaded.feature_names_in_) == ["eruptions", "waiting"]
    del model.feature_names_in_, loaded.feature_names_in_  # predict on an array
    X = load_faithful()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.means_, model.means_)


def test_non_converged_fit_warns_on_one_line(capsys):
    status, out, err = run(capsys, "fit", "--max-iter", 1, "--tol", 0)
    assert status == 0, err
    assert summary_value(out, "converged").startswith("NO")
    lines = err.splitlines()
    assert lines and all(line.startswith("fastem: warning: ") for line in lines)


def test_singular_data_is_recovered_and_reported(capsys, tmp_path):
    path = tmp_path / "notebook.csv"
    path.write_text("1,2\n4,2\n1,3\n4,3\n")
    status, out, err = run(capsys, "fit", path, "--reg-covar", 0, "--n-init", 10)
    assert status == 0, err
    n_events = int(summary_value(out, "singular events").split()[0])
    assert n_events > 0
    # the repairs are also a warning, on one line of stderr
    (warning,) = err.splitlines()
    assert warning.startswith(
        f"fastem: warning: fastem repaired {n_events} singular or empty component(s)"
    ), err

    status, out, err = run(
        capsys, "fit", path, "--reg-covar", 0, "--on-singular", "raise"
    )
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("fastem: error: ")
    assert "reg_covar" in err


def test_help_and_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.strip() == f"fastem {fastem.__version__}"
    status, out, _ = run(capsys, "fit", "--help")
    assert status == 0
    assert "--covariance-type" in out


# ----------------------------------------------------------------------------
# bad input: one line on stderr, exit status 2


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_text(content)
    return path


BAD_FILES = {
    "missing file": (None, [], "absent.csv: No such file or directory"),
    "non-numeric cell": (
        "a,b\n1,2\n3,x\n",
        [],
        "line 3, column 2 has non-numeric value 'x'",
    ),
    "empty cell": ("1,2\n3,\n5,6\n", [], "line 2, column 2 has an empty cell"),
    "NaN": ("1,2\n3,nan\n5,6\n", [], "line 2, column 2 is 'nan'"),
    "infinity": ("1,2\n3,4\n-inf,6\n", [], "line 3, column 1 is '-inf'"),
    "overflow": (
        "1,2\n3,-1e400\n5,6\n",
        [],
        "line 2, column 2 is '-1e400', beyond the largest float64 (1.79769e+308)",
    ),
    "ragged row": ("1,2\n3\n5,6\n", [], "line 2 has 1 field, expected 2"),
    "fewer rows than components": (
        "1,2\n3,4\n",
        ["-k", "3"],
        "has 2 rows, fewer than the 3 components",
    ),
    "empty file": ("", [], "has no data rows"),
    "header only": ("a,b\n", [], "has no data rows"),
    "binary file": (b"\x89PNG\r\n\x1a\n\xff\xfe", [], "not a UTF-8 text file"),
    "npy with NaN": (
        np.array([[1.0, np.nan], [2.0, 3.0]]),
        [],
        "element [0, 1] is nan",
    ),
    "npy of strings": (np.array(["a", "b"]), [], "a numeric array is needed"),
    "npy of 3 dimensions": (np.zeros((4, 2, 2)), [], "shape (4, 2, 2)"),
    "empty npy": (b"", [], "data.npy is empty (0 bytes), not a .npy array"),
    "CSV named .npy": (b"1,2\n3,4\n", [], "data.npy is not a .npy file"),
    "truncated npy": (None, [], "data.npy is not a readable .npy array"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file(capsys, tmp_path, case):
    content, options, message = BAD_FILES[case]
    if case == "truncated npy":
        path = write(tmp_path, "data.npy", np.arange(40.0).reshape(20, 2))
        path.write_bytes(path.read_bytes()[:-100])
    elif content is None:
        path = tmp_path / "absent.csv"
    elif isinstance(content, bytes):
        path = tmp_path / ("data.npy" if "npy" in case else "data.csv")
        path.write_bytes(content)
    else:
        suffix = ".npy" if isinstance(content, np.ndarray) else ".csv"
        path = write(tmp_path, "data" + suffix, content)
    status, out, err = run(capsys, "fit", path, *options)
    assert status == 2
    assert out == ""
    assert err.startswith("fastem: error: ")
    assert err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


BAD_OPTIONS = {
    "no command": ([], "required: COMMAND"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "zero components": (["fit", "-k", "0"], "must be at least 1, got 0"),
    "non-integer components": (["fit", "-k", "two"], "'two' is not an integer"),
    "bad covariance type": (
        ["fit", "--covariance-type", "banana"],
        "invalid choice: 'banana'",
    ),
    "zero restarts": (["fit", "--n-init", "0"], "--n-init: must be at least 1"),
    "zero iterations": (["fit", "--max-iter", "0"], "--max-iter: must be at least 1"),
    "negative tol": (["fit", "--tol", "-1"], "--tol: must be a finite number >= 0"),
    "nan reg_covar": (["fit", "--reg-covar", "nan"], "--reg-covar: must be a finite"),
    "negative seed": (["fit", "--random-state", "-3"], "--random-state: must be"),
    "unknown option": (["fit", "--bogus"], "unrecognized arguments: --bogus"),
    "output directory missing": (
        ["fit", "--output", "no/such/dir/model.json"],
        "cannot write --output",
    ),
    "output is a directory": (["fit", "--output", "."],
                              "cannot write --output .: it is a directory"),
    "output under a file": (["fit", "--output", "a-file/model.json"],
                            "a-file is not a directory"),
    "two-character delimiter": (["fit", "--delimiter", ";;"],
                                "--delimiter: must be one character, got ';;'"),
    "predict with an empty delimiter": (
        ["predict", "m.json", "d.csv", "--delimiter", ""],
        "--delimiter: must be one character, got ''",
    ),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_option(capsys, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    argv, message = BAD_OPTIONS[case]
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.startswith("fastem: error: ")
    assert err.count("\n") == 1, err
    assert message in err


def test_unwritable_output_is_refused_before_fitting(capsys, tmp_path, monkeypatch):
    """An --output that cannot be written is the error, found before any fitting
    (not after the work it was to hold)."""
    fitted = []
    fit = GaussianMixture.fit

    def recording_fit(self, X, *args, **kwargs):
        fitted.append(X.shape)
        return fit(self, X, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "fit", recording_fit)
    status, out, err = run(capsys, "fit", "-o", tmp_path / "absent" / "model.json")
    assert (status, out) == (2, "")
    assert err.startswith("fastem: error: cannot write --output ")
    assert fitted == []


def test_csv_from_a_pipe_is_read_once(capsys, tmp_path):
    """A CSV file that can be read once (a named pipe, as /dev/stdin or bash's
    <(zcat ...)): the header check, numpy's reader and the careful reader each
    opened it, and the second open waited for a writer that never came. In a
    process of its own, with a time limit, so that a regression fails, not hangs."""
    fifo = tmp_path / "data.csv"
    os.mkfifo(fifo)
    X = load_faithful()
    text = "eruptions,waiting\n" + "".join(f"{a!r},{b!r}\n" for a, b in X.tolist())
    writer = threading.Thread(target=fifo.write_text, args=(text,), daemon=True)
    writer.start()
    env = {**os.environ, "PYTHONPATH": str(Path(fastem._io.__file__).parents[1])}
    result = subprocess.run([sys.executable, "-m", "fastem", "fit", str(fifo)],
                            capture_output=True, text=True, timeout=120, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr
    status_bundled, out_bundled, _ = run(capsys, "fit")
    assert status_bundled == 0
    assert "272 samples x 2 features" in result.stdout
    assert (result.stdout.split("log-likelihood")[1]
            == out_bundled.split("log-likelihood")[1])


def test_broken_pipe_ends_quietly(tmp_path):
    """`fastem predict ... | head -1`: the reader goes away; no error line, no
    "Exception ignored" at exit, the status a shell gives a tool a closed pipe stops."""
    model_path = tmp_path / "model.json"
    fastem._io.save_model(GaussianMixture(2, random_state=0).fit(load_faithful()),
                          model_path)
    data = write(tmp_path, "data.npy", np.tile(load_faithful(), (200, 1)))
    env = {**os.environ, "PYTHONPATH": str(Path(fastem._io.__file__).parents[1])}
    command = [sys.executable, "-m", "fastem", "predict", str(model_path), str(data),
               "--proba"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    process.stdout.readline()
    process.stdout.close()  # as head does after its line
    _, err = process.communicate(timeout=600)
    assert process.returncode == 141, err
    assert err.decode() == ""


def test_damaged_model_files_are_one_line_errors(capsys, tmp_path):
    data = write(tmp_path, "data.npy", load_faithful())
    model_path = tmp_path / "model.json"
    fastem._io.save_model(GaussianMixture(2, random_state=0).fit(load_faithful()),
                          model_path)
    text = model_path.read_text()
    cases = {
        "covariance_type": (text.replace('"covariance_type": "full"',
                                         '"covariance_type": "wide"'),
                            "is a damaged fastem model file: covariance_type must be"),
        "NaN weights": (
            re.sub(r'("weights_": \{[^}]*"data": \[)[^,\]]*', r"\1NaN", text),
            "weights_ holds NaN or infinite values",
        ),
        "params": (text.replace('"params": {', '"params": 3, "unused": {'),
                   "is a damaged fastem model file: no parameters"),
    }
    for name, (content, message) in cases.items():
        model_path.write_text(content)
        status, _, err = run(capsys, "predict", model_path, data)
        assert status == 2, name
        assert err.startswith("fastem: error: ") and err.count("\n") == 1, (name, err)
        assert message in err, (name, err)
    # the arguments swapped: the data where the model should be
    status, _, err = run(capsys, "predict", data, model_path)
    assert status == 2
    assert f"{data} is not a fastem model file" in err


def test_directory_instead_of_file(capsys, tmp_path):
    status, _, err = run(capsys, "fit", tmp_path)
    assert status == 2
    assert err == f"fastem: error: {tmp_path} is a directory, not a data file\n"


# ----------------------------------------------------------------------------
# the installed command, in a real process


def console_script():
    """The ``fastem`` script of this interpreter's environment, if installed."""
    name = "fastem.exe" if os.name == "nt" else "fastem"
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which("fastem")


def test_console_script_in_subprocess(tmp_path):
    script = console_script()
    if script is None:
        pytest.skip("the fastem console script is not installed (pip install -e .)")
    result = subprocess.run(
        [script, "fit"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "Old Faithful" in result.stdout
    assert "component 2" in result.stdout

    result = subprocess.run(
        [script, "fit", str(tmp_path / "absent.csv")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("fastem: error: ")
    assert "No such file or directory" in result.stderr


def environment_importing_this_fastem():
    """os.environ with the fastem under test first on PYTHONPATH."""
    source_root = str(Path(fastem.__file__).resolve().parent.parent)
    paths = [source_root, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


ERRORS = {
    "argument --covariance-type": ["fit", "--covariance-type", "nope"],
    "empty.csv has no data rows": ["fit", "empty.csv"],
    "line 2, column 1 is 'nan'": ["fit", "nan.csv"],
}


@background.fixture
def python_dash_m_fastem_errors(directory):
    """``python -m fastem`` with each ``ERRORS`` argv, in ``directory``, which holds an
    empty and a NaN csv."""
    (directory / "empty.csv").write_text("")
    (directory / "nan.csv").write_text("1,2\nnan,3\n4,5\n")
    return {
        message: subprocess.run(
            [sys.executable, "-m", "fastem", *argv],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=directory,
            env=environment_importing_this_fastem(),
        )
        for message, argv in ERRORS.items()
    }


@pytest.mark.parametrize("message", ERRORS)
def test_python_dash_m_fastem_errors(python_dash_m_fastem_errors, message):
    result = python_dash_m_fastem_errors[message]
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("fastem: error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr


@background.fixture
def first_and_second_fit(directory):
    """`fastem fit --covariance-type diag` twice in fresh processes, the first with an
    empty numba cache in ``directory``."""
    env = {**environment_importing_this_fastem(), "NUMBA_CACHE_DIR": str(directory)}
    command = [sys.executable, "-m", "fastem", "fit", "--covariance-type", "diag"]
    # then, with the cache those fits filled: which dtypes would compile?
    judge = [sys.executable, "-c", (
        "from fastem._warmup import kernels_need_compiling as need;"
        "print([need(272, 2, 2, 'diag', dtype=t) for t in ('float64', 'float32')])"
    )]
    # and a float32 .npy: the CLI asks for float32 kernels, which compile
    float32 = directory / "faithful32.npy"
    np.save(float32, load_faithful().astype(np.float32))
    return [
        subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env,
                       check=False)
        for argv in (command, command, judge, [*command, str(float32)])
    ]


def test_first_fit_says_it_is_compiling_and_later_fits_do_not(first_and_second_fit):
    """With an empty numba cache `fastem fit` prints one line on stderr before the
    kernels compile; with the cache that run filled, nothing."""
    first, second, *_ = first_and_second_fit
    assert first.returncode == 0, first.stderr
    assert first.stderr == (
        "fastem: compiling kernels, once per installation (or run 'fastem warmup')...\n"
    )
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    assert second.stdout.split("fit time")[0] == first.stdout.split("fit time")[0]


def test_compiling_is_judged_for_the_data_type(first_and_second_fit):
    """A cache that holds the float64 kernels does not hold the float32 ones: a first
    float32 fit (a float32 .npy) after float64 ones says it is compiling (the cache
    index is read for X's dtype, not only for whether it exists)."""
    judged, float32_fit = first_and_second_fit[2:]
    assert judged.returncode == 0, judged.stderr
    assert judged.stdout == "[False, True]\n"
    assert float32_fit.returncode == 0, float32_fit.stderr
    assert float32_fit.stderr == (
        "fastem: compiling kernels, once per installation (or run 'fastem warmup')...\n"
    )


def test_compiling_is_judged_in_this_process():
    """Kernels compiled in this process need no compiling; a dtype no kernel was ever
    compiled for (float16, which fits never use) does."""
    X = load_faithful()
    GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    assert not kernels_need_compiling(*X.shape, 2, "tied")
    assert kernels_need_compiling(*X.shape, 2, "tied", dtype=np.float16)
    assert kernels_need_compiling(*X.shape, 2, "tied", inference=True, dtype=np.float16)


@background.fixture
def first_select_and_predict(directory):
    """`fastem select -k 1:2 --covariance-types diag` twice in fresh processes, the
    first with an empty numba cache; then `fastem predict` of a model (fitted with
    a cache of its own) twice, the first with another empty cache."""
    env = {**environment_importing_this_fastem(),
           "NUMBA_CACHE_DIR": str(directory / "a")}
    run_here = dict(capture_output=True, text=True, timeout=600, check=False)
    select = [sys.executable, "-m", "fastem", "select", "-k", "1:2",
              "--covariance-types", "diag"]
    selects = [subprocess.run(select, env=env, **run_here) for _ in range(2)]
    model, data = directory / "model.json", directory / "data.npy"
    np.save(data, load_faithful())
    subprocess.run([sys.executable, "-m", "fastem", "fit", "--covariance-type", "tied",
                    "--output", str(model)], env=env, **run_here)
    env["NUMBA_CACHE_DIR"] = str(directory / "b")
    predict = [sys.executable, "-m", "fastem", "predict", str(model), str(data)]
    predicts = [subprocess.run(predict, env=env, **run_here) for _ in range(2)]
    return selects + predicts


def test_first_select_and_predict_say_they_are_compiling(first_select_and_predict):
    """As `fastem fit` does: one line on stderr before a first `select` or `predict`
    compiles, none once the cache holds the kernels."""
    first_select, second_select, first_predict, second_predict = (
        first_select_and_predict)
    for result in first_select_and_predict:
        assert result.returncode == 0, result.stderr
    compiling = (
        "fastem: compiling kernels, once per installation (or run 'fastem warmup')...\n"
    )
    assert first_select.stderr == compiling
    assert second_select.stderr == ""
    assert first_predict.stderr == compiling
    assert second_predict.stderr == ""
    assert first_predict.stdout == second_predict.stdout


def test_warmup_command(capsys):
    """`fastem warmup` (here in this process, whose kernels are compiled already) prints
    one line per kernel set and a total."""
    assert main(["warmup", "--covariance-type", "spherical", "--jobs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[1/2] float64 diagonal (small data) ready in ")
    assert lines[1].startswith("[2/2] float64 diagonal (large data) ready in ")
    assert lines[2].startswith("2 kernel sets ready in ")
    # the defaults: float64, all four covariance types (both kernel families)
    assert main(["warmup", "--jobs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    kernel_sets = [re.sub(r"^\[\d/4\] | ready in .*$", "", line) for line in lines[:4]]
    assert sorted(kernel_sets) == [
        "float64 dense (large data)", "float64 dense (small data)",
        "float64 diagonal (large data)", "float64 diagonal (small data)",
    ]
    assert lines[4].startswith("4 kernel sets ready in ") and len(lines) == 5


def test_warmup_rejects_unknown_types():
    import fastem

    with pytest.raises(ValueError, match="dtypes must be among"):
        fastem.warmup(dtypes=("int8",), n_jobs=1)
    with pytest.raises(ValueError, match="covariance_types must be among"):
        fastem.warmup(covariance_types=("banded",), n_jobs=1)
