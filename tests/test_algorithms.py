"""Algorithm-specific facts: the Winograd transforms, FFT and Winograd limits, im2col's workspace."""

import numpy as np
import pytest
from numba import get_num_threads

from convbench import ConvProblem, get_kernel
from convbench.accuracy import make_inputs
from kernels.cpu import im2col as im2col_module
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


def test_im2col_workspace_is_the_column_matrix_and_split_input_and_respects_budget():
    kernel = get_kernel("im2col", "cpu")
    vgg = ConvProblem.parse('mb64ic64ih224oc64oh224kh3ph1n"vgg16:conv1_2"')
    # stride 1: the column matrix, lowered from one zero-bordered channel per thread
    threads = min(get_num_threads(), 64 * 64)
    assert kernel.workspace_bytes(vgg) == 4 * 64 * 64 * 9 * 224 * 224 + 4 * 226 * 226 * threads
    small = ConvProblem.parse("mb1ic4ih9oc2kh5ph2")    # under 1 MiB: lowered by one thread
    assert kernel.workspace_bytes(small) == 4 * 4 * 25 * 9 * 9 + 4 * 13 * 13
    reason = kernel.supports(vgg, memory_budget=4 * 2 ** 30)
    assert reason and "workspace 6.9 GiB" in reason and "4.0 GiB" in reason
    stem = ConvProblem.parse("mb1ic3ih224oc64oh112kh7sh2ph3")
    # and the input, padded to 230 x 230, split into 2 x 2 stride phases of 115 x 115 by one
    # thread (under 1 MiB) with its scratch for column pairs, one 224 x 224 channel
    assert kernel.workspace_bytes(stem) == (4 * 3 * 49 * 112 * 112 + 4 * 3 * 4 * 115 * 115
                                            + 4 * 224 * 224)
    odd = ConvProblem.parse("mb2ic3ih13iw11oc4kh3sh3sw2")
    assert kernel.workspace_bytes(odd) == 4 * 2 * 3 * 9 * 4 * 5 + 4 * 2 * 3 * 6 * 5 * 6
    pointwise = ConvProblem.parse("mb8ic64ih56oc256oh56kh1")
    assert kernel.workspace_bytes(pointwise) == 0  # the input already is the column matrix
    subsampling = ConvProblem.parse("mb1ic256ih56oc512oh28kh1sh2")
    assert kernel.workspace_bytes(subsampling) == 4 * 256 * 28 * 28


@pytest.mark.parametrize("threads", ["one thread", "parallel"])
def test_im2col_lowering_matches_the_definition_on_strided_dilated_padded_problems(threads,
                                                                                    monkeypatch):
    """Every entry of the column matrix against its definition, zero padding included: the
    stride-phase split must put each tap's rows where the GEMM expects them. Problems this small
    are lowered by one thread; a zero threshold sends them through the parallel loops."""
    if threads == "parallel":
        monkeypatch.setattr(im2col_module, "SERIAL_COPY_BYTES", 0)
    kernel = get_kernel("im2col", "cpu")
    for text in ("mb2ic3ih13iw11oc2kh3kw5sh2sw3ph2pw1dh1dw0", "mb1ic2ih17oc2kh11sh4",
                 "mb1ic2ih9oc2kh5ph2",
                 # column stride 2, even widths: split by column pairs, odd and even padding
                 "mb2ic3ih9iw12oc2kh3sh2ph1", "mb1ic2ih8iw10oc2kh4kw3sh1sw2ph0pw3"):
        problem = ConvProblem.parse(text)
        x, w = make_inputs(problem, seed=5)
        run = kernel.prepare(problem, w)
        col = run.unchecked.column_matrix    # the im2col module's own run, unwrapped
        col[...] = np.nan
        dict(run.stages)["lowering"](x)
        (sh, sw), (ph, pw), (dh, dw) = problem.stride, problem.padding, problem.dilation
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        expected = np.empty((problem.n, problem.c, problem.r, problem.s, problem.p, problem.q),
                            np.float32)
        for r in range(problem.r):
            for s in range(problem.s):
                expected[:, :, r, s] = padded[:, :, r * dh:r * dh + sh * (problem.p - 1) + 1:sh,
                                              s * dw:s * dw + sw * (problem.q - 1) + 1:sw]
        assert np.array_equal(col, expected.reshape(col.shape)), text


def test_source_hash_covers_what_a_kernel_imports_from_kernels():
    from pathlib import Path
    files = {str(Path(f).relative_to(Path(__file__).parent.parent))
             for f in get_kernel("fft", "cpu").source_files()}
    # the FFT algorithm lives in kernels/common.py; the OpenMP setting in kernels/cpu/__init__.py
    assert {"kernels/cpu/fft.py", "kernels/common.py", "kernels/cpu/__init__.py",
            "kernels/__init__.py"} <= files
    assert not any(f.startswith("convbench/") for f in files)


@pytest.mark.parametrize("tile", [8, 16, 32])
@pytest.mark.parametrize("descriptor", [
    "mb2ic3ih15iw11oc4oh15ow11kh3ph1",        # several tiles, a partial last row and column
    "g2mb1ic4ih9oc6oh9kh5ph2",                # groups, a 5x5 filter
    "mb1ic3ih13iw10oc2oh9ow6kh3dh1",          # dilation: a filter extent of 5
    "mb3ic2ih6oc3oh4kh3",                     # smaller than one tile
])
def test_fft_tiled_is_right_for_every_tile_size(tile, descriptor):
    """The sweep uses one modelled tile size per problem; every other must be right too."""
    import scipy.fft
    from convbench.accuracy import compare, make_inputs
    from convbench.reference import reference_for
    from kernels.common import fft_tiled_prepare
    problem = ConvProblem.parse(descriptor)
    x, w = make_inputs(problem, seed=tile)
    run = fft_tiled_prepare(problem, w, np, scipy.fft.rfft2, scipy.fft.irfft2,
                            np.lib.stride_tricks.as_strided, tile=tile)
    assert compare(run(x), reference_for(problem, x, w), 2e-6).passed


def test_fft_tile_plan_keeps_the_valid_part_and_covers_the_output():
    from kernels.common import FFT_TILE_SIZES, fft_tile_plan
    for descriptor in ("mb1ic64ih56oc64oh56kh3ph1", "mb1ic512ih14oc512oh14kh3ph1",
                       "mb1ic32ih64oc32oh56kh9", "mb1ic3ih224oc64oh218kh7", "mb1ic8ih90oc8kh31", "mb1ic2ih90oc2kh40"):
        problem = ConvProblem.parse(descriptor)
        size, m, tiles_h, tiles_w = fft_tile_plan(problem)
        extent = problem.r
        assert size in FFT_TILE_SIZES + (128,) and m == size - extent + 1
        assert m >= extent                    # at least half of every transform is kept
        assert tiles_h * m >= problem.p > (tiles_h - 1) * m
        assert tiles_w * m >= problem.q > (tiles_w - 1) * m
    with pytest.raises(ValueError, match="tile size 8 is too small for a filter extent of 9"):
        fft_tile_plan(ConvProblem.parse("mb1ic1ih20oc1kh9"), tile=8)
