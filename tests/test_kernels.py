"""Every CPU kernel in the registry against the float64 reference."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from convbench import ConvProblem, UnsupportedProblem
from convbench.accuracy import compare, make_inputs, typical_output_norm
from convbench.reference import reference_for

from .conftest import cpu_kernels

KERNELS = cpu_kernels()
IDS = [kernel.name for kernel in KERNELS]

# Named edge cases: tails (odd sizes, not multiples of any tile), C=1, K=1, N=1, padding > 1,
# stride, dilation, groups, rectangular filters, a filter as large as the padded input.
EDGE_CASES = [
    "mb1ic1ih5oc1oh5kh3ph1",
    "mb3ic2ih7iw9oc5oh7ow9kh3ph1",
    "mb1ic3ih11iw6oc4oh13ow8kh3ph2",
    "mb2ic4ih9oc1oh9kh3ph1",
    "mb1ic5ih6oc7oh4kh3",
    "mb1ic2ih13oc3oh11kh5ph1",
    "mb1ic3ih10oc2oh5kh3sh2ph1",
    "mb1ic2ih9iw8oc3oh3ow4kh3kw2sh3sw2",
    "mb1ic2ih12oc2oh8kh3dh1",
    "g2mb1ic4ih8oc6oh8kh3ph1",
    "g4mb2ic4ih6oc4oh6kh3ph1",
    "g3mb2ic3ih9oc6oh5kh3sh2ph1",          # depthwise, two output channels per input channel
    "g4mb1ic4ih10iw9oc4oh6ow5kh3dh1",      # depthwise, dilated
    "g4mb2ic4ih8iw10oc4oh4ow5kh3sh2ph1",   # depthwise 3x3, stride 2, padded: phase planes
    "g2mb3ic2ih2iw4oc4oh1ow2kh3sh2ph1",    # ... one output row, x2
    "g4mb2ic4ih8iw10oc4oh3ow4kh3sh2",      # depthwise, stride 2, even width: column pairs
    "g3mb1ic3ih9iw8oc6oh9ow8kh5ph2",       # depthwise 5x5: three passes of nine taps
    "g2mb1ic2ih8oc2oh5ow8kh4kw3pw1",       # depthwise 4x3: nine taps, then three
    "g2mb2ic2ih17iw18oc4oh17ow18kh3ph1",   # depthwise 3x3 at stride 1, padded: by rows, x2
    "g3mb1ic3ih3iw9oc3oh3ow9kh3ph1",       # ... whole channels, three rows
    "g2mb1ic2ih9iw3oc2oh9ow3kh3ph1",       # ... three columns
    "mb1ic2ih5iw37oc3oh3ow19kh3sh2ph1",    # wide rows split by stride phase: odd width and
    "mb1ic2ih6iw34oc2oh2ow16kh3sh2",       # ... odd padding, even width and none,
    "mb1ic2ih6iw33oc3oh6ow33kh3ph1",       # ... and Winograd F(2x2)'s 2 x 2 split of a wide row
    "mb1ic2ih5iw67oc3oh3ow34kh3sh2ph1",    # an odd width of 64 or more split by row pairs,
    "mb2ic3ih6iw65oc2oh2ow30kh3kw7sh2",    # ... odd padding and none
    "mb1ic3ih4oc2oh2kh5ph1",
    "mb1ic2ih5iw3oc3oh3ow1kh3kw3",
    "mb1ic1ih1oc1oh1kh1",
    "g2mb2ic4ih9iw7oc6oh5ow4kh1sh2",       # strided 1x1: subsampling, odd sizes, groups
    "mb1ic3ih10oc2oh4kh1sh3",
    "mb2ic3ih7oc4oh7kh1sh2ph3",            # strided 1x1, padded: rows and columns of padding
    "mb2ic3ih17iw14oc4oh8ow6kh5sh2ph1",    # Winograd over stride phases: 5x5 at stride 2,
    "g2mb1ic4ih25oc4oh4kh11sh4ph0",        # ... 11x11 at 4 with groups, a phase row to cut,
    "mb1ic2ih15iw21oc3oh8ow11kh7sh2ph3",   # ... 7x7 at 2 (4x4 phases, the 5x5 kernels),
    "mb1ic2ih11iw31oc2oh4ow11kh5kw10sh2",  # ... 5x10 at 2 (3x5 phases), a column to cut
    "mb2ic3ih14oc4oh14kh7ph3",
    "mb1ic2ih9oc2oh9kh9ph4",
]


def random_problems(count, seed, filters=(1, 3, 3, 3, 5, 7)):
    """``count`` random problems whose filter height is drawn from ``filters`` (and width the same
    four times in five)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        groups = int(rng.choice([1, 1, 1, 2, 3]))
        r = int(rng.choice(filters))
        s = r if rng.random() < 0.8 else int(rng.integers(1, 6))
        try:
            out.append(ConvProblem(
                n=int(rng.integers(1, 4)), c=groups * int(rng.integers(1, 6)),
                h=int(rng.integers(1, 20)), w=int(rng.integers(1, 20)),
                k=groups * int(rng.integers(1, 6)), r=r, s=s,
                stride=(int(rng.choice([1, 1, 2, 3])),) * 2,
                padding=(int(rng.integers(0, 4)), int(rng.integers(0, 4))),
                dilation=(int(rng.choice([1, 1, 1, 2])),) * 2, groups=groups))
        except ValueError:
            continue  # filter larger than the padded input: draw again
    return out


