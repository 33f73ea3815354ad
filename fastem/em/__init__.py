"""The one EM loop, and what it reads.

:mod:`fastem.em.driver` holds the loop with its initialisation, restarts and
singular-covariance fallback (with :mod:`fastem.em.kmeans_plusplus` and
:mod:`fastem.em.draws` for the starts); :mod:`fastem.em.sources` the sources of
row blocks it reads: in memory, streamed (memmap, h5py, zarr), and Dask
(:mod:`fastem.em.dask_source`, imported only when X is a Dask array).
"""
