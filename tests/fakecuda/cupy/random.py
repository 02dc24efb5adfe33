"""cupy.random on the host."""

import numpy


def standard_normal(size=None, dtype=numpy.float64):
    from . import _device
    return _device(numpy.random.default_rng().standard_normal(size, dtype=dtype))
