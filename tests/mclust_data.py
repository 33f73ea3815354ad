"""mclust's reference table, its hierarchical partitions and the data sets they were
computed on (no R needed).

``tests/data/mclust/reference.csv`` and ``tests/data/mclust/hc_<name>.csv`` are made
by ``tests/data/mclust/make_reference.py``.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "mclust"
DATASETS = ("faithful", "iris", "wine", "banknote", "diabetes", "thyroid")
#: fastem's covariance type -> mclust's model name
MODEL_OF_TYPE = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
TYPE_OF_MODEL = {model: name for name, model in MODEL_OF_TYPE.items()}


def load_dataset(name):
    """The data set as mclust saw it: ndarray of shape (n_samples, n_features)."""
    if name == "faithful":
        from fastem.datasets import load_faithful

        return load_faithful()
    if name == "iris":
        from sklearn.datasets import load_iris

        return np.ascontiguousarray(load_iris().data)
    if name == "wine":
        from sklearn.datasets import load_wine

        return np.ascontiguousarray(load_wine().data)
    if name in ("banknote", "diabetes", "thyroid"):
        return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
    raise ValueError(f"unknown data set {name!r}; one of {DATASETS}")


@dataclass
class Reference:
    """mclust's values for one data set, in scikit-learn's sign (lower is better)."""

    values: dict  # (criterion, model, G) -> value, NaN where mclust had NA

    def best(self, criterion):
        """((model, G), value) of mclust's choice by ``criterion`` ('bic' or 'icl')."""
        candidates = [
            (value, key[1:])
            for key, value in self.values.items()
            if key[0] == criterion and not math.isnan(value)
        ]
        value, key = min(candidates)
        return key, value


def mclust_reference(name):
    values = {}
    with open(DATA / "reference.csv", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        for row in rows:
            if row["dataset"] != name:
                continue
            for criterion, column in (("bic", "BIC"), ("icl", "ICL")):
                text = row[column]
                value = math.nan if text == "NA" else -float(text)
                values[(criterion, row["model"], int(row["G"]))] = value
    if not values:
        raise ValueError(f"no mclust reference for {name!r}")
    return Reference(values)


def mclust_hc_partitions(name):
    """mclust's ``hclass(hc(X, modelName="EII", use="SVD"), 1:9)`` for the data set.

    Returns a dict: ``partitions[k]`` is an int ndarray of shape (n_samples,),
    mclust's labels 1..k of the rows in the data's order, for k = 1..9.
    """
    path = DATA / f"hc_{name}.csv"
    with open(path, encoding="utf-8") as handle:
        columns = next(csv.reader(handle))
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.intp, ndmin=2)
    return {int(column.lstrip("G")): table[:, j] for j, column in enumerate(columns)}
