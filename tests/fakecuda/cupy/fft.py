"""cupy.fft on the host, through scipy.fft (which keeps float32 as complex64, like cuFFT)."""

import numpy
import scipy.fft


def _device(array):
    from . import _device as to_device
    return to_device(numpy.asarray(array))


def _check(name, a):
    from . import _check_on_device
    _check_on_device(f"fft.{name}", (a,))


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    _check("rfft2", a)
    return _device(scipy.fft.rfft2(numpy.asarray(a), s=s, axes=axes, norm=norm))


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    _check("irfft2", a)
    return _device(scipy.fft.irfft2(numpy.asarray(a), s=s, axes=axes, norm=norm))
