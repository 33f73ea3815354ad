"""`fastem select` and `fastem predict`: the table and the choice, the files they
write, progress on a terminal only, and one-line errors with exit status 2."""

import csv
import io
import re
import shutil
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fastem import GaussianMixtureIC, cli, load_faithful, load_model
from fastem import _io as fastem_io
from fastem.cli import main


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def rng():
    return np.random.default_rng(20240615)


@pytest.fixture
def blobs_csv(tmp_path, rng):
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(6, 1, (40, 3))])
    path = tmp_path / "blobs.csv"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    return path, X


def table_rows(out):
    """{n_components: [cells]} from the printed table."""
    lines = out.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.strip().startswith("n_components")
    )
    header = lines[start].split()[1:]
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        fields = re.findall(r"\S+(?: [*!])?", line.strip())
        rows[int(fields[0])] = dict(zip(header, fields[1:], strict=False))
    return header, rows


def test_select_bundled_data_marks_mclusts_choice(capsys):
    status, out, err = run(capsys, "select", "-k", "1:4", "--quiet")
    assert status == 0, err
    assert err == ""
    header, rows = table_rows(out)
    assert header == ["spherical", "diag", "tied", "full"]
    assert sorted(rows) == list(range(1, 5))
    assert rows[3]["tied"].endswith(" *")
    starred = [
        (k, t) for k, row in rows.items() for t, cell in row.items() if "*" in cell
    ]
    assert starred == [(3, "tied")]
    assert re.search(
        r"^best\s+3 components, covariance_type='tied', BIC 2314\.\d+",
        out,
        flags=re.MULTILINE,
    )
    assert "272 samples x 2 features" in out
    # the printed numbers are those of the estimator with the same settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GaussianMixtureIC(range(1, 5), random_state=0).fit(load_faithful())
    for record in search.results_:
        cell = rows[record["n_components"]][record["covariance_type"]]
        assert float(cell.rstrip(" *!")) == pytest.approx(record["bic"], abs=0.006)


def test_select_file_writes_model_and_plot(capsys, tmp_path, blobs_csv):
    path, X = blobs_csv
    model_path = tmp_path / "model.json"
    png = tmp_path / "select.png"
    status, out, err = run(
        capsys,
        "select",
        path,
        "-k",
        "1:3",
        "--covariance-types",
        "full,diag",
        "--criterion",
        "icl",
        "-o",
        model_path,
        "--plot",
        png,
        "--n-jobs",
        "2",
    )
    assert status == 0, err
    header, rows = table_rows(out)
    assert header == ["full", "diag"] and sorted(rows) == [1, 2, 3]
    assert "by ICL" in out
    model = load_model(model_path)
    assert list(model.feature_names_in_) == ["a", "b", "c"]  # blobs.csv's header
    del model.feature_names_in_  # to predict on an array without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GaussianMixtureIC(
            (1, 2, 3), ("full", "diag"), criterion="icl", random_state=0
        ).fit(X)
    assert (model.n_components, model.covariance_type) == (
        search.n_components_,
        search.covariance_type_,
    )
    assert_array_equal(model.means_, search.best_estimator_.means_)
    assert_array_equal(model.predict(X), search.predict(X))
    matplotlib = pytest.importorskip("matplotlib")
    image = matplotlib.pyplot.imread(png)
    assert (
        image.shape[0] > 100 and np.mean(np.any(image[..., :3] < 0.9, axis=-1)) > 0.01
    )


def test_select_skipped_cells_are_listed(capsys, tmp_path, rng):
    path = tmp_path / "small.csv"
    np.savetxt(path, rng.normal(size=(6, 3)), delimiter=",")
    status, out, err = run(
        capsys, "select", path, "-k", "1,2", "--covariance-types", "full", "-q"
    )
    assert status == 0, err
    _, rows = table_rows(out)
    assert rows[2]["full"] == "skipped"
    assert "2 full: skipped: 19 free parameters but only 18 data values" in out


