"""Algorithm-specific facts: the Winograd transforms, FFT and Winograd limits, im2col's workspace."""

import numpy as np
import pytest
from numba import get_num_threads

from convbench import ConvProblem, get_kernel
from convbench.accuracy import make_inputs
from kernels.cpu import im2col as im2col_module
from kernels.winograd_transforms import TRANSFORMS, TRANSFORMS_5X5, transforms

TABLES = [(m, 3) for m in sorted(TRANSFORMS)] + [(m, 5) for m in sorted(TRANSFORMS_5X5)]


@pytest.mark.parametrize("m, r", TABLES)
def test_winograd_matrices_compute_1d_correlation(m, r):
    """A^T [(G g) * (B^T d)] equals the m outputs of correlating d (m+r-1 values) with g (r taps)."""
    spec = transforms(m, r)
    bt, g_mat, at = (np.array(spec[key], dtype=np.float64) for key in ("BT", "G", "AT"))
    assert bt.shape == (m + r - 1, m + r - 1) and g_mat.shape == (m + r - 1, r)
    rng = np.random.default_rng(m)
    for _ in range(20):
        d = rng.standard_normal(m + r - 1)
        g = rng.standard_normal(r)
        expected = np.array([d[i:i + r] @ g for i in range(m)])
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


@pytest.mark.parametrize("algo, m", [("winograd_5x5", 2), ("winograd4_5x5", 4)])
def test_5x5_winograds_name_their_filter(algo, m):
    kernel = get_kernel(algo, "cpu")
    assert kernel.supports(ConvProblem.parse("mb1ic4ih9oc4oh9kh5ph2")) is None
    reason = kernel.supports(ConvProblem.parse("mb1ic4ih9oc4oh9kh3ph1"))
    assert f"Winograd F({m}x{m},5x5) needs a 5x5 filter" in reason and "a 3x3 filter" in reason


@pytest.mark.parametrize("algo, descriptor, words", [
    # 3x3 at stride 2: the phases' 2x2 filters padded to 3x3 cost as much as direct or more
    ("winograd4", "mb1ic4ih9oc4oh5kh3sh2ph1", ["stride 2x2: 9 multiplies", "direct does 9"]),
    ("winograd", "mb1ic4ih9oc4oh5kh3sh2ph1", ["stride 2x2: 16 multiplies", "direct does 9"]),
    # 7x7 at stride 2 has 4x4 phase filters: too large for 3x3, fine for 5x5
    ("winograd4", "mb1ic3ih24oc4oh12kh7sh2ph3", ["stride 2x2, whose phases have 4x4 filters"]),
    ("winograd_5x5", "mb1ic3ih227oc4oh55kh11sh4", ["stride 4x4: 144 multiplies", "does 121"]),
    ("winograd4", "mb1ic4ih17oc4oh5kh5sh2dh1", ["dilation 2x2"]),
])
def test_winograd_takes_a_strided_layer_only_where_its_phases_save_multiplies(algo, descriptor,
                                                                                words):
    kernel = get_kernel(algo, "cpu")
    reason = kernel.supports(ConvProblem.parse(descriptor))
    assert reason and "stride phases' filters fit" in reason
    for word in words:
        assert word in reason


