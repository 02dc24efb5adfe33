"""Seeded input fills and the comparison of a kernel's output with the float64 reference.

Two fills, as benchdnn does:

``uniform``
    Inputs and weights uniform in [-1, 1]. The error is judged by the relative L2 norm against each
    algorithm's tolerance (see the registry for the numbers and where they came from).
``integer``
    Small integers chosen so that every product and every partial sum is an integer below 2**24, hence
    exact in float32 whatever the order of summation. Direct and im2col must then match the reference
    bit for bit; the transform algorithms (Winograd, FFT) are still judged by their tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILLS = ("uniform", "integer")
_FLOAT32_EXACT = 2 ** 24


def make_inputs(problem, seed=0, fill="uniform"):
    """Input and weights for ``problem``, reproducible from ``seed``: float32, C-contiguous."""
    rng = np.random.default_rng(seed)
    if fill == "uniform":
        x = rng.uniform(-1.0, 1.0, size=problem.input_shape).astype(np.float32)
        w = rng.uniform(-1.0, 1.0, size=problem.weight_shape).astype(np.float32)
    elif fill == "integer":
        terms = problem.terms_per_output
        # Largest magnitude m with terms * m * m < 2**24, capped at 4: every sum stays exact.
        bound = int(min(4, max(1, np.sqrt((_FLOAT32_EXACT - 1) / terms))))
        x = rng.integers(-bound, bound + 1, size=problem.input_shape).astype(np.float32)
        w = rng.integers(-bound, bound + 1, size=problem.weight_shape).astype(np.float32)
    else:
        raise ValueError(f"unknown fill {fill!r}; expected one of {', '.join(FILLS)}")
    return x, w


@dataclass(frozen=True)
class Check:
    """Outcome of comparing an output with the reference."""

    passed: bool
    rel_l2: float      # ||y - ref||_2 / ||ref||_2
    max_err: float     # max |y - ref| / max |ref|
    reason: str = ""


def typical_output_norm(problem, x, w):
    """The L2 norm the output of ``problem`` would have if no output read any padding.

    Each output sums ``C/groups * R * S`` products of an input and a weight; with independent values
    of mean zero its typical size is ``sqrt(terms) * rms(x) * rms(w)``. ``compare`` measures the
    error against this where the reference is zero everywhere.
    """
    terms = problem.terms_per_output
    rms_x = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    rms_w = float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) if w.size else 0.0
    return float(np.sqrt(np.prod(problem.output_shape) * terms)) * rms_x * rms_w


def compare(y, ref, tolerance, exact=False, scale=None):
    """Compare a kernel output ``y`` with the float64 reference ``ref``.

    Fails on a wrong shape or dtype, any NaN or Inf, a relative L2 error above ``tolerance``, or (with
    ``exact``) any element that differs at all.

    Where the reference is zero everywhere (a problem whose every output reads only padding) there
    is no norm to be relative to, yet the transform algorithms still leave rounding noise of the
    inputs' size there. The error is then measured against ``scale``, the norm a typical output
    would have (``typical_output_norm``), and ``max_err`` against that norm's average element;
    without ``scale`` it is taken as absolute.
    """
    y = np.asarray(y)
    if y.shape != ref.shape:
        return Check(False, float("nan"), float("nan"),
                     f"output shape {y.shape} differs from expected {ref.shape}")
    if y.dtype != np.float32:
        return Check(False, float("nan"), float("nan"), f"output dtype {y.dtype}, expected float32")
    bad = ~np.isfinite(y)
    if bad.any():
        return Check(False, float("nan"), float("nan"),
                     f"{int(bad.sum())} non-finite output values (NaN or Inf)")
    diff = y.astype(np.float64) - ref
    ref_norm = float(np.linalg.norm(ref))
    ref_max = float(np.abs(ref).max()) if ref.size else 0.0
    of_what = "relative L2 error"
    if not ref_norm and scale:
        ref_norm, ref_max = scale, scale / np.sqrt(ref.size)
        of_what = "the reference is zero everywhere: L2 error relative to a typical output's norm,"
    rel_l2 = float(np.linalg.norm(diff)) / ref_norm if ref_norm else float(np.linalg.norm(diff))
    max_err = float(np.abs(diff).max()) / ref_max if ref_max else float(np.abs(diff).max())
    if exact and max_err != 0.0:
        wrong = int(np.count_nonzero(diff))
        return Check(False, rel_l2, max_err,
                     f"{wrong} of {diff.size} values differ on exact integer inputs")
    if rel_l2 > tolerance:
        return Check(False, rel_l2, max_err,
                     f"{of_what} {rel_l2:.3g} above tolerance {tolerance:.3g}")
    return Check(True, rel_l2, max_err)