def test_progress_only_on_a_terminal(capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(cli._Progress, "DELAY", 0.0)
    terminal = Terminal()
    monkeypatch.setattr(cli.sys, "stderr", terminal)
    assert main(["select", "-k", "1:2", "--covariance-types", "tied,full"]) == 0
    shown = terminal.getvalue()
    assert "cell 1 of 4" in shown and "cell 4 of 4" in shown
    assert re.search(r"best so far: \d \w+ BIC \d", shown)
    terminal = Terminal()
    monkeypatch.setattr(cli.sys, "stderr", terminal)
    assert main(["select", "-k", "1:2", "--covariance-types", "tied", "--quiet"]) == 0
    assert terminal.getvalue() == ""
    monkeypatch.undo()
    # not a terminal (pytest's capture): no progress
    monkeypatch.setattr(cli._Progress, "DELAY", 0.0)
    status, _out, err = run(capsys, "select", "-k", "1:2", "--covariance-types", "tied")
    assert status == 0 and err == ""


def test_predict_labels_and_responsibilities(capsys, tmp_path, blobs_csv):
    path, X = blobs_csv
    model_path = tmp_path / "model.json"
    assert run(capsys, "select", path, "-k", "1:3", "-o", model_path, "-q")[0] == 0
    model = load_model(model_path)
    del model.feature_names_in_  # blobs.csv's header: predict on X without a warning
    status, out, err = run(capsys, "predict", model_path, path)
    assert status == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["label"]
    assert_array_equal([int(r[0]) for r in rows[1:]], model.predict(X))
    out_path = tmp_path / "labels.csv"
    status, out, err = run(
        capsys, "predict", model_path, path, "--proba", "-o", out_path
    )
    assert status == 0, err
    with open(out_path, newline="") as handle:
        rows = list(csv.reader(handle))
    k = model.n_components
    assert rows[0] == ["label", *(f"proba_{j}" for j in range(k))]
    proba = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert_array_equal(proba, model.predict_proba(X))  # repr: exact round trip
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["select", "-k", "0:3"], "component counts must be >= 1"),
        (["select", "-k", "5:2"], "is empty"),
        (["select", "-k", "a"], "is not a component count"),
        (["select", "--covariance-types", "full,wide"], "comma-separated list of"),
        (["select", "--criterion", "mdl"], "invalid choice"),
        (["select", "missing.csv"], "missing.csv"),
        (["select", "-o", "no/such/dir/model.json"], "does not exist"),
        (["predict", "missing.json", "x.csv"], "missing.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    status, _out, err = run(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("fastem: error: ")
    assert message in err


def test_select_and_predict_read_files_with_the_delimiter_given(capsys, tmp_path,
                                                               blobs_csv):
    """--delimiter is how `fastem select` and `fastem predict` read FILE, as for
    `fastem fit`."""
    _, X = blobs_csv
    semicolons = tmp_path / "blobs.txt"
    np.savetxt(semicolons, X, delimiter=";", header="a;b;c", comments="")
    model_path = tmp_path / "model.json"
    status, out, err = run(capsys, "select", semicolons, "--delimiter", ";", "-k", "2",
                           "--covariance-types", "full", "-o", model_path, "-q")
    assert status == 0, err
    assert "80 samples x 3 features" in out
    model = load_model(model_path)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    status, out, err = run(capsys, "predict", model_path, semicolons,
                           "--delimiter", ";")
    assert status == 0, err
    del model.feature_names_in_  # to predict on an array without a warning
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["label"]
    assert_array_equal([int(row[0]) for row in rows[1:]], model.predict(X))


@pytest.fixture
def searches(monkeypatch):
    """The GaussianMixtureIC searches that the commands run, in order: each recorded
    as its fit starts, the real fit then called through."""
    started = []
    fit = GaussianMixtureIC._fit

    def recording_fit(self, *args, **kwargs):
        started.append(self)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixtureIC, "_fit", recording_fit)
    return started


