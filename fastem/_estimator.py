"""What fastem's mixture estimators share about where their data comes from.

:class:`fastem.GaussianMixture` and :class:`fastem.BayesianGaussianMixture`
fit from, and infer on, the same kinds of X (see ``fastem.em.sources``): an
array in memory, an array-like read block by block (``np.memmap``,
``h5py.Dataset``, ``zarr.Array``, ...) or a ``dask.array.Array``.
:class:`SourcesMixin` is the part of that which does not depend on the model.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from fastem import _validation
from fastem.em import driver as _driver
from fastem.em import sources as _sources
from fastem.kernels.threads import thread_limit


def is_source(X):
    """Whether X is read block by block (streamed or Dask) instead of into memory."""
    return _sources.is_streamable(X) or _sources.is_dask_array(X)


def parameter_shapes(covariance_type, n_components, n_features):
    """The shapes of a fitted model's ``weights_``, ``means_``, ``covariances_``,
    ``precisions_`` and ``precisions_cholesky_`` (scikit-learn's layouts)."""
    k, d = n_components, n_features
    factor = {"full": (k, d, d), "tied": (d, d), "diag": (k, d),
              "spherical": (k,)}[covariance_type]
    return {"weights_": (k,), "means_": (k, d), "covariances_": factor,
            "precisions_": factor, "precisions_cholesky_": factor}


def fitted_arrays(model, n_components, n_features):
    """``(name, value, expected shape)`` of each fitted parameter array of ``model``:
    those of :func:`parameter_shapes`, and for a variational mixture (a model with
    ``weight_concentration_``) ``mean_precision_``, ``degrees_of_freedom_`` (a scalar
    for 'tied': one shared Wishart, as scikit-learn's) and ``weight_concentration_``
    (the Dirichlet process's pair of arrays as ``[0]`` and ``[1]``)."""
    k = n_components
    shapes = parameter_shapes(model.covariance_type, k, n_features)
    arrays = [(name, getattr(model, name), shape) for name, shape in shapes.items()]
    if hasattr(model, "weight_concentration_"):
        arrays += [
            ("mean_precision_", model.mean_precision_, (k,)),
            ("degrees_of_freedom_", model.degrees_of_freedom_,
             () if model.covariance_type == "tied" else (k,)),
        ]
        concentration = model.weight_concentration_
        if isinstance(concentration, tuple):
            arrays += [(f"weight_concentration_[{i}]", part, (k,))
                       for i, part in enumerate(concentration)]
        else:
            arrays.append(("weight_concentration_", concentration, (k,)))
    return arrays


def check_fitted_shapes(model):
    """The fitted parameters' shapes (:func:`fitted_arrays`) agree with each other,
    with ``n_features_in_`` and with ``covariance_type``, which is the one they were
    fitted (or loaded) with (``_fitted_covariance_type``, where known).

    The kernels have no bounds checks: a model whose covariance_type was changed
    after fitting (``set_params``), or whose fitted attributes were replaced, would
    have them read and write outside its arrays. Called before every use of the
    fitted parameters (inference, a warm start, ``sample``); a few microseconds.
    """
    means = np.asarray(model.means_)
    n_features = getattr(model, "n_features_in_", None)
    if means.ndim != 2 or means.shape[1] != n_features:
        raise ValueError(
            f"The fitted means_ has shape {means.shape}, but the model was fitted on "
            f"{n_features} features: refit it."
        )
    for name, value, shape in fitted_arrays(model, *means.shape):
        actual = np.shape(value)
        if actual != shape:
            raise ValueError(
                f"covariance_type={model.covariance_type!r} with {means.shape[0]} "
                f"components of {means.shape[1]} features needs {name} of shape "
                f"{shape}, but the fitted one has shape {actual}: set covariance_type "
                "back to the one the model was fitted with, or refit."
            )
    # with as many components as features, 'tied' and 'diag' have the same shapes
    fitted_type = getattr(model, "_fitted_covariance_type", model.covariance_type)
    if fitted_type != model.covariance_type:
        raise ValueError(
            f"covariance_type={model.covariance_type!r}, but the model was fitted with "
            f"covariance_type={fitted_type!r}: set covariance_type back to "
            f"{fitted_type!r}, or refit."
        )


def fit_or_restore(estimator, fit, *args):
    """``fit(*args)``; if it raises (bad data or weights, no cell fitted, an
    interrupt), the estimator's attributes are put back as they were first."""
    saved = dict(vars(estimator))
    try:
        return fit(*args)
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


class SourcesMixin:
    """Fits from and inference on streamed and Dask X, for a mixture estimator.

    The estimator has ``n_components``, ``covariance_type``, ``chunk_size``
    and ``n_threads``, and defines ``_fit(X, sample_weight, labels)`` (which
    hands a streamed or Dask X to :meth:`_fit_source`), ``_fit_chunked(source,
    labels)`` (the fit of a source too large to read into memory, which starts
    with :meth:`_scan`) and ``_inference_model()``, the inference kernels'
    ``(parameters, covariance_type, log_weights)``.
    """

    def _block_size(self, X):
        """Rows per block: ``chunk_size``, else from X's shape and dtype only
        (``_driver.default_block_size``), so every source of X gets the same blocks."""
        if self.chunk_size is not None:
            # checked here too: set after a fit, a chunk_size of 0 or less ran no
            # block at all, and predict returned numpy's uninitialised output
            _validation._check_integer(self.chunk_size, "chunk_size", 1)
            return int(self.chunk_size)
        return _driver.default_block_size(
            X.shape[0], X.shape[1], self.n_components, self.covariance_type,
            np.dtype(X.dtype).itemsize,
        )

    def _fit_source(self, X, sample_weight, labels):
        """``_fit`` for data read block by block (streamed or Dask).

        Small data is read into memory and fitted as an ndarray (a Dask X's labels
        then made a Dask array of X's row chunks). Otherwise the
        checks run block by block (a fit that fails leaves the estimator as it was:
        _fit_or_restore).
        """
        source = _sources.open_source(X, sample_weight)
        n_samples, n_features = source.shape
        if n_samples < 2:
            raise ValueError(
                f"Found array with {n_samples} sample(s) (shape={source.shape}) while a "
                "minimum of 2 is required."
            )
        if n_features < 1:
            raise ValueError(
                f"Found array with {n_features} feature(s) (shape={source.shape}) while "
                f"a minimum of 1 is required by {type(self).__name__}."
            )
        if _driver.is_small(n_samples, n_features, self.n_components):
            memory = source.materialise()
            if memory.sample_weight is not None and sample_weight is not None:
                sample_weight = memory.sample_weight
            result = self._fit(memory.X, sample_weight, labels)
            if labels and _sources.is_dask_array(X):
                # labels of Dask data are a Dask array, small data too (as predict's
                # and as a larger array's fit_predict)
                import dask.array as da

                return da.from_array(result, chunks=(X.chunks[0],))
            return result
        return self._fit_chunked(source, labels)

    def _fit_or_restore(self, X, sample_weight, labels):
        """``_fit``; a fit that fails (bad data or weights, a warm start on data of
        another width, a singular covariance with ``on_singular='raise'``, a read
        error, an interrupt) leaves the estimator as it was. (The data checks set
        ``n_features_in_`` first: kept, it would let ``predict`` hand data of the
        new width to the kernels with the previous fit's parameters.)"""
        return fit_or_restore(self, self._fit, X, sample_weight, labels)

    def _check_warm_start(self, n_features):
        """A warm start continues the fitted parameters: their shape must fit X's
        features and ``n_components`` (and ``covariance_type``, checked where they
        are read: ``check_fitted_shapes``)."""
        fitted_components, fitted_features = np.shape(self.means_)
        if (fitted_components, fitted_features) != (self.n_components, n_features):
            raise ValueError(
                f"warm_start=True continues the previous fit, which had "
                f"{fitted_components} components and {fitted_features} features; now "
                f"n_components = {self.n_components} and X has {n_features} features. "
                "Set warm_start=False to start afresh."
            )

    def _scan(self, source):
        """The start of a chunked fit: ``n_features_in_`` (no feature names), one
        pass of checks over the blocks (kept as ``source.summary``) and the
        rows-of-positive-weight check. Returns the block size."""
        n_samples, n_features = source.shape
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = n_features
        block_size = self._block_size(source)
        summary = source.scan(block_size)
        _validation.check_n_present(summary.n_positive, n_samples, self.n_components)
        return block_size

    def _labels(self, source, block_size):
        """The most probable component of each row of a source under the fitted
        model: an ndarray (in memory, or streamed block by block) or a lazy Dask
        array."""
        parameters, covariance_type, log_weights = self._inference_model()
        if source.in_memory:
            return _driver.estimate_labels(source.X, parameters, covariance_type,
                                           block_size, log_weights)
        return _sources.estimate(source, "labels", parameters, covariance_type,
                                 block_size, log_weights)

    def _estimate_source(self, X, what):
        """Inference on a streamed or Dask X: ``_sources.estimate`` (an ndarray computed
        block by block, or a lazy Dask array); None for other X, and for small data,
        which is read into memory and takes the ordinary path (returned as ``X``)."""
        if not is_source(X):
            return None, X
        check_is_fitted(self)
        source = _sources.open_source(X)
        if source.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {source.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        small = _driver.is_small(source.shape[0], source.shape[1], self.n_components)
        if small and not _sources.is_dask_array(X):
            return None, source.materialise().X
        parameters, covariance_type, log_weights = self._inference_model()
        with thread_limit(self.n_threads):
            # small Dask data stays lazy, on the kernels of small data in memory
            return _sources.estimate(source, what, parameters, covariance_type,
                                     self._block_size(source), log_weights,
                                     small), None

    def _mean_score(self, X):
        """Mean of ``score_samples(X)`` as a float (computed by dask for a Dask X)."""
        log_prob = self.score_samples(X)
        if _sources.is_dask_array(log_prob):
            log_prob = log_prob.mean().compute()
        return float(log_prob.mean())