def check_against_reference(kernel, problem, fill="uniform"):
    x, w = make_inputs(problem, seed=7, fill=fill)
    y = kernel.prepare(problem, w)(x)
    ref = reference_for(problem, x, w)
    exact = fill == "integer" and kernel.spec.exact_on_integers
    result = compare(y, ref, kernel.tolerance_for(problem), exact=exact,
                     scale=typical_output_norm(problem, x, w))
    assert result.passed, f"{kernel.name} on {problem}: {result.reason}"
    return result


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
@pytest.mark.parametrize("descriptor", EDGE_CASES)
def test_edge_cases(kernel, descriptor):
    problem = ConvProblem.parse(descriptor)
    reason = kernel.supports(problem)
    if reason:
        assert isinstance(reason, str) and reason
        with pytest.raises(UnsupportedProblem, match=kernel.name):
            kernel.prepare(problem, make_inputs(problem)[1])
    else:
        check_against_reference(kernel, problem)


BOUNDS_SCRIPT = """
from convbench import ConvProblem
from tests.test_kernels import EDGE_CASES, KERNELS, check_against_reference, random_problems
problems = [ConvProblem.parse(text) for text in EDGE_CASES] + random_problems(30, seed=11)
for kernel in KERNELS:
    for problem in problems:
        if kernel.supports(problem) is None:
            check_against_reference(kernel, problem)
"""