def test_select_options_reach_the_search(capsys, tmp_path, searches):
    """Each option of `fastem select` is the search's parameter of that name (read
    from the GaussianMixtureIC that runs, its real fit called through), none left at
    its default; the model -o writes is the search's best."""
    output = tmp_path / "model.json"
    status, _, err = run(
        capsys, "select", "-k", "2:3", "--covariance-types", "diag,tied",
        "--criterion", "icl", "--n-init", 3, "--init-params", "random_from_data",
        "--max-iter", 40, "--tol", "1e-5", "--reg-covar", "1e-4",
        "--random-state", 7, "--n-jobs", 2, "--n-threads", 1, "-q", "-o", output,
    )  # fmt: skip
    assert status == 0, err
    expected = {
        "n_components": (2, 3), "covariance_types": ("diag", "tied"),
        "criterion": "icl", "n_init": 3, "init_params": "random_from_data",
        "max_iter": 40, "tol": 1e-5, "reg_covar": 1e-4, "random_state": 7,
        "n_jobs": 2, "n_threads": 1,
    }  # fmt: skip
    [fitted] = searches
    params = fitted.get_params()
    got = {name: params[name] for name in expected}
    got["n_components"] = tuple(got["n_components"])
    got["covariance_types"] = tuple(got["covariance_types"])
    assert got == expected
    best = fitted.best_estimator_
    model = load_model(output)
    assert (model.n_components, model.covariance_type) == (
        best.n_components, best.covariance_type)
    assert_array_equal(model.means_, best.means_)
    assert (model.max_iter, model.tol, model.reg_covar) == (40, 1e-5, 1e-4)


def test_table_marks_degenerate_and_skipped_cells(capsys, tmp_path):
    """Four distinct points repeated, reg_covar=0: four 'full' components are
    degenerate (marked !, their criterion printed), fifty are skipped (the word in
    their cell); both are listed with their reasons, the grid line names the counts
    as given. The values are the GaussianMixtureIC's (the printing is under test)."""
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    X = np.repeat(points, 10, axis=0)
    path = tmp_path / "four.csv"
    np.savetxt(path, X, delimiter=",")
    status, out, err = run(capsys, "select", path, "-k", "1,4,50",
                           "--covariance-types", "full", "--reg-covar", 0, "-q")
    assert status == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GaussianMixtureIC((1, 4, 50), ("full",), reg_covar=0.0,
                                   random_state=0).fit(X)
    one, four, fifty = search.results_
    assert (one["status"], four["status"], fifty["status"]) == (
        "ok", "degenerate", "skipped")
    lines = out.splitlines()
    assert ("grid     n_components 1,4,50 x full; init_params='hc', n_init=2, "
            "random_state=0") in lines
    table = lines[lines.index("BIC") + 1:lines.index("BIC") + 5]
    assert [line.split() for line in table] == [
        ["n_components", "full"],
        ["1", f"{one['bic']:.2f}", "*"],
        ["4", f"{four['bic']:.2f}", "!"],
        ["50", "skipped"],
    ]
    listed = lines[lines.index("not fitted or degenerate (! in the table):") + 1:]
    assert listed == [f"  4 full: degenerate: {four['reason']}",
                      f"  50 full: skipped: {fifty['reason']}"]


def test_unwritable_files_are_refused_before_the_search(capsys, tmp_path, searches):
    """An -o or --plot that cannot be written is the error, found before the search
    (not after the work it was to hold)."""
    for option in ("-o", "--plot"):
        status, out, err = run(capsys, "select", "-k", "1", "--covariance-types",
                               "full", option, tmp_path / "absent" / "out.png")
        assert (status, out) == (2, ""), option
        assert err.startswith("fastem: error: cannot write "), err
    assert searches == []


