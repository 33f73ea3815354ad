"""Fits and inference on a ``dask.array.Array`` (imported only when one is given).

Every pass over the data is one graph: X is rechunked along rows to whole
blocks of the fit (and to whole rows), each chunk is a task that runs a
chunk function of ``_sources`` on its rows (the serial block kernels, one
thread per task: workers get their threads from dask), and the per-block
results come back to the calling process, which combines them in block
order. The pass's parameters (the kernels' inputs, a few KB) are one shared
key of the graph, not copied into every task. The graph runs on the active
``distributed.Client`` if there is one, else on dask's default scheduler.

Because the per-block results depend only on the block's rows and the order
of combination only on the block index, a Dask fit gives the same bits as an
in-memory one, for any number of workers or threads, completion order, or
retried task (after a worker is lost, say).
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from fastem.em import sources as _sources
from fastem.kernels.threads import thread_limit


def _check_chunk(array, shape, first_row, name):
    """A computed chunk has the shape the Dask array's chunks declare. dask does not
    check it (a wrong ``shape`` given to ``da.from_delayed``, or ``chunks`` to
    ``map_blocks``), and the kernels, which have no bounds checks, would read or
    write past their arrays."""
    if np.shape(array) != shape:
        raise ValueError(
            f"The Dask array's chunk of {name} at rows {first_row} to "
            f"{first_row + shape[0] - 1} computed to shape {np.shape(array)}, but its "
            f"chunks declare {shape}: its metadata (chunks or shape, as given to "
            "da.from_delayed or map_blocks, say) does not match its data."
        )


def _check_chunk_at(array, location, name):
    """``_check_chunk`` of a chunk at ``location`` (map_blocks' ``array-location``:
    a (start, stop) per axis); returns its first row."""
    first_row = location[0][0]
    _check_chunk(array, tuple(stop - start for start, stop in location), first_row,
                 name)
    return first_row


def _checked_chunks(array, name):
    """``array`` whose chunks are checked against the shapes they declare as they
    are computed (``_check_chunk``; the fit's and inference's tasks check theirs)."""
    def check(chunk, block_info=None):
        _check_chunk_at(chunk, block_info[0]["array-location"], name)
        return chunk

    return array.map_blocks(check, dtype=array.dtype)


def run_chunk(function, X, sample_weight, first_row, block_size, dtype, exponent,
              weight_exponent, n_rows, n_features, own, shared):
    """The task of one chunk: ``function`` on its rows, on one kernel thread, with the
    chunk's own arguments ``own`` (a tuple) before the pass's ``shared`` ones."""
    if X is not None:
        _check_chunk(X, (n_rows, n_features), first_row, "X")
        X = _sources.as_float_rows(X, dtype, first_row)
        if exponent:
            X = np.ldexp(X, exponent).astype(dtype, copy=False)
    if sample_weight is None:
        sample_weight = np.ones(n_rows)
    else:
        _check_chunk(sample_weight, (n_rows,), first_row, "sample_weight")
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if weight_exponent:
            sample_weight = np.ldexp(sample_weight, -weight_exponent)
    with thread_limit(1):
        return function(X, sample_weight, first_row, block_size, *own, *shared)


def _distributed_client(tasks):
    """The distributed Client dask.compute would run ``tasks`` on, or None."""
    client = getattr(dask.base.get_scheduler(collections=list(tasks)), "__self__", None)
    return client if type(client).__module__.startswith("distributed") else None


def _first_failure(tasks):
    """(index, error) of the first task that fails when run alone, in order; (None,
    None) if none does (the failure did not come back)."""
    for index, task in enumerate(tasks):
        try:
            dask.compute(task)
        except Exception as error:
            return index, error
    return None, None


def _picked(array, indices, name):
    """``array[indices]`` (sorted indices) computed. A failure other than a ValueError,
    TypeError or ArithmeticError raises DataReadError naming the first of the array's
    row chunks whose picked rows cannot be computed (each tried alone, in order)."""
    try:
        return array[indices].compute()
    except (ValueError, TypeError, ArithmeticError):
        raise
    except Exception as error:
        failure, where = error, f"{len(indices)} picked rows"
        bounds = np.cumsum((0, *array.chunks[0]))
        for first, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            chosen = indices[(indices >= first) & (indices < stop)]
            if len(chosen):
                try:
                    array[chosen].compute()
                except Exception as chunk_error:
                    failure, where = chunk_error, f"rows {first} to {stop - 1}"
                    break
        raise _sources.DataReadError(
            f"Reading {where} of {name} failed: {type(failure).__name__}: {failure} "
            "(rows picked for the start). Check that the data is complete and readable."
        ) from failure


def _aligned_chunks(chunks, block_size):
    """Whether row chunks all hold whole blocks (the last may be short)."""
    return all(size % block_size == 0 for size in chunks[:-1])


class DaskSource(_sources.ChunkedSource):
    """A Dask array of rows (and optional Dask or array-like weights)."""

    def __init__(self, X, sample_weight=None, dtype=None, exponent=0, weight_exponent=0):
        self.X = X
        self.shape = (int(X.shape[0]), int(X.shape[1]))
        self.dtype = np.dtype(dtype if dtype is not None else X.dtype)
        if sample_weight is not None and not _sources.is_dask_array(sample_weight):
            sample_weight = da.from_array(np.asarray(sample_weight, dtype=np.float64),
                                          chunks=(X.chunks[0],))
        self.sample_weight = sample_weight
        self.exponent = exponent
        self.weight_exponent_ = weight_exponent
        self._rechunked = {}

    def _with(self, **changes):
        fields = dict(sample_weight=self.sample_weight, dtype=self.dtype,
                      exponent=self.exponent, weight_exponent=self.weight_exponent_)
        fields.update(changes)
        source = DaskSource(self.X, **fields)
        source._rechunked = self._rechunked
        return source

    def scaled(self, exponent):
        return self._scaled_summary(self._with(exponent=self.exponent + exponent), exponent)

    def with_weight_exponent(self, weight_exponent):
        source = self._with(weight_exponent=weight_exponent)
        source.summary = self.summary
        return source

    def aligned(self, block_size):
        """(X, sample_weight) rechunked to whole rows and row chunks of whole blocks.

        Chunks that already hold whole blocks are kept; others become chunks of
        about the same size rounded to whole blocks (a chunking that cannot
        line up with the blocks costs a rechunk in every pass: persist the
        rechunked array to avoid it).
        """
        key = block_size
        if key not in self._rechunked:
            X = self.X
            rows = X.chunks[0]
            if len(X.chunks[1]) != 1 or not _aligned_chunks(rows, block_size or 1):
                target = rows[0] if rows else 1
                if block_size:
                    target = max(block_size, round(target / block_size) * block_size)
                X = X.rechunk({0: target, 1: -1})
            weights = self.sample_weight
            if weights is not None and weights.chunks[0] != X.chunks[0]:
                weights = weights.rechunk((X.chunks[0],))
            self._rechunked[key] = (X, weights)
        return self._rechunked[key]

    def _tasks(self, function, block_size, args, weights_only=False, own=None):
        """One delayed run_chunk per row chunk; ``own``: a tuple of arguments per
        chunk (passed before ``args``, which are one shared key)."""
        X, weights = self.aligned(block_size)
        shared = dask.delayed(tuple(args), traverse=False, pure=True)
        x_blocks = X.to_delayed().ravel()
        w_blocks = weights.to_delayed().ravel() if weights is not None else None
        call = dask.delayed(run_chunk, pure=True)
        tasks = []
        first_row = 0
        for index, n_rows in enumerate(X.chunks[0]):
            tasks.append(call(
                function, None if weights_only else x_blocks[index],
                None if w_blocks is None else w_blocks[index], first_row, block_size,
                self.dtype, self.exponent, self.weight_exponent_, n_rows,
                self.shape[1], () if own is None else own[index], shared,
            ))
            first_row += n_rows
        return tasks

    def map_chunks(self, function, block_size, *args, weights_only=False):
        """One graph: ``function`` on every chunk; results in row order."""
        return self._compute(function, block_size,
                             self._tasks(function, block_size, args, weights_only),
                             weights_only)

    def map_chunks_drawing(self, function, block_size, random_state, draws_per_row,
                           *args):
        """``map_chunks`` whose function draws ``draws_per_row`` uniform doubles per
        row from a RandomState (its first argument after ``block_size``), in row order.

        Each task gets the state ``random_state`` has at the task's first row
        (``get_state()``: 2.5 KB) and draws its rows' numbers itself; the client
        advances ``random_state`` past each chunk's draws without keeping them
        (``_sources.skip_draws``: a piece at a time), so it ends where one draw
        for all the rows leaves it. Sending the numbers instead would cost
        8 * draws_per_row bytes per row, all held on the client while the graph
        is built and sent; a state costs the same whatever the chunk's rows. The
        price is generating the numbers twice (client and worker), a few ns each.
        """
        X, _ = self.aligned(block_size)
        states = []
        for n_rows in X.chunks[0]:
            states.append((random_state.get_state(),))
            _sources.skip_draws(random_state, n_rows * draws_per_row)
        return self._compute(function, block_size,
                             self._tasks(function, block_size, args, own=states))

    def _compute(self, function, block_size, tasks, weights_only=False):
        """The tasks' results in row order, as one graph.

        A task that fails with anything but a ValueError, TypeError or
        ArithmeticError (raised as they are) raises DataReadError naming the
        first failed chunk in row order and, in it, the first block whose rows
        cannot be read (see _read_error). On a distributed Client the tasks run
        as futures, so the failed ones are known; on dask's local schedulers,
        which stop at the first failure without saying which task it was, the
        chunks are run again one at a time, in order, to find it (only after a
        failure).
        """
        client = _distributed_client(tasks)
        if client is None:
            try:
                return iter(dask.compute(*tasks))
            except (ValueError, TypeError, ArithmeticError):
                raise
            except Exception as error:
                index, failure = _first_failure(tasks)
                failure = error if failure is None else failure
                raise self._read_error(function, block_size, index, failure,
                                       weights_only) from failure
        from distributed import wait

        futures = client.compute(list(tasks))
        try:
            wait(futures)
            for index, future in enumerate(futures):
                if future.status == "error":
                    failure = future.exception()
                    if isinstance(failure, (ValueError, TypeError, ArithmeticError)):
                        raise failure
                    raise self._read_error(function, block_size, index, failure,
                                           weights_only) from failure
            try:
                return iter(client.gather(futures))
            except Exception as error:  # lost or cancelled since
                raise self._read_error(function, block_size, None, error,
                                       weights_only) from error
        finally:
            for future in futures:
                future.release()

    def _read_error(self, function, block_size, index, error, weights_only=False):
        """A DataReadError for a failed task of chunk ``index`` (None: not known).

        Names the first block of the chunk whose rows of X (unless the pass read
        only the weights), then of the weights, cannot be computed on their own,
        as a streamed source does; else the chunk's blocks; else the pass.
        """
        name = function.__name__
        if index is None:
            return _sources.DataReadError(
                f"A Dask task of the pass {name} failed: "
                f"{type(error).__name__}: {error}"
            )
        chunks = self.aligned(block_size)[0].chunks[0]
        first = sum(chunks[:index])
        stop = first + chunks[index]
        # the arrays as given, not rechunked: a block's rows then read only the
        # source chunks they lie in, as a streamed read of them does
        arrays = [] if weights_only else [("X", self.X)]
        if self.sample_weight is not None:
            arrays.append(("sample_weight", self.sample_weight))
        for array_name, array in arrays:
            for start in range(first, stop, block_size or stop - first):
                end = min(stop, start + (block_size or stop - first))
                try:
                    dask.compute(array[start:end])
                except Exception as block_error:
                    where = _sources.where_rows(start, end, block_size)
                    return _sources.DataReadError(
                        f"Reading {where} of {array_name} failed: "
                        f"{type(block_error).__name__}: {block_error} (in a Dask "
                        f"task of the pass {name}). Check that the data is complete "
                        "and readable."
                    )
        where = _sources.where_rows(first, stop, block_size)
        return _sources.DataReadError(
            f"The Dask task of {where} in the pass {name} failed: "
            f"{type(error).__name__}: {error}"
        )

    def rows(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return np.empty((0, self.n_features), dtype=self.dtype)
        X = np.ascontiguousarray(_picked(self.X, indices, "X"), dtype=self.dtype)
        if self.exponent:
            X = np.ldexp(X, self.exponent).astype(self.dtype, copy=False)
        return X

    def weights_at(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        if self.sample_weight is None:
            return np.ones(len(indices))
        weights = np.asarray(_picked(self.sample_weight, indices, "sample_weight"),
                             dtype=np.float64)
        if self.weight_exponent_:
            weights = np.ldexp(weights, -self.weight_exponent_)
        return weights

    def _positive_rows(self, ranks, block_size):
        counts = list(self.map_chunks(_sources.chunk_positive_counts, block_size,
                                      weights_only=True))
        X, weights = self.aligned(block_size)
        before = np.concatenate([[0], np.cumsum(counts)])
        starts = np.concatenate([[0], np.cumsum(X.chunks[0])])
        found = []
        for index in np.unique(np.searchsorted(before, ranks, side="right") - 1):
            first, stop = int(starts[index]), int(starts[index + 1])
            try:
                chunk = np.asarray(weights.blocks[int(index)].compute(), dtype=np.float64)
            except (ValueError, TypeError, ArithmeticError):
                raise
            except Exception as error:
                raise _sources.DataReadError(
                    f"Reading {_sources.where_rows(first, stop, block_size)} of "
                    f"sample_weight failed: {type(error).__name__}: {error} (rows picked "
                    "for the start). Check that the data is complete and readable."
                ) from error
            found.append(_sources.chunk_positive_rows(
                None, chunk, int(starts[index]), block_size, ranks, int(before[index])))
        return np.concatenate(found)

    def materialise(self):
        X, weights = dask.compute(
            _checked_chunks(self.X, "X"),
            None if self.sample_weight is None
            else _checked_chunks(self.sample_weight, "sample_weight"))
        X = _sources.as_float_rows(X, self.dtype)
        if self.exponent:
            X = np.ldexp(X, self.exponent).astype(self.dtype, copy=False)
        weights = np.ones(self.n_samples) if weights is None else np.asarray(
            weights, dtype=np.float64)
        return _sources.MemorySource(X, weights)

    def estimate_lazy(self, what, parameters, covariance_type, block_size,
                      log_weights=None, small=False):
        """A lazy Dask array of chunk_estimate's results (rows of X's chunks)."""
        X, _ = self.aligned(block_size)
        shared = dask.delayed((what, parameters, covariance_type, log_weights, small),
                              traverse=False, pure=True)
        n_components = parameters.means.shape[0]
        if what in ("labels", "log_prob"):
            kwargs = dict(drop_axis=1,
                          dtype=np.int64 if what == "labels" else np.float64)
        else:
            kwargs = dict(chunks=(X.chunks[0], (n_components,)), dtype=np.float64)
        return da.map_blocks(_estimate_block, X, shared, block_size=block_size,
                             dtype_in=self.dtype, exponent=self.exponent, **kwargs)


def _estimate_block(X, shared, block_size, dtype_in, exponent, block_info=None):
    what, parameters, covariance_type, log_weights, small = shared
    first_row = 0
    if block_info is not None and 0 in block_info:
        first_row = _check_chunk_at(X, block_info[0]["array-location"], "X")
    X = _sources.as_float_rows(X, dtype_in, first_row)
    if exponent:
        X = np.ldexp(X, exponent).astype(dtype_in, copy=False)
    with thread_limit(1):
        return _sources.chunk_estimate(X, None, first_row, block_size, what, parameters,
                                       covariance_type, log_weights, small)
