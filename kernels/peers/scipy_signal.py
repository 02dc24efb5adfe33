"""``scipy.signal.correlate`` as the general-purpose-library peer.

Notes
-----
For every (image, output channel), the group's input channels are correlated with that filter as one
3-D ``'valid'`` correlation, which sums over channels; scipy picks direct or FFT by its own heuristic
(:func:`scipy.signal.choose_conv_method`, decided once in ``prepare``). Stride is applied by keeping
every ``stride``-th output, dilation by dilating the filter. A problem whose cost per call -- one
(image, channel) correlation timed on the spot, times N * K -- exceeds ``CALL_BUDGET_S`` is
unsupported with that estimate, so a sweep stays within its time budget.
"""

import functools
import time

import numpy as np
import scipy.signal

CALL_BUDGET_S = 1.0


def _dilated(w, dilation):
    k, c, r, s = w.shape
    dh, dw = dilation
    out = np.zeros((k, c, (r - 1) * dh + 1, (s - 1) * dw + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _operands(problem):
    """One (image, output channel) pair's operands: padded input of a group, one dilated filter."""
    c_per_group = problem.c // problem.groups
    padded = np.zeros((c_per_group, problem.h + 2 * problem.padding[0],
                       problem.w + 2 * problem.padding[1]), dtype=np.float32)
    filters = _dilated(np.zeros((1, c_per_group, problem.r, problem.s), np.float32), problem.dilation)
    return padded, filters[0]


@functools.lru_cache(maxsize=256)
def estimated_seconds(problem):
    """One call's cost: one (image, channel) correlation timed here, times N * K."""
    padded, filt = _operands(problem)
    method = scipy.signal.choose_conv_method(padded, filt, mode="valid")
    scipy.signal.correlate(padded, filt, mode="valid", method=method)  # warm-up (FFT plans)
    start = time.perf_counter()
    scipy.signal.correlate(padded, filt, mode="valid", method=method)
    return (time.perf_counter() - start) * problem.n * problem.k


class ScipySignal:
    def supports(self, problem):
        seconds = estimated_seconds(problem)
        if seconds > CALL_BUDGET_S:
            return (f"scipy.signal would take about {seconds:.1f} s per call (one channel timed, "
                    f"times N*K), over the {CALL_BUDGET_S:g} s per-call budget for peers")
        return None

    def workspace_bytes(self, problem):
        hp, wp = problem.h + 2 * problem.padding[0], problem.w + 2 * problem.padding[1]
        return 4 * problem.n * problem.c * hp * wp

    def prepare(self, problem, w):
        groups = problem.groups
        k_per_group, c_per_group = problem.k // groups, problem.c // groups
        filters = _dilated(np.asarray(w, dtype=np.float32), problem.dilation)
        (ph, pw), (sh, sw) = problem.padding, problem.stride
        padded = np.zeros((problem.n, problem.c, problem.h + 2 * ph, problem.w + 2 * pw), np.float32)
        method = scipy.signal.choose_conv_method(padded[0, :c_per_group], filters[0], mode="valid")
        p, q = problem.p, problem.q

        def run(x):
            padded[:, :, ph:ph + problem.h, pw:pw + problem.w] = x
            out = np.empty(problem.output_shape, dtype=np.float32)
            for n in range(problem.n):
                for k in range(problem.k):
                    g = k // k_per_group
                    full = scipy.signal.correlate(padded[n, g * c_per_group:(g + 1) * c_per_group],
                                                  filters[k], mode="valid", method=method)
                    out[n, k] = full[0, ::sh, ::sw][:p, :q]
            return out

        return run


scipy_signal = ScipySignal()