def test_predict_matches_columns_by_name(capsys, tmp_path, rng):
    """A model written from a CSV with a header keeps its column names (as a fit on a
    DataFrame does); `fastem predict` takes a file's columns by name when both have
    distinct names, by position when either has none (or repeats one), and refuses
    other names. (Responsibilities compared exactly, on clusters that differ by
    column: a reordering that is not undone changes them.)"""
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal((4, 0, -2), (1, 2, 0.5),
                                                         (40, 3))])
    path, model_path = tmp_path / "abc.csv", tmp_path / "model.json"
    np.savetxt(path, X, delimiter=",", header="a,b,c", comments="")
    assert run(capsys, "fit", path, "-k", 2, "-o", model_path, "-q")[0] == 0
    model = load_model(model_path)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    expected = run(capsys, "predict", model_path, path, "--proba")[1]
    del model.feature_names_in_  # to predict on an array without a warning
    assert_array_equal([float(row.split(",")[1]) for row in expected.split()[1:]],
                       model.predict_proba(X)[:, 0])
    files = {
        "reordered.csv": (X[:, [2, 0, 1]], "c,a,b"),
        "no-header.csv": (X, ""),
        "renamed.csv": (X[:, [2, 0, 1]], "c,a,z"),
        "fewer.csv": (X[:, [2, 0]], "c,a"),
        "repeated.csv": (X[:, [0, 1, 2, 2]], "a,b,c,c"),
    }
    for name, (columns, header) in files.items():
        np.savetxt(tmp_path / name, columns, delimiter=",", header=header,
                   comments="")
    for name in ("reordered.csv", "no-header.csv"):
        status, out, err = run(capsys, "predict", model_path, tmp_path / name,
                               "--proba")
        assert (status, out, err) == (0, expected, ""), name
    status, out, err = run(capsys, "predict", model_path, tmp_path / "renamed.csv")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert (f"renamed.csv has the columns c, a, z, but the model in {model_path} was "
            "fitted on a, b, c: no column b; z is not in the model") in err
    status, _, err = run(capsys, "predict", model_path, tmp_path / "fewer.csv")
    assert status == 2 and "fewer.csv has the columns c, a, but" in err
    status, _, err = run(capsys, "predict", model_path, tmp_path / "repeated.csv")
    assert status == 2 and "has 4 features (columns), but the model" in err
    # a model whose names repeat one (scikit-learn allows it for a DataFrame):
    # columns by position
    repeated = load_model(model_path)
    repeated.feature_names_in_ = np.asarray(["x", "x", "y"], dtype=object)
    fastem_io.save_model(repeated, model_path)
    np.savetxt(tmp_path / "xyx.csv", X, delimiter=",", header="x,y,x", comments="")
    assert run(capsys, "predict", model_path, tmp_path / "xyx.csv", "--proba") == (
        0, expected, "")


def test_plot_format_is_checked_before_the_search(capsys, tmp_path, monkeypatch):
    """An image type matplotlib cannot write is refused at once, not after the
    search has run."""
    matplotlib = pytest.importorskip("matplotlib")
    searched = []
    monkeypatch.setattr(GaussianMixtureIC, "_fit",
                        lambda *args, **kwargs: searched.append(args))
    status, out, err = run(capsys, "select", "--plot", tmp_path / "out.xyz")
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "matplotlib writes no .xyz files; use one of" in err and ".png" in err
    texsystem = matplotlib.rcParams["pgf.texsystem"]
    if shutil.which(texsystem) is None:  # .pgf needs it (not installed here)
        status, out, err = run(capsys, "select", "--plot", tmp_path / "out.pgf")
        assert status == 2 and err.count("\n") == 1
        assert f"writes .pgf files with {texsystem}, which is not installed" in err
    assert searched == []


def test_predict_feature_mismatch_and_bad_data(capsys, tmp_path, blobs_csv):
    path, _ = blobs_csv
    model_path = tmp_path / "model.json"
    assert run(capsys, "select", path, "-k", "1:2", "-o", model_path, "-q")[0] == 0
    two = tmp_path / "two.csv"
    np.savetxt(two, np.ones((5, 2)), delimiter=",")
    status, _, err = run(capsys, "predict", model_path, two)
    assert status == 2 and err.count("\n") == 1
    assert "has 2 features (columns), but the model" in err and "fitted on 3" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,x,6\n")
    status, _, err = run(capsys, "predict", model_path, bad)
    assert status == 2 and "line 2, column 2" in err
    status, _, err = run(capsys, "predict", path, path)
    assert status == 2 and "not a fastem model file" in err
