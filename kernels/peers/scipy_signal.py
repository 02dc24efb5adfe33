"""``scipy.signal.correlate`` as the general-purpose-library peer.

Notes
-----
For every (image, output channel), the group's input channels are correlated with that filter as one
3-D ``'valid'`` correlation, which sums over channels; scipy picks direct or FFT by its own heuristic
(:func:`scipy.signal.choose_conv_method`, decided once in ``prepare``). Stride is applied by keeping
every ``stride``-th output, dilation by dilating the filter. A problem whose estimated cost per call
exceeds ``CALL_BUDGET_S`` is unsupported with that estimate, so a sweep stays within its time budget.

The estimate is a model, not a timing: the sweep, the case process and every pyperf worker decide
support separately, and a timed estimate near the budget came out on both sides of it on a noisy
machine (four cases of one default run failed in a worker that found the problem "unsupported").
The rates are those of ``scipy.signal.correlate`` on the default set's layers, measured on the
2-core AMD EPYC VM (scipy 1.17): its direct method at 0.09-0.12 GFLOP/s (per-channel-pair loops),
its FFT method at 3.9-7.2 G "flop" per second of the 2.5 M log2 M count of three transforms.
"""

import functools
import math

import numpy as np
import scipy.fft
import scipy.signal

CALL_BUDGET_S = 1.0
DIRECT_FLOPS_PER_S = 0.1e9
FFT_FLOPS_PER_S = 5e9


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
    """One call's cost from the model above: N * K correlations with scipy's chosen method."""
    padded, filt = _operands(problem)
    method = scipy.signal.choose_conv_method(padded, filt, mode="valid")
    if method == "direct":
        outputs = (padded.shape[1] - filt.shape[1] + 1) * (padded.shape[2] - filt.shape[2] + 1)
        seconds = 2 * filt.size * outputs / DIRECT_FLOPS_PER_S
    else:
        size = math.prod(scipy.fft.next_fast_len(a + b - 1, True)
                         for a, b in zip(padded.shape, filt.shape))
        seconds = 3 * 2.5 * size * math.log2(size) / FFT_FLOPS_PER_S
    return seconds * problem.n * problem.k


class ScipySignal:
    def supports(self, problem):
        seconds = estimated_seconds(problem)
        if seconds > CALL_BUDGET_S:
            return (f"scipy.signal would take about {seconds:.1f} s per call (estimated from its "
                    f"operation count), over the {CALL_BUDGET_S:g} s per-call budget for peers")
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