@pytest.mark.parametrize("algo, descriptor", [
    ("winograd", "mb1ic4ih17oc4oh7kh5sh2"),          # 3x3 phases: 16 multiplies against 25
    ("winograd4", "mb1ic4ih17oc4oh7kh5sh2"),         # 9 against 25
    ("winograd4", 'mb1ic3ih227oc96oh55kh11sh4n"alexnet:conv1"'),    # 36 against 121
    ("winograd4_5x5", "mb1ic3ih224oc64oh112kh7sh2ph3"),            # 16 against 49
    ("winograd_5x5", "mb1ic32ih79iw341oc32oh38ow166kh5kw10sh2"),  # 3x5 phases: 36 against 50
])
def test_winograd_runs_a_strided_layer_over_its_stride_phases(algo, descriptor):
    """The stride-1 problem over the phases: its workspace is the planes (as many as the padded
    input makes, or the output plus r - 1 if more: AlexNet conv1's 227 columns make 57 of each
    phase, 55 + 2) beside the workspace of that problem written out, and the stages start with the
    split."""
    problem = ConvProblem.parse(descriptor)
    kernel = get_kernel(algo, "cpu")
    assert kernel.supports(problem) is None
    r = kernel.impl.r
    (sh, sw), (ph, pw) = problem.stride, problem.padding
    rows = max(-(-(problem.h + 2 * ph) // sh), problem.p + r - 1)
    cols = max(-(-(problem.w + 2 * pw) // sw), problem.q + r - 1)
    inner = ConvProblem(n=problem.n, c=problem.c * sh * sw, h=rows, w=cols, k=problem.k, r=r, s=r)
    planes = 4 * inner.n * inner.c * rows * cols
    pairs = 4 * problem.h * problem.w * (1 if planes < 2 ** 20 else get_num_threads())
    uncut = 0 if (inner.p, inner.q) == (problem.p, problem.q) else 4 * problem.k * inner.p * inner.q
    assert kernel.workspace_bytes(problem) == (planes + kernel.impl.workspace_bytes(inner) + uncut
                                               + (pairs if sw == 2 and problem.w % 2 == 0 else 0))
    x, w = make_inputs(problem, seed=5)
    run = kernel.prepare(problem, w)
    assert run.impl.endswith(f"over {sh}x{sw} stride phases")
    assert run.stages[0][0] == "split into stride phases"
    zeros = np.zeros(inner.weight_shape, dtype=np.float32)
    assert [name for name, _ in run.stages[1:]] == [name for name, _ in
                                                    kernel.prepare(inner, zeros).stages]


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


def test_im2col_workspace_is_the_column_matrix_and_a_plane_per_lowering_thread(monkeypatch):
    """The column matrix, and one channel's zero-bordered stride phases (with the scratch for
    column pairs, at column stride 2 and an even width) for every thread that lowers: one under
    1 MiB of column matrix, one per numba thread above it, one per share of output rows."""
    monkeypatch.setattr(im2col_module, "get_num_threads", lambda: 2)
    monkeypatch.setattr(im2col_module, "share_count", lambda threads: threads)
    kernel = get_kernel("im2col", "cpu")
    vgg = ConvProblem.parse('mb64ic64ih224oc64oh224kh3ph1n"vgg16:conv1_2"')
    assert im2col_module.im2col_gemm.row_shares(vgg) == 2
    # its shares' parts of the column matrix are large: blocks of 4 output rows (2 MiB / 516 KB
    # a row), from the whole padded input, in place of the column matrix
    assert im2col_module.im2col_gemm.block_rows(vgg) == 4
    assert kernel.workspace_bytes(vgg) == 4 * 64 * 64 * 226 * 226 + 2 * 4 * 64 * 9 * 4 * 224
    monkeypatch.setattr(im2col_module, "SHARE_BLOCK_MIN_BYTES", float("inf"))
    assert im2col_module.im2col_gemm.block_rows(vgg) is None
    assert kernel.workspace_bytes(vgg) == 4 * 64 * 64 * 9 * 224 * 224 + 4 * 226 * 226 * 2
    small = ConvProblem.parse("mb1ic4ih9oc2kh5ph2")    # under 1 MiB: lowered by one thread
    assert im2col_module.im2col_gemm.row_shares(small) == 1
    assert kernel.workspace_bytes(small) == 4 * 4 * 25 * 9 * 9 + 4 * 13 * 13
    # more output channels, a smaller image, groups: lowered by both threads, then the product
    res4a = ConvProblem.parse("mb1ic256ih14oc256oh14kh3ph1")
    assert im2col_module.im2col_gemm.row_shares(res4a) == 1
    for text in ("mb1ic64ih56oc65oh56kh3ph1", "mb1ic64ih45oc64oh45kh3ph1",
                 "g2mb1ic64ih56oc64oh56kh3ph1"):
        assert im2col_module.im2col_gemm.row_shares(ConvProblem.parse(text)) == 1, text
    assert im2col_module.im2col_gemm.row_shares(ConvProblem.parse("mb1ic64ih46oc64kh3ph1")) == 2
    # a batch of an image per thread: shares for any channel count, but not when small
    assert im2col_module.im2col_gemm.row_shares(ConvProblem.parse("mb2ic64ih14oc128kh3ph1")) == 2
    assert im2col_module.im2col_gemm.row_shares(ConvProblem.parse("mb2ic8ih14oc128kh3ph1")) == 1
    assert kernel.workspace_bytes(res4a) == 4 * 256 * 9 * 14 * 14 + 4 * 16 * 16 * 2
    reason = kernel.supports(vgg, memory_budget=4 * 2 ** 30)
    assert reason and "workspace 6.9 GiB" in reason and "4.0 GiB" in reason
    stem = ConvProblem.parse("mb1ic3ih224oc64oh112kh7sh2ph3")
    # padded to 230 x 230 and split into 2 x 2 stride phases of 115 x 115, a 224 x 224 channel
    # of column pairs, for each of the two shares
    assert kernel.workspace_bytes(stem) == (4 * 3 * 49 * 112 * 112
                                            + 2 * (4 * 4 * 115 * 115 + 4 * 224 * 224))
    odd = ConvProblem.parse("mb2ic3ih13iw11oc4kh3sh3sw2")    # an odd width: no column pairs
    assert kernel.workspace_bytes(odd) == 4 * 2 * 3 * 9 * 4 * 5 + 4 * 3 * 2 * 5 * 6
    pointwise = ConvProblem.parse("mb8ic64ih56oc256oh56kh1")
    assert kernel.workspace_bytes(pointwise) == 0  # the input already is the column matrix
    subsampling = ConvProblem.parse("mb1ic256ih56oc512oh28kh1sh2")
    assert kernel.workspace_bytes(subsampling) == 4 * 256 * 28 * 28
    # a batch of strided 1x1 layers goes by shares too, copying from the input with no planes
    batch = ConvProblem.parse("mb8ic256ih56oc128oh28kh1sh2")
    assert im2col_module.im2col_gemm.row_shares(batch) == 2
    assert kernel.workspace_bytes(batch) == 4 * 8 * 256 * 28 * 28


def test_im2col_row_shares_go_by_blocks_where_a_share_would_be_large(monkeypatch):
    """Where a share's part of the column matrix would reach ``SHARE_BLOCK_MIN_BYTES`` it goes a
    block of output rows at a time; otherwise, and never for a subsampled strided 1x1 layer, the
    share lowers all its rows first."""
    monkeypatch.setattr(im2col_module, "get_num_threads", lambda: 2)
    monkeypatch.setattr(im2col_module, "share_count", lambda threads: threads)
    rows = im2col_module.im2col_gemm.block_rows
    # 32 channels, a 5x10 filter: a 6.6 MB column matrix row of output, so one row a block
    assert rows(ConvProblem.parse("mb1ic32ih79iw341oc32oh38ow166kh5kw10sh2")) == 1
    assert rows(ConvProblem.parse("mb1ic64ih56oc64oh56kh3ph1")) is None     # 3.6 MB a share
    assert rows(ConvProblem.parse("mb1ic64ih56oc65oh56kh3ph1")) is None     # no row shares
    assert rows(ConvProblem.parse("mb8ic256ih56oc128oh28kh1sh2")) is None   # subsampled
    assert rows(ConvProblem.parse("mb2ic128ih56oc256oh56kh3ph1")) == 8      # 258 KB a row
    # 256 channels of 5x5 (25.6 KB a pixel): a 2 MiB block would hold under 256 pixels
    assert rows(ConvProblem.parse("mb2ic256ih20iw84oc512oh9ow41kh5sh2ph1")) is None
    kernel = get_kernel("im2col", "cpu")
    problem = ConvProblem.parse("mb2ic128ih56oc256oh56kh3ph1")
    assert kernel.prepare(problem, make_inputs(problem)[1]).impl == (
        "lowered by blocks of 8 output rows on 2 threads")


def test_im2col_shares_a_pointwise_layers_products_only_with_four_per_thread(monkeypatch):
    """A 1x1 stride-1 layer's products (image x group) go one after another on the BLAS's own
    threads unless each thread would get four or more; either way the output is right."""
    from convbench.accuracy import compare
    from convbench.reference import reference_for
    monkeypatch.setattr(im2col_module, "share_count", lambda threads: 2)
    shared = im2col_module.im2col_gemm.pointwise_shared
    assert not shared(ConvProblem.parse("mb2ic512ih7oc512oh7kh1"))
    assert not shared(ConvProblem.parse("mb7ic64ih7oc64oh7kh1"))
    assert shared(ConvProblem.parse("mb8ic64ih7oc64oh7kh1"))
    assert shared(ConvProblem.parse("g2mb4ic64ih7oc64oh7kh1"))
    for text in ("mb2ic16ih7oc8oh7kh1", "mb8ic16ih7oc8oh7kh1", "g2mb4ic16ih5oc8oh5kh1"):
        problem = ConvProblem.parse(text)
        x, w = make_inputs(problem, seed=17)
        y = get_kernel("im2col", "cpu").prepare(problem, w)(x)
        assert compare(y, reference_for(problem, x, w), 2e-6).passed, text


def _force_im2col_path(monkeypatch, path):
    """Send small problems down im2col's ``path``: one thread, the parallel lowering, or row
    shares (two, whatever the machine)."""
    if path == "parallel":
        monkeypatch.setattr(im2col_module, "SERIAL_COPY_BYTES", 0)
    if path == "row shares":
        monkeypatch.setattr(im2col_module, "SHARED_ROWS_FLOPS", 0)
        monkeypatch.setattr(im2col_module, "SHARED_ROWS_MIN_PIXELS", 0)
        monkeypatch.setattr(im2col_module, "share_count", lambda threads: 2)
    else:
        monkeypatch.setattr(im2col_module, "SHARED_ROWS_FLOPS", float("inf"))


IM2COL_PATHS = ["one thread", "parallel", "row shares"]


@pytest.mark.parametrize("path", IM2COL_PATHS)
def test_im2col_lowering_matches_the_definition_on_strided_dilated_padded_problems(path,
                                                                                    monkeypatch):
    """Every entry of the column matrix against its definition, zero padding included: the
    stride-phase split must put each tap's rows where the GEMM expects them, whichever threads
    lower which rows."""
    _force_im2col_path(monkeypatch, path)
    kernel = get_kernel("im2col", "cpu")
    for text in ("mb2ic3ih13iw11oc2kh3kw5sh2sw3ph2pw1dh1dw0", "mb1ic2ih17oc2kh11sh4",
                 "mb1ic2ih9oc2kh5ph2",
                 # three images of 7 rows in two shares: the first share ends inside image 1
                 "mb3ic2ih7oc2kh3ph1",
                 # column stride 2, even widths: split by column pairs, odd and even padding
                 "mb2ic3ih9iw12oc2kh3sh2ph1", "mb1ic2ih8iw10oc2kh4kw3sh1sw2ph0pw3",
                 # strided 1x1: copied from a strided view, the shares' rows span images
                 "mb3ic3ih9iw8oc2kh1sh2", "mb2ic2ih10iw7oc2kh1sh3sw2",
                 # ... padded: the positions that sample the padding stay zero, some rows all
                 # padding, and a row stride whose samples miss the image at one end
                 "mb3ic2ih7oc2kh1sh2ph3", "mb2ic3ih9iw8oc2kh1sh3sw2ph2pw1",
                 "mb1ic2ih3iw4oc2kh1sh2ph2pw0"):
        problem = ConvProblem.parse(text)
        if path == "row shares":
            assert kernel.prepare(problem, make_inputs(problem, seed=5)[1]).impl.endswith(
                "by output rows on 2 threads"), text
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


@pytest.mark.parametrize("path", IM2COL_PATHS)
@pytest.mark.parametrize("text", [
    "mb3ic2ih7oc3kh3ph1",                  # a share's rows span two images
    "g2mb2ic4ih9oc6kh3sh2ph1",              # groups (never in row shares), stride
    "mb1ic3ih10iw12oc4kh5ph2pw1dh0dw1",     # dilation along w
    "mb1ic2ih3oc2kh3ph1",                   # three output rows: shares of one and two
    "mb3ic4ih9oc3kh1sh2",                   # strided 1x1, shares spanning images
    "mb3ic4ih7oc3kh1sh2ph3",                # ... padded
])
def test_im2col_output_is_right_on_every_path(path, text, monkeypatch):
    """The products land where they belong: each share multiplies its own columns of each image
    into the same columns of the output, for every group."""
    from convbench.accuracy import compare
    from convbench.reference import reference_for
    _force_im2col_path(monkeypatch, path)
    problem = ConvProblem.parse(text)
    x, w = make_inputs(problem, seed=11)
    run = get_kernel("im2col", "cpu").prepare(problem, w)
    assert compare(run(x), reference_for(problem, x, w), 2e-6).passed, run.impl
    stages = dict(run.stages)           # the per-stage breakdown computes the same output
    stages["lowering"](x)
    assert compare(stages["multiply"](x), reference_for(problem, x, w), 2e-6).passed


@pytest.mark.parametrize("block", [1, 2])
def test_im2col_by_blocks_is_right(block, monkeypatch):
    """Row shares a block at a time, forced onto small problems with blocks of one and two output
    rows: every block's columns land in its own image's output (a share's rows span images, the
    last block of an image is short), padded, strided and dilated; and the two stages, run one
    after the other, give the same output."""
    from convbench.accuracy import compare
    from convbench.reference import reference_for
    _force_im2col_path(monkeypatch, "row shares")
    monkeypatch.setattr(im2col_module, "SHARE_BLOCK_MIN_BYTES", 0)
    monkeypatch.setattr(im2col_module, "BLOCK_MIN_PIXELS", 0)
    for text in ("mb3ic2ih7oc3kh3ph1", "mb2ic3ih13iw11oc2kh3kw5sh2sw3ph2pw1dh1dw0",
                 "mb2ic3ih9iw12oc2kh3sh2ph1", "mb1ic3ih10iw12oc4kh5ph2pw1dh0dw1",
                 "mb1ic2ih3oc2kh3ph1"):
        problem = ConvProblem.parse(text)
        row_bytes = 4 * problem.c * problem.r * problem.s * problem.q
        monkeypatch.setattr(im2col_module, "COL_BLOCK_BYTES", block * row_bytes)
        x, w = make_inputs(problem, seed=13)
        run = get_kernel("im2col", "cpu").prepare(problem, w)
        rows = min(block, problem.p)
        assert run.impl == (f"lowered by blocks of {rows} output row{'s' if rows > 1 else ''}"
                            " on 2 threads")
        reference = reference_for(problem, x, w)
        assert compare(run(x), reference, 2e-6).passed, text
        stages = dict(run.stages)
        assert list(stages) == ["split into stride phases", "lowered and multiplied"]
        stages["split into stride phases"](x)
        assert compare(stages["lowered and multiplied"](x), reference, 2e-6).passed, text


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
