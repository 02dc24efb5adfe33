import numpy as np
import pytest

from convbench import ConvProblem, UnsupportedProblem, conv2d, conv2d_reference, get_kernel


def test_conv2d_matches_reference(rng):
    x = rng.uniform(-1, 1, (2, 4, 9, 7)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 2, 3, 3)).astype(np.float32)
    y = conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    ref = conv2d_reference(x, w, (2, 1), (1, 1), (1, 2), 2)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape, x_dtype, w_shape, kwargs, message", [
    ((1, 3, 8, 8), np.float64, (4, 3, 3, 3), {}, "dtype float64"),
    ((1, 3, 8), np.float32, (4, 3, 3, 3), {}, "x must be 4-D"),
    ((1, 3, 8, 8), np.float32, (4, 3, 3), {}, "w must be 4-D"),
    ((1, 3, 8, 8), np.float32, (4, 2, 3, 3), {}, "x needs 2 channels; it has 3"),
    ((1, 4, 8, 8), np.float32, (4, 2, 3, 3), {"groups": 0}, "groups must be a positive"),
    ((1, 4, 8, 8), np.float32, (3, 2, 3, 3), {"groups": 2}, "k=3 is not divisible by groups=2"),
    ((1, 3, 4, 4), np.float32, (4, 3, 7, 7), {}, "larger than the padded input"),
    ((1, 3, 8, 8), np.float32, (4, 3, 3, 3), {"stride": (1, 2, 3)}, "stride must be an int or a pair"),
    ((1, 3, 8, 8), np.float32, (4, 3, 3, 3), {"algo": "magic"}, "no kernel 'magic'"),
])
def test_bad_arguments_raise_value_error(x_shape, x_dtype, w_shape, kwargs, message):
    x = np.zeros(x_shape, dtype=x_dtype)
    w = np.zeros(w_shape, dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        conv2d(x, w, **kwargs)


def test_non_contiguous_input_is_refused_clearly(rng):
    x = rng.uniform(-1, 1, (1, 3, 8, 16)).astype(np.float32)[:, :, :, ::2]
    w = rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="not C-contiguous"):
        conv2d(x, w)


def test_lists_are_refused():
    with pytest.raises(ValueError, match="numpy.ndarray"):
        conv2d([[[[1.0]]]], np.ones((1, 1, 1, 1), np.float32))


def test_run_checks_its_input(rng):
    problem = ConvProblem.parse("mb1ic2ih6oc2oh6kh3ph1")
    run = get_kernel("direct", "cpu").prepare(problem, np.ones(problem.weight_shape, np.float32))
    with pytest.raises(ValueError, match=r"shape \(1, 2, 7, 6\); this problem expects \(1, 2, 6, 6\)"):
        run(np.zeros((1, 2, 7, 6), np.float32))


def test_unsupported_is_a_not_implemented_error():
    assert issubclass(UnsupportedProblem, NotImplementedError)
    error = UnsupportedProblem("needs a 3x3 filter")
    assert error.reason == "needs a 3x3 filter"


def test_memory_budget_makes_unsupported():
    x = np.zeros((1, 8, 32, 32), np.float32)
    w = np.zeros((8, 8, 3, 3), np.float32)
    with pytest.raises(UnsupportedProblem, match="memory budget"):
        conv2d(x, w, padding=1, memory_budget=1000)


def test_get_kernel_takes_a_full_kernel_name():
    assert get_kernel("fft/cpu") is get_kernel("fft", "cpu")
    with pytest.raises(ValueError, match="no kernel 'fft' for backend 'tpu'"):
        get_kernel("fft/tpu")
