"""``conv2d``: the one-call Python API over the registry."""

from __future__ import annotations

import numpy as np

from .problem import ConvProblem, _pair
from .registry import get_kernel


def conv2d(x, w, stride=1, padding=0, dilation=1, groups=1, algo="direct", backend="cpu",
           memory_budget=None):
    """2-D convolution of NCHW ``x`` with KCRS ``w`` by the chosen algorithm.

    Parameters
    ----------
    x : numpy.ndarray, float32, shape (N, C, H, W), C-contiguous
    w : numpy.ndarray, float32, shape (K, C // groups, R, S), C-contiguous
    stride, padding, dilation : int or (int, int)
        Per (height, width); padding is zeros on both sides; dilation 1 is dense.
    groups : int
    algo, backend : str
        A registered pair; ``python -m convbench list`` shows them.
    memory_budget : int, optional
        Bytes the call may use; default half the memory available now.

    Returns
    -------
    numpy.ndarray, float32, shape (N, K, P, Q)

    Raises
    ------
    ValueError
        Wrong array type, dtype, rank, layout, or shapes that do not fit together.
    convbench.UnsupportedProblem
        The algorithm cannot run this problem (for instance Winograd with a 5x5 filter); the message
        says why.
    """
    for label, array, rank in (("x", x, 4), ("w", w, 4)):
        if not isinstance(array, np.ndarray):
            raise ValueError(f"{label} must be a numpy.ndarray, got {type(array).__name__}")
        if array.ndim != rank:
            raise ValueError(f"{label} must be 4-D ({'NCHW' if label == 'x' else 'KCRS'}), "
                             f"got shape {array.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    n, c, h, width = x.shape
    k, c_per_group, r, s = w.shape
    if c_per_group * groups != c:
        raise ValueError(f"w has {c_per_group} input channels per group and groups={groups}, "
                         f"so x needs {c_per_group * groups} channels; it has {c}")
    problem = ConvProblem(n=n, c=c, h=h, w=width, k=k, r=r, s=s, stride=_pair(stride, "stride"),
                          padding=_pair(padding, "padding"), dilation=_pair(dilation, "dilation"),
                          groups=groups)
    run = get_kernel(algo, backend).prepare(problem, w, memory_budget)
    return run(x)
