"""The ``fastem`` command.

``fastem fit`` fits the bundled Old Faithful data (2 components, full
covariances) and prints a summary; ``fastem fit FILE`` fits a CSV or ``.npy``
file. ``fastem select`` fits a grid of component counts and covariance types
and prints the criterion table (mclust's ``Mclust``); ``fastem predict`` labels
new data with a saved model; ``fastem warmup`` compiles the kernels ahead of the
first fit. Errors in the input end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import math
import os
import stat
import sys
import time
import warnings
from array import array
from pathlib import Path

import numpy as np

from fastem import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2  # bad input or bad options, as argparse uses
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool a closed pipe stopped
# stderr, before a command whose kernels are not in numba's cache yet
COMPILING = ("fastem: compiling kernels, once per installation "
             "(or run 'fastem warmup')...")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class InputError(ValueError):
    """Problem with the user's data file; the message is shown as is."""


class _ArgumentParser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``fastem: error: ...``."""

    def error(self, message):
        self.exit(
            EXIT_USAGE,
            f"fastem: error: {message} (see '{self.prog} --help')\n",
        )


# ----------------------------------------------------------------------------
# option types


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _delimiter(text):
    if len(text) != 1:
        raise argparse.ArgumentTypeError(
            f"must be one character, got {text!r} (a tab: --delimiter $'\\t' in bash)"
        )
    return text


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and 2**32 - 1, got {value}"
        )
    return value


def _build_parser():
    parser = _ArgumentParser(
        prog="fastem",
        description="Fit Gaussian mixture models by EM (numba kernels).",
    )
    parser.add_argument("--version", action="version", version=f"fastem {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser(
        "fit",
        help="fit a Gaussian mixture and print a summary",
        description=(
            "Fit a Gaussian mixture to FILE (a CSV file, header row optional, or a "
            ".npy array of shape (n_samples, n_features)) and print the fitted "
            "weights, means, covariances, log-likelihood, BIC, iterations and fit "
            "time. Without FILE, fit the bundled Old Faithful data. A .npy file is "
            "memory-mapped and read block by block, so it may be larger than memory."
        ),
    )
    fit.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="CSV or .npy data, one row per sample (default: bundled Old Faithful)",
    )
    fit.add_argument(
        "-k",
        "--n-components",
        type=_positive_int,
        default=2,
        metavar="K",
        help="number of mixture components (default: 2)",
    )
    fit.add_argument(
        "--covariance-type",
        choices=COVARIANCE_TYPES,
        default="full",
        help="covariance parameterisation (default: full)",
    )
    fit.add_argument(
        "--n-init",
        type=_positive_int,
        default=1,
        metavar="N",
        help="number of restarts; the best is kept (default: 1)",
    )
    fit.add_argument(
        "--init-params",
        choices=INIT_PARAMS,
        default="kmeans",
        help="initialisation method (default: kmeans)",
    )
    fit.add_argument(
        "--max-iter",
        type=_positive_int,
        default=100,
        metavar="N",
        help="maximum EM iterations per restart (default: 100)",
    )
    fit.add_argument(
        "--tol",
        type=_non_negative_float,
        default=1e-3,
        help="convergence threshold on the per-sample lower bound (default: 1e-3)",
    )
    fit.add_argument(
        "--reg-covar",
        type=_non_negative_float,
        default=1e-6,
        help="added to the covariance diagonals (default: 1e-6)",
    )
    fit.add_argument(
        "--random-state",
        type=_seed,
        default=0,
        metavar="SEED",
        help="seed for the initialisation (default: 0, reproducible output)",
    )
    fit.add_argument(
        "--on-singular",
        choices=("recover", "raise"),
        default="recover",
        help=(
            "what to do when a covariance is singular: repair it and record the "
            "repair (recover), or stop with an error as scikit-learn does "
            "(default: recover)"
        ),
    )
    fit.add_argument(
        "--n-threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="threads for the kernels (default: all CPUs)",
    )
    fit.add_argument(
        "--init-sample-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help=(
            "start k-means from a seeded sample of N rows (default: all rows of data "
            "in memory; 100000 rows of a .npy too large to be read into memory)"
        ),
    )
    fit.add_argument(
        "--delimiter",
        type=_delimiter,
        default=",",
        help="CSV field separator (default: ',')",
    )
    fit.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line on stderr (shown for fits longer than a second when "
        "stderr is a terminal)",
    )
    fit.add_argument(
        "-o",
        "--output",
        metavar="MODEL.json",
        help="also write the fitted model to this JSON file (fastem.load_model)",
    )
    fit.set_defaults(handler=_run_fit)
    _add_select_parser(commands)
    _add_predict_parser(commands)
    _add_warmup_parser(commands)
    return parser


def _add_warmup_parser(commands):
    warmup = commands.add_parser(
        "warmup",
        help="compile the kernels now (once per installation) instead of on the first fit",
        description=(
            "Compile the numba kernels that fits of the given data types and "
            "covariance types need, in parallel processes, into numba's cache, so "
            "that later fits start at once. Prints one line per finished task."
        ),
    )
    warmup.add_argument(
        "--dtype",
        dest="dtypes",
        action="append",
        choices=("float64", "float32"),
        help="data type to compile for (repeat for both; default: float64)",
    )
    warmup.add_argument(
        "--covariance-type",
        dest="covariance_types",
        action="append",
        choices=COVARIANCE_TYPES,
        help="covariance type to compile for (repeat; default: all four)",
    )
    warmup.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="processes compiling at once (default: one per CPU)",
    )
    warmup.set_defaults(handler=_run_warmup)


def _run_warmup(args):
    from fastem._warmup import warmup

    start = time.perf_counter()
    done = warmup(
        dtypes=args.dtypes or ("float64",),
        covariance_types=args.covariance_types or COVARIANCE_TYPES,
        n_jobs=args.jobs,
        progress=print,
    )
    print(f"{_plural(len(done), 'kernel set')} ready in {time.perf_counter() - start:.1f} s")
    return EXIT_OK


# ----------------------------------------------------------------------------
# loading data


def _plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _parse_float(cell):
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path, delimiter):
    """Read a numeric CSV file; a first row with no numeric cell is a header.

    Returns ``(X, feature_names)``; ``feature_names`` is None without a header.
    ``numpy.loadtxt`` reads well-formed files fast; anything it rejects, or
    that holds NaN or infinity, is read again by :func:`_read_csv_checked`,
    which defines what is accepted and names the line and column of a problem.
    """
    text = None
    if not stat.S_ISREG(os.stat(path).st_mode):
        # a pipe (/dev/stdin, <(zcat ...)) can be read once: keep what it gives
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
    skip_lines, feature_names = _csv_header(path, delimiter, text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "input contained no data"
            X = np.loadtxt(
                path if text is None else io.StringIO(text),
                dtype=np.float64,
                delimiter=delimiter,
                comments=None,
                skiprows=skip_lines,
                ndmin=2,
                encoding="utf-8-sig",
            )
    except (ValueError, TypeError, UnicodeDecodeError):
        X = None
    n_features = None if feature_names is None else len(feature_names)
    if (
        X is None
        or X.size == 0
        or (n_features is not None and X.shape[1] != n_features)
        or not np.isfinite(X).all()
    ):
        return _read_csv_checked(path, delimiter, text)
    return np.ascontiguousarray(X), feature_names


def _not_utf8(path):
    return InputError(
        f"{path} is not a UTF-8 text file; give a CSV file or a .npy array"
    )


def _text(path, text):
    """The CSV file to read: ``path`` opened, or ``text`` already read from it."""
    if text is not None:
        return io.StringIO(text, newline="")
    return open(path, newline="", encoding="utf-8-sig")


def _csv_header(path, delimiter, text=None):
    """(lines to skip, header cells) if the first non-blank row is a header."""
    with _text(path, text) as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        try:
            for cells in reader:
                cells = [cell.strip() for cell in cells]
                if not any(cells):
                    continue
                if all(_parse_float(cell) is None for cell in cells):
                    return reader.line_num, cells
                return 0, None
        except (csv.Error, UnicodeDecodeError):
            pass  # reported by _read_csv_checked
    return 0, None


def _read_csv_checked(path, delimiter, text=None):
    """Careful CSV reader: rows parsed one by one into a flat float64 buffer."""
    values = array("d")
    feature_names = None
    n_features = None
    n_rows = 0
    with _text(path, text) as handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)
        try:
            for cells in reader:
                cells = [cell.strip() for cell in cells]
                if not any(cells):
                    continue  # blank line
                if n_features is None:
                    n_features = len(cells)
                    if all(_parse_float(cell) is None for cell in cells):
                        feature_names = cells
                        continue
                _append_row(
                    values, cells, n_features, f"{path}: line {reader.line_num}"
                )
                n_rows += 1
        except csv.Error as exc:
            raise InputError(f"{path}: line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
    if n_rows == 0:
        raise InputError(f"{path} has no data rows")
    X = np.frombuffer(values, dtype=np.float64).reshape(n_rows, n_features)
    return X.copy(), feature_names


def _append_row(values, cells, n_features, where):
    if len(cells) != n_features:
        raise InputError(
            f"{where} has {_plural(len(cells), 'field')}, expected {n_features}"
        )
    for column, cell in enumerate(cells, start=1):
        value = _parse_float(cell)
        if value is None:
            what = "an empty cell" if cell == "" else f"non-numeric value {cell!r}"
            raise InputError(
                f"{where}, column {column} has {what}; "
                "every cell after the optional header must be a number"
            )
        if not math.isfinite(value):
            if math.isinf(value) and "inf" not in cell.lower():  # e.g. 1e400
                raise InputError(
                    f"{where}, column {column} is {cell!r}, beyond the largest "
                    f"float64 ({sys.float_info.max:.6g}); rescale the column"
                )
            raise InputError(
                f"{where}, column {column} is {cell!r}; "
                "remove or impute rows with NaN or infinite values"
            )
        values.append(value)


# A .npy file up to this size is read into memory (and checked for NaN there);
# a larger one stays memory-mapped: the fit reads and checks it block by block.
NPY_IN_MEMORY_BYTES = 256 << 20
NPY_MAGIC = b"\x93NUMPY"  # how every .npy file starts


def _read_npy(path):
    with open(path, "rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if not magic:
        raise InputError(f"{path} is empty (0 bytes), not a .npy array")
    if magic != NPY_MAGIC:
        raise InputError(
            f"{path} is not a .npy file (it does not start as numpy's format does); "
            "give a .npy array, or a CSV file under a name without .npy"
        )
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # cannot be memory-mapped: numpy's reason for not loading it
        try:
            X = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as exc:  # pickled object arrays, damaged files
            raise InputError(f"{path} is not a readable .npy array: {exc}") from None
    if not isinstance(X, np.ndarray):
        raise InputError(f"{path} does not hold a single array (.npz is not supported)")
    if X.dtype.kind not in "iuf":
        raise InputError(
            f"{path} holds an array of dtype {X.dtype}; a numeric array is needed"
        )
    if X.ndim == 1:
        X = X.reshape(-1, 1)  # one feature
    if X.ndim != 2:
        raise InputError(
            f"{path} holds an array of shape {X.shape}; "
            "expected (n_samples, n_features)"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{path} holds an empty array of shape {X.shape}")
    if X.nbytes > NPY_IN_MEMORY_BYTES:
        return X, None  # memory-mapped; checked block by block by the fit
    X = np.array(X)
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        row, column = bad[0]
        raise InputError(
            f"{path}: element [{row}, {column}] is {float(X[row, column])}; remove "
            "or impute rows with NaN or infinite values"
        )
    return X, None


def load_data(path, delimiter=","):
    """Read a data file for ``fastem fit``.

    Parameters
    ----------
    path : str
        A ``.npy`` file, or any other file read as CSV.
    delimiter : str, default=','
        CSV field separator.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    feature_names : list of str or None
        The CSV header, if the file has one.

    Raises
    ------
    InputError
        For unreadable or non-numeric content, with a message naming the line.
    OSError
        If the file cannot be opened.
    """
    if Path(path).is_dir():
        raise InputError(f"{path} is a directory, not a data file")
    if Path(path).suffix.lower() == ".npy":
        return _read_npy(path)
    return _read_csv(path, delimiter)


# ----------------------------------------------------------------------------
# summary


def _format_number(value):
    return f"{value:.6g}"


def _table(row_labels, column_labels, rows, indent="  "):
    """Right-aligned text table; the first column holds the row labels."""
    cells = [["", *column_labels]]
    cells += [
        [label, *(_format_number(v) for v in row)]
        for label, row in zip(row_labels, rows, strict=True)
    ]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
    lines = []
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = (
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        )
        lines.append(indent + "   ".join([first, *rest]).rstrip())
    return lines


def _summary(model, X, feature_names, source, fit_seconds):
    n_samples, n_features = X.shape
    n_components = model.n_components
    components = [f"component {k + 1}" for k in range(n_components)]
    log_prob = model.score_samples(X)  # one pass over X (it may be on disk)
    log_likelihood = float(np.sum(log_prob))
    # model.bic(X) and model.aic(X), from the same pass
    score = float(log_prob.mean())
    bic = -2 * score * n_samples + model._n_parameters() * np.log(n_samples)
    aic = -2 * score * n_samples + 2 * model._n_parameters()
    lines = [
        f"fastem {__version__}: Gaussian mixture fitted by EM",
        f"data             {source}: {n_samples} samples x {n_features} features",
        f"model            {n_components} components, "
        f"covariance_type={model.covariance_type!r}",
        f"initialisation   init_params={model.init_params!r}, "
        f"n_init={model.n_init}, random_state={model.random_state}"
        + (f", init_sample_size={model.init_sample_size}"
           if model.init_sample_size is not None else ""),
        f"converged        {'yes' if model.converged_ else 'NO'} "
        f"(n_iter={model.n_iter_}, max_iter={model.max_iter}, tol={model.tol:g})",
        f"fit time         {fit_seconds:.3f} s",
        f"log-likelihood   {log_likelihood:.6f} total, "
        f"{log_likelihood / n_samples:.6f} per sample",
        f"BIC              {bic:.6f}",
        f"AIC              {aic:.6f}",
    ]
    events = getattr(model, "singular_events_", None)
    if events:
        lines.append(f"singular events  {len(events)} (covariance fallback applied)")
    lines += ["", "weights"]
    lines += _table(["weight"], components, [model.weights_])
    lines += ["", "means"]
    lines += _table(feature_names, components, np.asarray(model.means_).T)

    covariances = np.asarray(model.covariances_)
    covariance_type = model.covariance_type
    if covariance_type == "full":
        for k in range(n_components):
            lines += ["", f"covariance, {components[k]}"]
            lines += _table(feature_names, feature_names, covariances[k])
    elif covariance_type == "tied":
        lines += ["", "covariance, shared by all components"]
        lines += _table(feature_names, feature_names, covariances)
    elif covariance_type == "diag":
        lines += ["", "variances"]
        lines += _table(feature_names, components, covariances.T)
    else:  # spherical
        lines += ["", "variance (same for every feature)"]
        lines += _table(["variance"], components, [covariances])
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# commands


def _kernel_dtype(X):
    """The dtype the kernels see for X: float32 stays, anything else is float64
    (as ``_validation.check_data`` converts)."""
    return np.float32 if X.dtype == np.float32 else np.float64


def _run_fit(args):
    if args.output is not None:
        _check_output_directory(args.output, "--output")
    X, header, source = _load_input(args.file, args.delimiter)
    n_samples, n_features = X.shape
    feature_names = header or [f"x{j + 1}" for j in range(n_features)]
    if n_samples < args.n_components:
        raise InputError(
            f"{source} has {_plural(n_samples, 'row')}, fewer than the "
            f"{args.n_components} components asked for; lower -k or give more data"
        )

    from fastem.mixture import GaussianMixture

    model = GaussianMixture(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        n_init=args.n_init,
        init_params=args.init_params,
        random_state=args.random_state,
        on_singular=args.on_singular,
        n_threads=args.n_threads,
        init_sample_size=args.init_sample_size,
    )
    progress = _FitProgress(enabled=not args.quiet and sys.stderr.isatty(),
                            n_samples=n_samples)
    model._progress = progress
    from fastem._warmup import kernels_need_compiling

    if kernels_need_compiling(n_samples, n_features, args.n_components,
                              args.covariance_type, dtype=_kernel_dtype(X)):
        print(COMPILING, file=sys.stderr, flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.fit(X)
        finally:
            progress.close()
            del model._progress
        fit_seconds = time.perf_counter() - start
    for warning in caught:
        message = " ".join(str(warning.message).split())
        print(f"fastem: warning: {message}", file=sys.stderr)

    print(_summary(model, X, feature_names, source, fit_seconds))
    if args.output is not None:
        from fastem._io import save_model

        save_model(_with_feature_names(model, header), args.output)
        print(f"\nmodel written to {args.output} (read it with fastem.load_model)")
    return EXIT_OK


# ----------------------------------------------------------------------------
# fastem select / fastem predict (model search over a grid; labels for new data)


def _component_counts(text):
    """``-k`` values: '1:9' (inclusive), '3', '1,2,5' or '2:4,8'."""
    counts = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                first, last = (int(value) for value in part.split(":"))
                if last < first:
                    raise argparse.ArgumentTypeError(
                        f"range {part!r} is empty; write FIRST:LAST with FIRST <= LAST"
                    )
                counts.extend(range(first, last + 1))
            else:
                counts.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a component count, a range like 1:9 or a "
                "comma-separated list of them"
            ) from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"component counts must be >= 1, got {text!r}")
    return sorted(set(counts))


def _covariance_type_list(text):
    types = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in types if name not in COVARIANCE_TYPES]
    if unknown or not types:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a comma-separated list of {', '.join(COVARIANCE_TYPES)}"
        )
    return list(dict.fromkeys(types))


def _n_jobs(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value == 0:
        raise argparse.ArgumentTypeError(
            "must be at least 1, or negative for all CPUs (-1) or all but some "
            f"(-2: all but one), got {value}"
        )
    return value


def _add_select_parser(commands):
    from fastem.selection import CRITERIA
    from fastem.selection import INIT_PARAMS as SELECT_INIT_PARAMS

    select = commands.add_parser(
        "select",
        help="fit a grid of mixtures and choose one by BIC, AIC or ICL",
        description=(
            "Fit a Gaussian mixture for every number of components and covariance "
            "type, print the criterion table (rows: components, columns: covariance "
            "types; the best is marked) and the choice, as R's mclust does. Lower is "
            "better (mclust's BIC is minus this one). Without FILE, use the bundled "
            "Old Faithful data."
        ),
    )
    select.add_argument("file", nargs="?", metavar="FILE",
                        help="CSV or .npy data, one row per sample (default: bundled "
                        "Old Faithful)")
    select.add_argument("-k", "--n-components", type=_component_counts, default="1:9",
                        metavar="K",
                        help="component counts: 1:9 (default), 3, or 1,2,5")
    select.add_argument("--covariance-types", type=_covariance_type_list,
                        default="spherical,diag,tied,full", metavar="TYPES",
                        help="comma-separated covariance types (default: "
                        "spherical,diag,tied,full)")
    select.add_argument("--criterion", choices=CRITERIA, default="bic",
                        help="how models are compared (default: bic)")
    select.add_argument("--n-init", type=_positive_int, default=2, metavar="N",
                        help="EM runs per cell (default: 2)")
    select.add_argument("--init-params", choices=SELECT_INIT_PARAMS, default="hc",
                        help="start of each cell's first run; hc: mclust's "
                        "hierarchical "
                        "start (default: hc)")
    select.add_argument("--max-iter", type=_positive_int, default=100, metavar="N",
                        help="maximum EM iterations per run (default: 100)")
    select.add_argument("--tol", type=_non_negative_float, default=1e-3,
                        help="convergence threshold (default: 1e-3)")
    select.add_argument("--reg-covar", type=_non_negative_float, default=1e-6,
                        help="added to the covariance diagonals (default: 1e-6)")
    select.add_argument("--random-state", type=_seed, default=0, metavar="SEED",
                        help="seed (default: 0, reproducible output)")
    select.add_argument("--n-jobs", type=_n_jobs, default=None, metavar="N",
                        help="cells fitted at once, in threads (default: 1; -1: "
                        "all CPUs, -2: all but one)")
    select.add_argument("--n-threads", type=_positive_int, default=None, metavar="N",
                        help="threads for the kernels (default: all CPUs)")
    select.add_argument("--delimiter", type=_delimiter, default=",",
                        help="CSV field separator (default: ',')")
    select.add_argument("--plot", metavar="OUT.png",
                        help="also draw the criterion curves and the chosen model's "
                        "clusters to this image (needs matplotlib)")
    select.add_argument("-o", "--output", metavar="MODEL.json",
                        help="write the chosen model to this JSON file "
                        "(fastem.load_model)")
    select.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines on stderr")
    select.set_defaults(handler=_run_select)


def _add_predict_parser(commands):
    predict = commands.add_parser(
        "predict",
        help="labels (and responsibilities) of new data under a saved model",
        description=(
            "Read a model written by 'fastem fit -o' or 'fastem select -o' and write "
            "the most probable component of every row of FILE as CSV (a 'label' "
            "column, components numbered from 0), with --proba also every "
            "component's responsibility."
        ),
    )
    predict.add_argument("model", metavar="MODEL.json", help="a saved fastem model")
    predict.add_argument("file", metavar="FILE",
                         help="CSV or .npy data, one row per sample")
    predict.add_argument("-o", "--output", metavar="OUT.csv",
                         help="write here instead of standard output")
    predict.add_argument("--proba", action="store_true",
                         help="also write the responsibilities, one column per "
                         "component")
    predict.add_argument("--delimiter", type=_delimiter, default=",",
                         help="CSV field separator (default: ',')")
    predict.set_defaults(handler=_run_predict)


def _check_output_directory(path, option):
    """The file ``path`` can be written, checked before the work it will hold."""
    target = Path(path)
    directory = target.resolve().parent
    if target.is_dir():
        raise InputError(f"cannot write {option} {path}: it is a directory")
    if not directory.exists():
        raise InputError(
            f"cannot write {option} {path}: directory {directory} does not exist"
        )
    if not directory.is_dir():
        raise InputError(
            f"cannot write {option} {path}: {directory} is not a directory"
        )
    writable = os.access(target, os.W_OK) if target.exists() else os.access(
        directory, os.W_OK | os.X_OK)
    if not writable:
        raise InputError(f"cannot write {option} {path}: permission denied")


def _load_input(file, delimiter):
    """(X, the CSV header or None, what to call the data) of FILE, or of the bundled
    data when no FILE is given."""
    if file is None:
        from fastem.datasets import FAITHFUL_FEATURES, load_faithful

        return load_faithful(), list(FAITHFUL_FEATURES), "Old Faithful (bundled)"
    X, header = load_data(file, delimiter)
    return X, header, file


def _with_feature_names(model, header):
    """The model to save: a shallow copy of ``model`` that keeps the CSV header's
    column names, as a fit on a DataFrame does (``feature_names_in_``), for ``fastem
    predict`` to match; ``model`` itself when there are no (distinct) names."""
    if not _distinct_names(header):
        return model
    named = copy.copy(model)
    named.feature_names_in_ = np.asarray(header, dtype=object)
    return named


def _distinct_names(names):
    """Whether ``names`` (a header, or a model's) can match columns by name: there
    are some, none empty, none twice."""
    return bool(names) and all(names) and len(set(names)) == len(names)


def _columns_by_name(X, header, model, args):
    """X's columns in the order of the model's ``feature_names_in_`` when both the
    model and FILE name their columns; otherwise X as it is (columns by position)."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return X
    del model.feature_names_in_  # X is matched here; predict takes it as an array
    names = [str(name) for name in names]
    if header == names or not (_distinct_names(header) and _distinct_names(names)):
        return X  # by position (and the column count is checked)
    if sorted(header) != sorted(names):
        missing = [name for name in names if name not in header]
        extra = [name for name in header if name not in names]
        problems = [f"no column {name}" for name in missing] + [
            f"{name} is not in the model" for name in extra]
        raise InputError(
            f"{args.file} has the columns {', '.join(header)}, but the model in "
            f"{args.model} was fitted on {', '.join(names)}: {'; '.join(problems)}; "
            "give the model's columns (in any order), or no header for columns "
            "by position"
        )
    return np.ascontiguousarray(X[:, [header.index(name) for name in names]])


class _FitProgress:
    """'iteration i, log-likelihood, change, rows/s' on one rewritten stderr line,
    once a fit has run for a second (called by the EM loop after each iteration)."""

    DELAY = 1.0

    def __init__(self, enabled, n_samples):
        self.enabled = enabled
        self.n_samples = n_samples
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, n_iter, lower_bound, change, seconds):
        if not self.enabled or time.perf_counter() - self.start < self.DELAY:
            return
        rate = self.n_samples / seconds if seconds > 0 else float("inf")
        sys.stderr.write(
            f"\rfastem: iteration {n_iter}, log-likelihood {lower_bound:.6f} per sample, "
            f"change {change:.3g}, {rate:.3g} rows/s\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


class _Progress:
    """'cell k of n, best so far' on one rewritten stderr line once a grid runs 1 s."""

    DELAY = 1.0

    def __init__(self, enabled, criterion):
        self.enabled = enabled
        self.criterion = criterion
        self.start = time.perf_counter()
        self.shown = False

    def __call__(self, done, total, record, best):
        if not self.enabled or time.perf_counter() - self.start < self.DELAY:
            return
        best_text = "none yet" if best is None else (
            f"{best['n_components']} {best['covariance_type']} "
            f"{self.criterion.upper()} {best[self.criterion]:.6g}"
        )
        sys.stderr.write(
            f"\rfastem: cell {done} of {total}, best so far: {best_text}\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self):
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _selection_table(search):
    """mclust-style table: rows n_components, columns covariance types, best marked."""
    criterion = search.criterion
    rows, columns, _ = search.results_.table(criterion)
    cells = {(r["n_components"], r["covariance_type"]): r for r in search.results_}
    text_rows = [["n_components", *columns]]
    for k in rows:
        line = [str(k)]
        for covariance_type in columns:
            record = cells[(k, covariance_type)]
            if record["status"] in ("skipped", "failed"):
                line.append(record["status"])
                continue
            mark = ""
            if (k, covariance_type) == (search.n_components_, search.covariance_type_):
                mark = " *"
            elif record["status"] == "degenerate":
                mark = " !"
            line.append(f"{record[criterion]:.2f}{mark}")
        text_rows.append(line)
    widths = [max(len(row[j]) for row in text_rows) for j in range(len(text_rows[0]))]
    return [
        "  ".join([row[0].rjust(widths[0])]
                  + [cell.rjust(width)
                     for cell, width in zip(row[1:], widths[1:], strict=True)])
        for row in text_rows
    ]


def _run_select(args):
    for path, option in ((args.output, "--output"), (args.plot, "--plot")):
        if path is not None:
            _check_output_directory(path, option)
    if args.plot is not None:
        _check_plot_format(args.plot)
    X, header, source = _load_input(args.file, args.delimiter)
    n_samples, n_features = X.shape
    feature_names = header or [f"x{j + 1}" for j in range(n_features)]
    if n_samples < 2:
        raise InputError(
            f"{source} has {_plural(n_samples, 'row')}; at least 2 are needed"
        )

    from fastem._warmup import kernels_need_compiling
    from fastem.selection import GaussianMixtureIC

    if any(kernels_need_compiling(n_samples, n_features, count, covariance_type,
                                  dtype=_kernel_dtype(X))
           for count in args.n_components for covariance_type in args.covariance_types):
        print(COMPILING, file=sys.stderr, flush=True)
    search = GaussianMixtureIC(
        n_components=args.n_components,
        covariance_types=args.covariance_types,
        criterion=args.criterion,
        n_init=args.n_init,
        init_params=args.init_params,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        random_state=args.random_state,
        n_threads=args.n_threads,
        n_jobs=args.n_jobs,
    )
    progress = _Progress(not args.quiet and sys.stderr.isatty(), args.criterion)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            search._fit(X, None, on_cell=progress)
        finally:
            progress.close()
        seconds = time.perf_counter() - start
    for warning in caught:
        message = " ".join(str(warning.message).split())
        print(f"fastem: warning: {message}", file=sys.stderr)

    criterion = args.criterion.upper()
    counts = args.n_components
    grid = f"{counts[0]}..{counts[-1]}" if counts == list(
        range(counts[0], counts[-1] + 1)) else ",".join(map(str, counts))
    lines = [
        f"fastem {__version__}: model selection by {criterion} (lower is better; "
        f"mclust's {criterion} = -{criterion})",
        f"data     {source}: {n_samples} samples x {n_features} features",
        f"grid     n_components {grid} x {', '.join(args.covariance_types)}; "
        f"init_params={args.init_params!r}, n_init={args.n_init}, "
        f"random_state={args.random_state}",
        f"time     {seconds:.3f} s for {len(search.results_)} cells",
        "",
        criterion,
        *_selection_table(search),
        "",
        f"best     {search.n_components_} components, covariance_type="
        f"{search.covariance_type_!r}, {criterion} {search.criterion_:.6f} (marked *)",
    ]
    not_ok = [r for r in search.results_ if r["status"] != "ok"]
    if not_ok:
        lines.append("not fitted or degenerate (! in the table):")
        lines += [
            f"  {r['n_components']} {r['covariance_type']}: {r['status']}: "
            f"{r['reason']}"
            for r in not_ok
        ]
    print("\n".join(lines))
    if args.output is not None:
        from fastem._io import save_model

        save_model(_with_feature_names(search.best_estimator_, header), args.output)
        print(f"\nmodel written to {args.output} (read it with fastem.load_model)")
    if args.plot is not None:
        _select_plot(search, X, feature_names, args.plot)
        print(f"plot written to {args.plot}")
    return EXIT_OK


def _check_plot_format(path):
    """Before the search: matplotlib is there and writes files like ``path`` (by its
    extension; none means PNG)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise InputError(
            "--plot needs matplotlib; install it with pip install \"fastem[plot]\""
        ) from None
    extension = Path(path).suffix[1:].lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if extension and extension not in formats:
        raise InputError(
            f"cannot write --plot {path}: matplotlib writes no .{extension} files; "
            f"use one of {', '.join('.' + name for name in sorted(formats))}"
        )
    if extension == "pgf":  # drawn through a TeX system, which may not be installed
        import shutil

        import matplotlib

        texsystem = matplotlib.rcParams["pgf.texsystem"]
        if shutil.which(texsystem) is None:
            raise InputError(
                f"cannot write --plot {path}: matplotlib writes .pgf files with "
                f"{texsystem}, which is not installed; use .pdf or .svg"
            )


def _select_plot(search, X, feature_names, path):
    from matplotlib.figure import Figure

    from fastem import plot

    figure = Figure(figsize=(11, 4.5), layout="constrained")
    if X.shape[1] >= 2:
        curves, points = figure.subplots(1, 2)
    else:
        curves, points = figure.subplots(1, 1), None
    plot.criterion_curves(search, ax=curves)
    if points is not None:
        plot.clusters(search.best_estimator_, X, ax=points)
        points.set_xlabel(feature_names[0])
        points.set_ylabel(feature_names[1])
    figure.savefig(path, dpi=90)


def _run_predict(args):
    if args.output is not None:
        _check_output_directory(args.output, "--output")
    from fastem._io import load_model

    model = load_model(args.model)
    X, header = load_data(args.file, args.delimiter)
    X = _columns_by_name(X, header, model, args)
    expected = int(model.n_features_in_)
    if X.shape[1] != expected:
        raise InputError(
            f"{args.file} has {_plural(X.shape[1], 'feature')} (columns), but the "
            "model "
            f"in {args.model} was fitted on {expected}; give data with the same "
            "columns in the same order"
        )
    from fastem._warmup import kernels_need_compiling

    if kernels_need_compiling(X.shape[0], X.shape[1], len(model.weights_),
                              model.covariance_type, inference=True,
                              dtype=_kernel_dtype(X)):
        print(COMPILING, file=sys.stderr, flush=True)
    labels = model.predict(X)
    columns = ["label"]
    values = [labels.astype(np.float64)[:, np.newaxis]]
    if args.proba:
        columns += [f"proba_{k}" for k in range(model.n_components)]
        values.append(model.predict_proba(X))
    table = np.hstack(values)
    handle = sys.stdout if args.output is None else open(
        args.output, "w", encoding="utf-8", newline=""
    )
    try:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for label, row in zip(labels, table, strict=True):
            writer.writerow([int(label), *(repr(float(v)) for v in row[1:])])
    finally:
        if handle is not sys.stdout:
            handle.close()
    if args.output is not None:
        print(f"{_plural(len(labels), 'label')} written to {args.output}",
              file=sys.stderr)
    return EXIT_OK


def main(argv=None):
    """Run the ``fastem`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 2 for bad options or bad input (after printing one line
        ``fastem: error: ...`` on stderr), 130 when interrupted (Ctrl-C), 141 when
        the reader of standard output closed it (128 + SIGPIPE, as a shell
        reports).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except InputError as exc:
        message = str(exc)
    except BrokenPipeError:
        # whoever read stdout has gone (`fastem predict ... | head`): stop quietly,
        # and keep Python's flush at exit from failing on the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        target = exc.filename if exc.filename is not None else ""
        reason = exc.strerror or str(exc)
        message = f"cannot access {target}: {reason}" if target else reason
    except (ValueError, TypeError, ArithmeticError) as exc:
        message = str(exc) or type(exc).__name__
    except KeyboardInterrupt:
        print("fastem: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    message = " ".join(message.split())  # always one line
    print(f"fastem: error: {message}", file=sys.stderr)
    return EXIT_USAGE
