"""Make the mclust reference table that tests/test_selection.py checks fastem against.

Needs R with mclust (Debian: ``apt-get install r-cran-mclust``) and scikit-learn.
Run from the repository root:

    python tests/data/mclust/make_reference.py

It writes, next to this file,

- ``banknote.csv``, ``diabetes.csv``, ``thyroid.csv``: the numeric columns of
  mclust's data sets of those names (the tests read them; the others come from
  fastem and scikit-learn, which bundle them);
- ``reference.csv``: for every data set, mclust model (VII, VVI, EEE, VVV) and
  G = 1..9, mclust's BIC and ICL in mclust's sign (higher is better; NA where
  mclust could not fit the model), from ``mclustBIC`` and ``mclustICL`` with
  mclust's defaults (hierarchical start on the 'SVD'-transformed data);
- ``hc_<name>.csv`` for every data set: mclust's hierarchical partitions
  ``hclass(hc(X, modelName = "EII", use = "SVD"), 1:9)``, the tree fastem's
  ``init_params="hc"`` start builds (mclust's own default start merges by
  'VVV' instead; every data set has at most 2000 rows, so no subsample): one
  column per G = 1..9, one row per sample in the data's order, mclust's labels
  1..G. ``fastem.selection.hc_labels`` must give the same partitions up to
  renaming of the labels.

Tests never need R: they read these files.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris, load_wine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))
from fastem.datasets import FAITHFUL_FEATURES, load_faithful  # noqa: E402

MODELS = ("VII", "VVI", "EEE", "VVV")
FROM_MCLUST = ("banknote", "diabetes", "thyroid")

R_SCRIPT = r"""
suppressPackageStartupMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
out <- args[1]
datadir <- args[2]
# the numeric columns of mclust's own data sets, for the tests
for (name in c("banknote", "diabetes", "thyroid")) {
  data(list = name)
  write.csv(get(name)[, -1], file.path(datadir, paste0(name, ".csv")),
            row.names = FALSE)
}
sets <- args[-(1:2)]
models <- c("VII", "VVI", "EEE", "VVV")
rows <- list()
for (path in sets) {
  name <- sub("\\.csv$", "", basename(path))
  X <- as.matrix(read.csv(path))
  bic <- mclustBIC(X, G = 1:9, modelNames = models, verbose = FALSE)
  icl <- mclustICL(X, G = 1:9, modelNames = models, verbose = FALSE)
  # the partitions of the hierarchical start, cut at G = 1..9 (not a subsample:
  # every data set here has fewer rows than mclust's default subset of 2000)
  stopifnot(nrow(X) <= 2000)
  tree <- hc(X, modelName = "EII", use = "SVD")
  partitions <- hclass(tree, 1:9)
  colnames(partitions) <- paste0("G", 1:9)
  write.csv(partitions, file.path(datadir, paste0("hc_", name, ".csv")),
            row.names = FALSE)
  for (m in models) for (g in 1:9) {
    rows[[length(rows) + 1]] <- data.frame(
      dataset = name, model = m, G = g,
      BIC = bic[as.character(g), m], ICL = icl[as.character(g), m])
  }
}
table <- do.call(rbind, rows)
write.csv(table, out, row.names = FALSE, na = "NA")
cat(R.version.string, "; mclust", as.character(packageVersion("mclust")), "\n")
"""


def main():
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        sets = {
            "faithful": (load_faithful(), FAITHFUL_FEATURES),
            "iris": (load_iris().data, load_iris().feature_names),
            "wine": (load_wine().data, load_wine().feature_names),
        }
        paths = []
        for name, (X, columns) in sets.items():
            path = scratch / f"{name}.csv"
            np.savetxt(
                path,
                X,
                delimiter=",",
                header=",".join(columns),
                comments="",
                fmt="%.17g",
            )
            paths.append(str(path))
        script = scratch / "reference.R"
        script.write_text(R_SCRIPT)
        out = scratch / "reference.csv"
        # mclust's own data sets are written first, then fitted from those files
        mclust_paths = [str(HERE / f"{name}.csv") for name in FROM_MCLUST]
        run = subprocess.run(
            ["Rscript", str(script), str(out), str(HERE), *paths, *mclust_paths],
            check=True,
            capture_output=True,
            text=True,
        )
        version = run.stdout.strip()
        body = out.read_text()
    header = (
        "# mclust's BIC and ICL (mclust's sign: higher is better) for models\n"
        "# VII, VVI, EEE, VVV and G = 1..9, mclust defaults. Made by\n"
        "#   python tests/data/mclust/make_reference.py\n"
        f"# with {version}\n"
    )
    (HERE / "reference.csv").write_text(header + body)
    print(f"wrote {HERE / 'reference.csv'} ({version})")


if __name__ == "__main__":
    main()