@pytest.mark.sweep
def test_no_kernel_indexes_past_an_array(tmp_path):
    """numba checks no index, so a loop that runs past an array reads garbage or crashes only
    sometimes. With NUMBA_BOUNDSCHECK=1 (compiled into a cache of its own) such an index raises:
    every CPU kernel runs the edge cases and random problems that way, in a child process."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", BOUNDS_SCRIPT], cwd=Path(__file__).parent.parent,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_random_problems(kernel):
    checked = 0
    for problem in random_problems(60, seed=2024):
        if kernel.supports(problem) is None:
            check_against_reference(kernel, problem)
            checked += 1
    assert checked > 0, f"{kernel.name} accepted none of the random problems"


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_integer_fill(kernel):
    """Exact kernels match the reference bit for bit on integer inputs; others stay in tolerance."""
    for descriptor in ("mb2ic16ih10oc8oh10kh3ph1", "g2mb1ic8ih9oc4oh5kh3sh2ph1", "mb1ic3ih12oc4oh12kh5ph2"):
        problem = ConvProblem.parse(descriptor)
        if kernel.supports(problem) is None:
            check_against_reference(kernel, problem, fill="integer")


def _first_supported(kernel, *descriptors):
    """The first of ``descriptors`` that ``kernel`` runs (a 3x3 or, for the 5x5 Winograds, a 5x5
    problem); skips the test if it runs none."""
    for descriptor in descriptors:
        problem = ConvProblem.parse(descriptor)
        if kernel.supports(problem) is None:
            return problem
    pytest.skip(kernel.supports(problem))


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_repeated_calls_are_independent(kernel):
    """run(x) may keep buffers between calls, but each result is its own and is not overwritten."""
    problem = _first_supported(kernel, "mb1ic4ih8oc4oh8kh3ph1", "mb1ic4ih8oc4oh8kh5ph2")
    x, w = make_inputs(problem, seed=1)
    run = kernel.prepare(problem, w)
    first = run(x)
    kept = first.copy()
    second = run(np.ascontiguousarray(x[:, :, ::-1, :]))
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)


def check_stages(kernel, problem, to_device=lambda a: a, to_host=lambda a: a):
    """The stages, called in order, give run(x)'s result, also with a stage repeated on its own
    (as the per-stage timing does) and after another input went through."""
    x, w = make_inputs(problem, seed=3)
    other = make_inputs(problem, seed=4)[0]
    run = kernel.prepare(problem, w)
    if not run.stages:
        return False
    whole = to_host(run(to_device(x)))
    run(to_device(other))
    x_dev = to_device(x)
    for _, stage in run.stages:
        stage(x_dev)
        out = stage(x_dev)
    np.testing.assert_array_equal(to_host(out), whole)
    return True


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_stages_in_order_are_the_kernel(kernel):
    problem = _first_supported(kernel, "mb2ic3ih9iw7oc4oh9ow7kh3ph1", "mb2ic3ih9iw7oc4oh9ow7kh5ph2")
    staged = check_stages(kernel, problem)
    # the CPU direct kernel splits the input into stride phases, then slides the window
    assert staged == (kernel.spec.algo in ("im2col", "fft", "fft_tiled")
                      or kernel.spec.algo.startswith("winograd")
                      or (kernel.spec.algo, kernel.spec.backend) == ("direct", "cpu"))


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_workspace_is_a_nonnegative_int(kernel):
    for problem in random_problems(10, seed=5):
        if kernel.supports(problem) is None:
            assert int(kernel.workspace_bytes(problem)) >= 0


def test_memory_budget_turns_into_a_reason():
    kernel = KERNELS[0]
    problem = ConvProblem.parse("mb4ic64ih56oc64oh56kh3ph1")
    reason = kernel.supports(problem, memory_budget=1024)
    assert reason and "memory budget" in reason and "1.0 KiB" in reason


@pytest.fixture
def shared_stacks(monkeypatch):
    """Every stack of matrix products shared out between two threads, however small (the kernels'
    products on these test problems are all under the threshold)."""
    from threadpoolctl import threadpool_limits
    from kernels.cpu import _common
    monkeypatch.setattr(_common, "PARALLEL_MATMUL_FLOPS", 0)
    monkeypatch.setattr(_common, "usable_cores", lambda: 2)
    splits = []
    split = _common._split

    def spy(*args):
        splits.append(split(*args))
        return splits[-1]

    monkeypatch.setattr(_common, "_split", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        yield splits


STACKED = [kernel for kernel in KERNELS if kernel.spec.algo in ("im2col", "fft", "fft_tiled",
                                                                 "winograd", "winograd4")]


@pytest.mark.parametrize("kernel", STACKED, ids=[kernel.name for kernel in STACKED])
def test_kernels_with_their_products_shared_among_threads(kernel, shared_stacks):
    """The edge cases and random problems again, with every stack of products cut into runs for
    two threads (``batched_matmul``): a run cut along the wrong axis, or an operand cut where it
    broadcasts, gives a wrong answer or a shape error here."""
    problems = [ConvProblem.parse(text) for text in EDGE_CASES] + random_problems(30, seed=5)
    for problem in problems:
        if kernel.supports(problem) is None:
            check_against_reference(kernel, problem)
    assert any(parts is not None for parts in shared_stacks), "no stack was shared out"


@pytest.mark.parametrize("a_shape, b_shape, dtype", [
    ((16, 2, 8, 12), (16, 2, 12, 30), np.float32),    # Winograd: one product per position, group
    ((2, 8, 12), (4, 2, 12, 30), np.float32),         # im2col: weights broadcast over the images
    ((1, 2, 8, 12), (4, 2, 12, 30), np.float32),      # ... or through an axis of size 1
    ((7, 5, 6), (7, 6, 9), np.float32),               # a stack two threads share 3 + 4
    ((40, 1, 6, 5), (40, 1, 5, 1), np.complex64),     # FFT: one product per frequency
])
def test_batched_matmul_is_a_one_thread_matmul(a_shape, b_shape, dtype, shared_stacks):
    from threadpoolctl import threadpool_limits
    from kernels.cpu._common import batched_matmul
    rng = np.random.default_rng(3)

    def draw(shape):
        values = rng.standard_normal(shape)
        return (values + 1j * rng.standard_normal(shape) if dtype == np.complex64 else values
                ).astype(dtype)

    a, b = draw(a_shape), draw(b_shape)
    out = batched_matmul(a, b)
    assert shared_stacks and shared_stacks[-1] is not None, "the stack was not shared out"
    with threadpool_limits(limits=1, user_api="blas"):
        expected = np.matmul(a, b)
    assert out.dtype == expected.dtype and np.array_equal(out, expected)


def test_batched_matmul_gives_the_blas_its_threads_back_when_a_product_fails(shared_stacks):
    import scipy.linalg  # noqa: F401 - scipy's wheel loads a BLAS of its own, set to one thread too
    from kernels.cpu._common import _numpy_blas, shared_matmul
    batched_matmul = shared_matmul()      # as a kernel's prepare gets it: every BLAS loaded known
    a = np.ones((4, 3, 3), np.float32)
    with pytest.raises(TypeError):    # float32 products cannot be written to an int32 array
        batched_matmul(a, a, np.empty((4, 3, 3), np.int32))
    assert shared_stacks[-1] is not None
    assert _numpy_blas().threads() == 2
    # every BLAS loaded (scipy's wheel brings its own) has its two threads back
    from threadpoolctl import threadpool_info
    assert {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"} == {2}
    assert np.array_equal(batched_matmul(a, a), np.full((4, 3, 3), 3, np.float32))


@pytest.fixture
def fft_calls(monkeypatch):
    """``(function, workers)`` of every scipy.fft ``rfft2``/``irfft2`` call, which still runs;
    the FFT kernels' ``_WORKERS`` set to 2 whatever the machine."""
    import scipy.fft
    from kernels.cpu import fft as fft_module
    monkeypatch.setattr(fft_module, "_WORKERS", 2)
    calls = []
    for name in ("rfft2", "irfft2"):
        def recording(*args, _name=name, _original=getattr(scipy.fft, name), **kwargs):
            calls.append((_name, kwargs.get("workers")))
            return _original(*args, **kwargs)
        monkeypatch.setattr(scipy.fft, name, recording)
    return calls


@pytest.mark.parametrize("algo", ["fft", "fft_tiled"])
def test_fft_with_its_transforms_on_two_workers(algo, monkeypatch, fft_calls):
    """Both FFT kernels transform small inputs on one thread (``SERIAL_FFT_BYTES``,
    ``SERIAL_TILED_FFT_BYTES``), so the test problems would never reach scipy.fft's threaded path:
    zero thresholds send them there."""
    from kernels.cpu import fft as fft_module
    monkeypatch.setattr(fft_module, "SERIAL_FFT_BYTES", 0)
    monkeypatch.setattr(fft_module, "SERIAL_TILED_FFT_BYTES", 0)
    kernel = next(kernel for kernel in KERNELS if kernel.spec.algo == algo)
    for problem in [ConvProblem.parse(text) for text in EDGE_CASES] + random_problems(20, seed=9):
        if kernel.supports(problem) is None:
            check_against_reference(kernel, problem)
    assert {workers for _, workers in fft_calls} == {2}


