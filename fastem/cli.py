"""The ``fastem`` command.

``fastem fit`` fits the bundled Old Faithful data (2 components, full
covariances) and prints a summary; ``fastem fit FILE`` fits a CSV or ``.npy``
file; ``fastem warmup`` compiles the kernels ahead of the first fit. Errors in the input end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import math
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
            "time. Without FILE, fit the bundled Old Faithful data."
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
        help="threads for the numba kernels (default: numba's setting)",
    )
    fit.add_argument(
        "--delimiter",
        default=",",
        help="CSV field separator (default: ',')",
    )
    fit.add_argument(
        "-o",
        "--output",
        metavar="MODEL.json",
        help="also write the fitted model to this JSON file (fastem.load_model)",
    )
    fit.set_defaults(handler=_run_fit)
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
    skip_lines, feature_names = _csv_header(path, delimiter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "input contained no data"
            X = np.loadtxt(
                path,
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
        return _read_csv_checked(path, delimiter)
    return np.ascontiguousarray(X), feature_names


def _csv_header(path, delimiter):
    """(lines to skip, header cells) if the first non-blank row is a header."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
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


def _read_csv_checked(path, delimiter):
    """Careful CSV reader: rows parsed one by one into a flat float64 buffer."""
    values = array("d")
    feature_names = None
    n_features = None
    n_rows = 0
    with open(path, newline="", encoding="utf-8-sig") as handle:
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
            raise InputError(
                f"{path} is not a UTF-8 text file; give a CSV file or a .npy array"
            ) from None
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
            raise InputError(
                f"{where}, column {column} is {cell!r}; "
                "remove or impute rows with NaN or infinite values"
            )
        values.append(value)


def _read_npy(path):
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:  # pickled object arrays, damaged files
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
    log_likelihood = float(np.sum(model.score_samples(X)))
    lines = [
        f"fastem {__version__}: Gaussian mixture fitted by EM",
        f"data             {source}: {n_samples} samples x {n_features} features",
        f"model            {n_components} components, "
        f"covariance_type={model.covariance_type!r}",
        f"initialisation   init_params={model.init_params!r}, "
        f"n_init={model.n_init}, random_state={model.random_state}",
        f"converged        {'yes' if model.converged_ else 'NO'} "
        f"(n_iter={model.n_iter_}, max_iter={model.max_iter}, tol={model.tol:g})",
        f"fit time         {fit_seconds:.3f} s",
        f"log-likelihood   {log_likelihood:.6f} total, "
        f"{log_likelihood / n_samples:.6f} per sample",
        f"BIC              {model.bic(X):.6f}",
        f"AIC              {model.aic(X):.6f}",
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


def _run_fit(args):
    if args.output is not None:
        directory = Path(args.output).resolve().parent
        if not directory.is_dir():
            raise InputError(
                f"cannot write --output {args.output}: directory {directory} "
                "does not exist"
            )
    if args.file is None:
        from fastem.datasets import FAITHFUL_FEATURES, load_faithful

        X = load_faithful()
        feature_names = list(FAITHFUL_FEATURES)
        source = "Old Faithful (bundled)"
    else:
        X, feature_names = load_data(args.file, args.delimiter)
        source = args.file
    n_samples, n_features = X.shape
    if feature_names is None:
        feature_names = [f"x{j + 1}" for j in range(n_features)]
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
    )
    from fastem._warmup import kernels_need_compiling

    if kernels_need_compiling(n_samples, n_features, args.n_components, args.covariance_type):
        print("fastem: compiling kernels, once per installation (or run 'fastem warmup')...",
              file=sys.stderr, flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        model.fit(X)
        fit_seconds = time.perf_counter() - start
    for warning in caught:
        message = " ".join(str(warning.message).split())
        print(f"fastem: warning: {message}", file=sys.stderr)

    print(_summary(model, X, feature_names, source, fit_seconds))
    if args.output is not None:
        from fastem._io import save_model

        save_model(model, args.output)
        print(f"\nmodel written to {args.output} (read it with fastem.load_model)")
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
        ``fastem: error: ...`` on stderr).
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
