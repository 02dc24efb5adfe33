"""Algorithm-specific facts: the Winograd transforms, FFT and Winograd limits, im2col's workspace."""

import numpy as np
import pytest

from convbench import ConvProblem, get_kernel
from kernels.winograd_transforms import TRANSFORMS


@pytest.mark.parametrize("m", sorted(TRANSFORMS))
def test_winograd_matrices_compute_1d_correlation(m):
    """A^T [(G g) * (B^T d)] equals the m outputs of correlating d (m+2 values) with g (3 taps)."""
    spec = TRANSFORMS[m]
    bt, g_mat, at = (np.array(spec[key], dtype=np.float64) for key in ("BT", "G", "AT"))
    rng = np.random.default_rng(m)
    for _ in range(20):
        d = rng.standard_normal(m + 2)
        g = rng.standard_normal(3)
        expected = np.array([d[i:i + 3] @ g for i in range(m)])
        np.testing.assert_allclose(at @ ((g_mat @ g) * (bt @ d)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algo", ["winograd", "winograd4"])
@pytest.mark.parametrize("descriptor, words", [
    ("mb1ic4ih9oc4oh9kh5ph2", ["3x3 filter", "5x5"]),
    ("mb1ic4ih9oc4oh5kh3sh2ph1", ["stride 2x2"]),
    ("mb1ic4ih9oc4oh7kh3dh1ph1", ["dilation 2x2"]),
    ("mb1ic4ih9oc4oh9kh3kw1ph1pw0", ["3x1 filter"]),
])
def test_winograd_says_why(algo, descriptor, words):
    reason = get_kernel(algo, "cpu").supports(ConvProblem.parse(descriptor))
    assert reason and "Winograd" in reason
    for word in words:
        assert word in reason


def test_fft_refuses_stride_with_reason():
    reason = get_kernel("fft", "cpu").supports(ConvProblem.parse("mb1ic4ih9oc4oh5kh3sh2ph1"))
    assert reason and "stride 2x1" not in reason and "stride 2x2" in reason


def test_fft_handles_dilation_by_dilating_the_filter():
    from convbench.accuracy import compare, make_inputs
    from convbench.reference import reference_for
    problem = ConvProblem.parse("mb2ic3ih15iw11oc4oh11ow7kh3dh1dw1ph0")
    assert problem.dilation == (2, 2)
    x, w = make_inputs(problem, seed=3)
    y = get_kernel("fft", "cpu").prepare(problem, w)(x)
    assert compare(y, reference_for(problem, x, w), 2e-6).passed


def test_im2col_workspace_is_the_column_matrix_and_respects_budget():
    kernel = get_kernel("im2col", "cpu")
    vgg = ConvProblem.parse('mb64ic64ih224oc64oh224kh3ph1n"vgg16:conv1_2"')
    assert kernel.workspace_bytes(vgg) == 4 * 64 * 64 * 9 * 224 * 224
    reason = kernel.supports(vgg, memory_budget=4 * 2 ** 30)
    assert reason and "workspace 6.9 GiB" in reason and "4.0 GiB" in reason
    pointwise = ConvProblem.parse("mb8ic64ih56oc256oh56kh1")
    assert kernel.workspace_bytes(pointwise) == 0  # the input already is the column matrix


def test_source_hash_covers_what_a_kernel_imports_from_kernels():
    from pathlib import Path
    files = {str(Path(f).relative_to(Path(__file__).parent.parent))
             for f in get_kernel("fft", "cpu").source_files()}
    # the FFT algorithm lives in kernels/common.py; the OpenMP setting in kernels/cpu/__init__.py
    assert {"kernels/cpu/fft.py", "kernels/common.py", "kernels/cpu/__init__.py",
            "kernels/__init__.py"} <= files
    assert not any(f.startswith("convbench/") for f in files)