@pytest.mark.parametrize("algo", ["fft", "fft_tiled"])
def test_fft_transforms_a_small_problem_on_one_thread_a_large_one_on_all(algo, fft_calls):
    """scipy.fft's second worker costs more than it saves on small transforms (see
    kernels/cpu/fft.py): a layer of 16 channels of 28 x 28 is transformed on one thread, one of
    128 channels of 56 x 56 on every worker, forward and inverse."""
    kernel = next(kernel for kernel in KERNELS if kernel.spec.algo == algo)
    for text, workers in (("mb1ic16ih28oc32oh28kh5ph2", 1), ("mb1ic128ih56oc128oh56kh5ph2", 2)):
        problem = ConvProblem.parse(text)
        run = kernel.prepare(problem, np.zeros(problem.weight_shape, np.float32))
        fft_calls.clear()
        run(np.zeros(problem.input_shape, np.float32))
        assert sorted(set(fft_calls)) == [("irfft2", workers), ("rfft2", workers)], text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_batched_matmul_works_in_a_forked_child(shared_stacks):
    """A child forked after a shared product has none of the parent's pool threads; handing it
    work through the inherited pool would hang, so the child must start its own."""
    import signal
    import time
    from kernels.cpu._common import batched_matmul
    a = np.ones((4, 3, 3), np.float32)
    batched_matmul(a, a)                       # the parent's pool exists now
    assert shared_stacks[-1] is not None
    pid = os.fork()
    if pid == 0:                               # the child: exit status 0 only on the right answer
        try:
            ok = np.array_equal(batched_matmul(a, a), np.full((4, 3, 3), 3, np.float32))
        finally:
            os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("batched_matmul hung in a forked child")


WINOGRADS = [kernel for kernel in KERNELS if kernel.spec.algo.startswith("winograd")]


@pytest.mark.parametrize("layout", ["channel-major", "channel-major bands 1",
                                    "channel-major bands 2", "tile rows", "tile-major stages"])
