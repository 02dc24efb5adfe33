"""Convolution algorithm implementations, one module per algorithm and backend.

Kernels implement the contract described in :mod:`convbench.registry` and know nothing of the
harness: they read a problem's attributes (``n, c, h, w, k, r, s, stride, padding, dilation, groups``)
and work on numpy (CPU) or CuPy (GPU) arrays.
"""
