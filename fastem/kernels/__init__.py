"""fastem's compiled kernels: all of its numba code lives here.

Nothing outside this package imports numba. The kernel modules are all the
``.py`` files of this directory (see :mod:`fastem.kernels.cache`, whose guard
against stale cached kernels digests them); import them by name, e.g.
``from fastem.kernels import estep``.
"""