@pytest.mark.parametrize("kernel", WINOGRADS, ids=[kernel.name for kernel in WINOGRADS])
def test_winograd_in_each_layout(kernel, layout, monkeypatch):
    """Each Winograd layout on the edge cases and random problems, whichever the rule would choose
    for them (most of these small problems would go channel-major): tile rows and bands cut into
    two shares, bands of one and of two tile rows (the last band of an odd count is short, and the
    top band's padding rows lie above the input), the stages checked on their own too."""
    from kernels.cpu import winograd
    if layout.startswith(winograd.CHANNEL_BANDS):
        rows = int(layout.split()[-1])
        layout = winograd.CHANNEL_BANDS
        monkeypatch.setattr(winograd.WinogradCPU, "_band_rows", lambda self, problem: rows)
    stages = layout == winograd.TILE_STAGES     # for one group only
    monkeypatch.setattr(winograd.WinogradCPU, "layout",
                        lambda self, problem: winograd.CHANNEL_MAJOR
                        if problem.groups > 1 and stages else layout)
    monkeypatch.setattr(winograd, "share_count", lambda threads: 2)
    checked = 0
    for problem in ([ConvProblem.parse(text) for text in EDGE_CASES]
                    + random_problems(40, seed=8, filters=(kernel.impl.r,))):
        if kernel.supports(problem) is None and (problem.groups == 1 or not stages):
            assert kernel.prepare(problem, make_inputs(problem)[1]).impl.startswith(layout)
            check_against_reference(kernel, problem)
            check_stages(kernel, problem)
            assert int(kernel.workspace_bytes(problem)) > 0
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize("layout", ["tile rows", "tile-major stages"])
def test_winograd_tile_major_output_in_blocks(layout, monkeypatch):
    """The tile-major output transform gathers up to ``ROW`` tiles x channels of a tile row at a
    time: the whole row where it fits, else blocks of whole tiles (the second starting mid-row),
    else one tile's channels in slices; the last tile cut to the output each way. Against the
    channel-major answer, which shares none of that code, on integer inputs (exact at F(2x2))."""
    from kernels.cpu import winograd
    from kernels.cpu._winograd_rows import ROW
    monkeypatch.setattr(winograd, "share_count", lambda threads: 2)
    rng = np.random.default_rng(5)
    shapes = {300: "mb2ic5ih9iw27", 1061: "mb2ic5ih9iw27", ROW + 37: "mb1ic2ih5iw7"}
    for k, image in shapes.items():
        problem = ConvProblem.parse(f"{image}oc{k}kh3ph1")
        x = rng.integers(-3, 4, problem.input_shape).astype(np.float32)
        w = rng.integers(-2, 3, problem.weight_shape).astype(np.float32)
        for kernel in (winograd.winograd_f2x2_3x3, winograd.winograd_f4x4_3x3):
            monkeypatch.setattr(winograd.WinogradCPU, "layout", lambda self, p: layout)
            tiled = kernel.prepare(problem, w)
            assert tiled.impl.startswith(layout)
            out = tiled(x)
            monkeypatch.setattr(winograd.WinogradCPU, "layout",
                                lambda self, p: winograd.CHANNEL_MAJOR)
            expected = kernel.prepare(problem, w)(x)
            if kernel.m == 2:
                np.testing.assert_array_equal(out, expected)
            else:
                np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
    tiles_w = -(-27 // 2)
    assert 300 * tiles_w <= ROW < 1061 * tiles_w      # the three ways are all taken
    assert winograd._output_blocks(4, ROW + 37) == (1, ROW)


def checked_generator(name):
    """tools/<name>.py, imported, after its ``--check`` passed on the committed file."""
    tools = Path(__file__).parent.parent / "tools"
    proc = subprocess.run([sys.executable, str(tools / f"{name}.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sys.path.insert(0, str(tools))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tools))


def check_refuses(generator, edited_text, tmp_path, monkeypatch):
    """The generator's ``--check`` exits 1 on a file holding ``edited_text``."""
    edited = tmp_path / generator.TARGET.name
    edited.write_text(edited_text)
    assert edited_text != generator.source()
    monkeypatch.setattr(generator, "TARGET", edited)
    assert generator.main(["--check"]) == 1


def test_winograd_tile_rows_are_what_their_generator_writes(tmp_path, monkeypatch):
    """kernels/cpu/_winograd_rows.py is generated: ``--check`` passes on the committed file and
    fails on one edited by hand; the coefficients it writes are the transform tables'."""
    gen_winograd_rows = checked_generator("gen_winograd_rows")
    text = gen_winograd_rows.source()
    from kernels.cpu import _winograd_rows
    from kernels.winograd_transforms import transforms
    used = {float(getattr(_winograd_rows, name)) for name in dir(_winograd_rows)
            if name[0] == "C" and name[1:].isdigit()}
    tables = {float(value) for m, r in gen_winograd_rows.VARIANTS
              for key in ("BT", "AT") for row in transforms(m, r)[key] for value in row}
    assert used == tables - {0.0}
    check_refuses(gen_winograd_rows, text.replace("C2 * x0_0", "C2 * x0_1", 1), tmp_path,
                  monkeypatch)


def test_generator_writes_its_file_and_drops_the_callers_numba_cache(tmp_path, monkeypatch):
    """Writing the generated file removes the numba cache of the module that calls it (numba
    checks only each function's own file, so that module's compiled code would keep the old
    loops) and nothing else in the cache."""
    gen_winograd_rows = checked_generator("gen_winograd_rows")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    stale = [cache / "winograd._input_rows-312.py311.nbi",
             cache / "winograd._input_rows-312.py311.1.nbc"]
    kept = [cache / "direct._direct-140.py311.nbi",
            cache / "_winograd_rows.input_f2x2_3x3-40.py311.nbi"]
    for path in stale + kept:
        path.write_bytes(b"")
    monkeypatch.setattr(gen_winograd_rows, "TARGET", tmp_path / "_winograd_rows.py")
    assert gen_winograd_rows.main([]) == 0
    assert (tmp_path / "_winograd_rows.py").read_text() == gen_winograd_rows.source()
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_winograd_bands_give_the_whole_image_answer(monkeypatch):
    """Bands change where V and M live, not what is summed: the output of channel-major on a
    padded problem with two images whose tile rows split into bands unevenly, to the BLAS's
    rounding (a narrower product may take another of its kernels; on the CI machine the two
    were identical here, and on VGG-16 conv1_2 at F(4x4) not)."""
    from kernels.cpu import winograd
    problem = ConvProblem.parse("mb2ic5ih23iw17oc3oh25ow19kh3ph2pw2")
    x, w = make_inputs(problem, seed=11)
    for kernel in (winograd.winograd_f2x2_3x3, winograd.winograd_f4x4_3x3):
        monkeypatch.setattr(winograd.WinogradCPU, "layout", lambda self, p: winograd.CHANNEL_MAJOR)
        whole = kernel.prepare(problem, w)(x)
        monkeypatch.setattr(winograd.WinogradCPU, "layout", lambda self, p: winograd.CHANNEL_BANDS)
        for rows in (1, 2, 3, 50):
            monkeypatch.setattr(winograd.WinogradCPU, "_band_rows", lambda self, p: rows)
            run = kernel.prepare(problem, w)
            np.testing.assert_allclose(run(x), whole, rtol=0, atol=1e-6 * np.abs(whole).max())


def test_winograd_layout_rule(monkeypatch):
    """Large images with few channels go channel-major (by bands of tile rows when an image
    makes two bands or more), few tiles with filters that fit the rule's
    bytes tile rows, larger filters by stages; a grouped layer tile rows, or channel-major with few
    channels per group or large filters; one thread, tile rows."""
    from kernels.cpu import winograd
    f2, f4 = winograd.winograd_f2x2_3x3, winograd.winograd_f4x4_3x3
    monkeypatch.setattr(winograd, "share_count", lambda threads: 2)
    res2a, res4a = (ConvProblem.parse(text) for text in ("mb1ic64ih56oc64oh56kh3ph1",
                                                         "mb1ic256ih14oc256oh14kh3ph1"))
    conv5_1 = ConvProblem.parse("mb1ic512ih14oc512oh14kh3ph1")
    grouped = ConvProblem.parse("g2mb1ic256ih14oc256oh14kh3ph1")
    depthwise = ConvProblem.parse("g256mb1ic256ih14oc256oh14kh3ph1")
    grouped_large = ConvProblem.parse("g2mb1ic1024ih14oc1024oh14kh3ph1")   # 32 MiB of filters
    conv1_2 = ConvProblem.parse("mb1ic64ih224oc64oh224kh3ph1")   # 49 tiles per channel at F(4x4)
    three = ConvProblem.parse("mb1ic3ih32oc6oh32kh3ph1")          # few tiles, three channels
    assert f2.layout(res2a) == winograd.TILE_ROWS                  # 12.25 tiles per channel
    assert f4.layout(conv1_2) == winograd.CHANNEL_BANDS             # 29 MB of V: bands
    assert f4.layout(three) == winograd.CHANNEL_MAJOR
    row = 4 * 36 * (64 + 64) * 57                   # a tile row's V and M
    rows = f4._band_rows(conv1_2)                   # as many as keep a band's in the bound
    assert row * rows <= winograd.CHANNEL_BAND_BYTES < row * (rows + 1)
    assert f4.workspace_bytes(conv1_2) < row * 56 // 2      # less than one whole V
    assert f2.layout(ConvProblem.parse("mb1ic3ih224oc64oh224kh3ph1")) == winograd.CHANNEL_BANDS
    # a batch of images under two bands each: by bands where each image is large enough
    batch = ConvProblem.parse("mb16ic16ih24iw240oc32oh24ow240kh3ph1")   # 4.5 MB an image
    assert f2._band_rows(batch) * 2 > f2._tiles(batch)[0]
    assert f2.layout(batch) == winograd.CHANNEL_BANDS
    assert f2.layout(batch.with_mb(1)) == winograd.CHANNEL_MAJOR
    lenet = ConvProblem.parse("mb64ic6ih14oc16oh10kh5")                # 111 KB an image
    assert winograd.winograd_f2x2_5x5.layout(lenet) == winograd.CHANNEL_MAJOR
    monkeypatch.setattr(winograd, "CHANNEL_BAND_BYTES", row * 29)
    assert f4.layout(conv1_2) == winograd.CHANNEL_MAJOR    # under two bands: whole images
    assert f4.layout(res2a) == winograd.TILE_ROWS
    assert f4.layout(res4a) == winograd.TILE_ROWS
    assert f2.layout(conv5_1) == winograd.TILE_STAGES
    assert f2.layout(grouped) == winograd.TILE_ROWS
    assert f2.layout(depthwise) == winograd.CHANNEL_MAJOR
    assert f2.layout(grouped_large) == winograd.CHANNEL_MAJOR
    monkeypatch.setattr(winograd, "share_count", lambda threads: 1)
    assert f2.layout(conv5_1) == winograd.TILE_ROWS


def test_direct_takes_its_depthwise_path_exactly_for_one_input_channel_per_group():
    """The edge cases and random problems above check both paths' answers; this checks that each
    ran where it should (the depthwise one keeps no output-channel blocks)."""
    from kernels.cpu.direct import is_halving_3x3_depthwise, is_same_3x3_depthwise
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    problems = [ConvProblem.parse(text) for text in EDGE_CASES] + random_problems(60, seed=2024)
    paths = {(problem.c == problem.groups, is_same_3x3_depthwise(problem),
              is_halving_3x3_depthwise(problem),
              direct.prepare(problem, make_inputs(problem)[1]).impl) for problem in problems}
    # SERIAL_FLOPS is 0 here (conftest)
    assert paths == {(True, False, False, "depthwise"),
                     (False, False, False, "blocks of 8 channels x 32 outputs"),
                     (True, True, False, "depthwise 3x3: whole channels"),
                     (True, True, False, "depthwise 3x3: by rows"),
                     (True, False, True, "depthwise 3x3, stride 2: phase planes")}
    assert not is_same_3x3_depthwise(ConvProblem.parse("g4mb1ic4ih2iw8oc4oh2ow8kh3ph1"))
    assert not is_same_3x3_depthwise(ConvProblem.parse("g4mb1ic4ih8oc4oh4kh3sh2ph1"))
    assert not is_same_3x3_depthwise(ConvProblem.parse("g4mb1ic4ih8oc4oh8kh3ph1pw2ow10"))
    for text in ("g4mb1ic4ih7iw8oc4oh4ow4kh3sh2ph1", "g4mb1ic4ih8iw9oc4oh4ow5kh3sh2ph1",
                 "g4mb1ic4ih8oc4oh4kh3sh2ph1pw2ow5", "g4mb1ic4ih8oc4oh3kh3sh2",
                 "g2mb1ic4ih8oc4oh4kh3sh2ph1"):
        assert not is_halving_3x3_depthwise(ConvProblem.parse(text)), text


@pytest.mark.parametrize("whole", [True, False], ids=["whole channels", "by rows"])
def test_direct_same_3x3_depthwise_either_way(whole, monkeypatch):
    """The copy-free depthwise 3x3 path, made to take whole channels (under four masks) or rows
    (under two) whatever the image size: right against the reference, bit for bit on integer
    inputs, on a batch whose first and last channel (always by rows) differ from the others, with
    one and two output channels per input channel, a single channel, and the smallest images."""
    from kernels.cpu import direct as module
    monkeypatch.setattr(module, "SAME_FLAT_PIXELS", 10 ** 9 if whole else 0)
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    for text in ("g5mb3ic5ih7iw11oc5oh7ow11kh3ph1", "g3mb2ic3ih12iw5oc6oh12ow5kh3ph1",
                 "g1mb1ic1ih3oc1oh3kh3ph1", "g4mb1ic4ih3iw4oc8oh3ow4kh3ph1",
                 "g8mb2ic8ih16oc8oh16kh3ph1"):
        problem = ConvProblem.parse(text)
        assert module.is_same_3x3_depthwise(problem), text
        assert direct.prepare(problem, make_inputs(problem)[1]).impl.endswith(
            "whole channels" if whole else "by rows")
        check_against_reference(direct, problem)
        check_against_reference(direct, problem, fill="integer")


def test_direct_halving_3x3_depthwise():
    """The stride-2 depthwise 3x3 path on phase planes: right against the reference and bit for
    bit on integer inputs, with a batch spread over the threads, two output channels per input
    channel, a single output row or column, and rectangular images."""
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    for text in ("g5mb3ic5ih10iw6oc5oh5ow3kh3sh2ph1", "g3mb2ic3ih4iw12oc6oh2ow6kh3sh2ph1",
                 "g1mb1ic1ih2oc1oh1kh3sh2ph1", "g4mb1ic4ih2iw8oc8oh1ow4kh3sh2ph1",
                 "g8mb2ic8ih16oc8oh8kh3sh2ph1"):
        problem = ConvProblem.parse(text)
        assert direct.prepare(problem, make_inputs(problem)[1]).impl == (
            "depthwise 3x3, stride 2: phase planes"), text
        check_against_reference(direct, problem)
        check_against_reference(direct, problem, fill="integer")


@pytest.mark.parametrize("chunks, tasks", [(1, 64), (3, 1), (16, 4)],
                         ids=["one run a task", "three runs", "whole images"])
def test_direct_blocks_cut_into_tasks_any_way(chunks, tasks, monkeypatch):
    """The blocked path with its tasks cut every way: spans of one run of 32 output positions
    (ending mid-row, and at the last image's end), of three, or of whole images; channel blocks
    each a task of their own, or all in one. Against the reference, and bit for bit on integer
    inputs: batches, groups, strides, dilation, padding on one side only, channel counts that are
    not a multiple of the block's eight, and inputs read in place (whose last run of 32 would
    read past the input's end if not moved back: the bounds-check run above catches a read
    there)."""
    from kernels.cpu import direct as module
    monkeypatch.setattr(module, "CHUNKS_PER_TASK", chunks)
    monkeypatch.setattr(module, "TASKS_PER_THREAD", tasks)
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    for text in ("mb3ic5ih11iw13oc19kh3ph1", "g2mb2ic6ih9oc34kh3sh2ph1", "mb1ic4ih16oc8kh5dh2ph4",
                 "mb2ic3ih7iw20oc17oh3ow10kh3sh2pw1", "mb1ic2ih1iw40oc9kh1kw7",
                 "mb3ic5ih11iw13oc19kh3", "g3mb2ic6ih9oc12kh1", "mb1ic3ih16iw40oc8kh5dh2",
                 "mb2ic4ih5oc9kh3"):
        problem = ConvProblem.parse(text)
        plan = direct.impl._plan(problem)
        # unit stride and no padding: the input is read in place, its last run moved back to end
        # at the last output, unless an image has fewer outputs than a run (the last problem)
        in_place = (problem.stride == (1, 1) and problem.padding == (0, 0)
                    and (problem.p - 1) * problem.w + problem.q >= 32)
        run = direct.prepare(problem, make_inputs(problem)[1])
        stages = [name for name, _ in getattr(run, "stages", ())]
        assert stages == ([] if in_place else ["split into stride phases", "sliding window"])
        if tasks == 64:
            assert plan.blocks_per_task == 1, text
        runs = -(-((problem.p - 1) * plan.shape[-1] + problem.q) // 32)
        assert plan.chunks_per_task == min(chunks, runs), text
        check_against_reference(direct, problem)
        check_against_reference(direct, problem, fill="integer")


def test_direct_workspace_holds_a_copy_of_the_input_only_where_it_copies():
    """Unit stride without padding reads the input in place: the workspace is the tasks' sums
    alone, less than the input. Padded, the same layer copies the input into planes, and the
    workspace holds at least the input."""
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    unpadded = ConvProblem.parse("mb2ic64ih30oc16kh3")
    padded = ConvProblem.parse("mb2ic64ih30oc16kh3ph1")
    input_bytes = 4 * 2 * 64 * 30 * 30
    assert 0 < direct.workspace_bytes(unpadded) < input_bytes / 4
    assert direct.workspace_bytes(padded) > input_bytes


def test_direct_blocks_inner_loop_is_what_its_generator_writes(tmp_path, monkeypatch):
    """kernels/cpu/_direct_block.py is generated: ``--check`` passes on the committed file and
    fails on one edited by hand."""
    gen_direct_block = checked_generator("gen_direct_block")
    text = gen_direct_block.source()
    assert text.count(" += ") == gen_direct_block.CHANNELS * gen_direct_block.LANES
    check_refuses(gen_direct_block, text.replace("s3_17 += w3 * x17", "s3_17 += w3 * x16"),
                  tmp_path, monkeypatch)


def test_slp_vectorized_puts_numbas_setting_back():
    """The block turns numba's SLP vectorizer on and restores the setting, after an error too."""
    from kernels.cpu.direct import slp_vectorized
    before = numba.config.SLP_VECTORIZE
    with pytest.raises(RuntimeError):
        with slp_vectorized():
            assert numba.config.SLP_VECTORIZE == 1
            raise RuntimeError("compile failed")
    assert numba.config.SLP_VECTORIZE == before


def test_one_thread_runs_numba_loops_on_the_calling_thread_and_gives_the_count_back():
    """The wrapper sets numba's thread count to one for the call and each stage, puts it back
    afterwards (also after a failure), and keeps what ``prepare`` recorded."""
    import numba
    from kernels.cpu._common import one_thread
    before = numba.get_num_threads()

    def run(x):
        if x is None:
            raise ValueError("no input")
        return numba.get_num_threads()
    run.impl, run.column_matrix = "lowered", "kept"
    run.stages = (("only", run),)
    wrapped = one_thread(run)
    assert wrapped(1) == 1 and numba.get_num_threads() == before
    assert dict(wrapped.stages)["only"](1) == 1 and numba.get_num_threads() == before
    with pytest.raises(ValueError):
        wrapped(None)
    assert numba.get_num_threads() == before
    assert (wrapped.impl, wrapped.column_matrix) == ("lowered, one thread", "kept")


@pytest.mark.parametrize("algo", ["direct", "winograd_5x5"])
def test_a_small_problem_runs_on_one_thread_and_a_large_one_on_all(algo, monkeypatch):
    """Under ``SERIAL_FLOPS`` (direct count; depthwise under ``SERIAL_DEPTHWISE_BYTES``) a kernel
    with numba loops runs them on one thread, still right, and counts one thread's scratch in its
    workspace; from the bounds up it runs as before. Depthwise and blocked direct, channel-major
    and tile-major Winograd."""
    from kernels.cpu import _common
    monkeypatch.setattr(_common, "SERIAL_FLOPS", 10e6)
    monkeypatch.setattr(_common, "SERIAL_DEPTHWISE_BYTES", 2 ** 20)
    kernel = next(kernel for kernel in KERNELS if kernel.spec.algo == algo)
    for text in ("mb2ic4ih12oc6kh5ph2", "g4mb1ic4ih10oc8kh5ph2", "mb1ic32ih6oc32kh5ph2"):
        problem = ConvProblem.parse(text)
        assert problem.flops < 10e6
        x, w = make_inputs(problem, seed=4)
        run = kernel.prepare(problem, w)
        assert run.impl.endswith(("one thread", "on 1 thread")), (text, run.impl)
        tolerance = kernel.tolerance_for(problem)
        assert compare(run(x), reference_for(problem, x, w), tolerance).passed, text
        serial_workspace = kernel.impl.workspace_bytes(problem)
        monkeypatch.setattr(_common, "SERIAL_FLOPS", 0)
        monkeypatch.setattr(_common, "SERIAL_DEPTHWISE_BYTES", 0)
        if numba.get_num_threads() > 1 and run.impl.startswith(("depthwise", "channel-major")):
            assert kernel.impl.workspace_bytes(problem) > serial_workspace, text
        monkeypatch.setattr(_common, "SERIAL_FLOPS", 10e6)
        monkeypatch.setattr(_common, "SERIAL_DEPTHWISE_BYTES", 2 ** 20)
    # 65 MFLOP; a depthwise layer of 3.8 MB (0.6 MFLOP)
    for text in ("mb1ic64ih20oc64kh5ph2", "g64mb1ic64ih62oc64kh5ph2"):
        large = ConvProblem.parse(text)
        impl = kernel.prepare(large, make_inputs(large)[1]).impl or ""
        assert "one thread" not in impl and "on 1 thread" not in impl, text
    # 20 MFLOP: over direct's bound, under the Winograds' (they do a fraction of the arithmetic)
    middle = ConvProblem.parse("mb1ic16ih28oc32oh28kh5ph2")
    impl = kernel.prepare(middle, make_inputs(middle)[1]).impl or ""
    assert impl.endswith("on 1 thread") if algo.startswith("winograd") else "one" not in impl


def test_direct_depthwise_workspace_is_per_thread_not_per_input():
    """The depthwise path keeps one channel's planes per thread, so its workspace grows with the
    thread count, not with the channel count."""
    from numba import get_num_threads
    direct = next(kernel for kernel in KERNELS if kernel.spec.algo == "direct")
    few, many = (ConvProblem.parse(f"g{c}mb1ic{c}ih14oc{c}oh16kh3ph2") for c in (64, 512))
    assert direct.workspace_bytes(few) == direct.workspace_bytes(many) > 0
    threads = min(get_num_threads(), 64)
    assert direct.workspace_bytes(few) == 4 * threads * (18 * 18 + 15 * 18 + 16)
    # the copy-free 3x3 path keeps only its four masks of the image's size
    same = ConvProblem.parse("g64mb4ic64ih14oc64oh14kh3ph1")
    assert direct.workspace_bytes(same) == 4 * 4 * 14 * 14
    # at stride 2, 5x5: four 9 x 9 phase planes and a run of 6 * 9 + 7, and the 14 x 14 column pairs
    strided = ConvProblem.parse("g64mb1ic64ih14oc64oh7kh5sh2ph2")
    assert direct.workspace_bytes(strided) == 4 * threads * (4 * 9 * 9 + 6 * 9 + 7 + 14 * 14)
    # 3x3 at stride 2: a channel's four 7 x 7 planes per thread, two masks of the output's size
    halving = ConvProblem.parse("g64mb1ic64ih14oc64oh7kh3sh2ph1")
    assert direct.workspace_bytes(halving) == 4 * (2 * 7 * 7 + threads * 14 * 14)
