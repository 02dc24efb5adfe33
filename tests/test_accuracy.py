"""The comparison with the reference where its usual yardstick, the reference's own norm, fails."""

import numpy as np
import pytest

from convbench import ConvProblem
from convbench._case import validate
from convbench.accuracy import compare, make_inputs, typical_output_norm
from convbench.reference import reference_for
from convbench.registry import get_kernel

from .conftest import cpu_kernels

# Found by a fuzz of random problems: one input pixel, padded by 3 and 2, under a 2x2 filter dilated
# by 3 whose taps all fall beside it, so every output reads only padding and the reference is zero.
# The FFT kernels still leave their rounding noise there, which as an absolute L2 error (2.1e-6 on
# the uniform fill) was above fft's tolerance of 2e-6.
ALL_PADDING = ConvProblem.parse("g4mb8ic60ih1oc28oh4ow2kh2ph3pw2dh2")


def test_the_all_padding_problem_has_a_zero_reference():
    x, w = make_inputs(ALL_PADDING, seed=0)
    assert not reference_for(ALL_PADDING, x, w).any()


@pytest.mark.parametrize("kernel", [k for k in cpu_kernels() if k.supports(ALL_PADDING) is None],
                         ids=lambda kernel: kernel.name)
def test_every_kernel_passes_a_problem_whose_outputs_read_only_padding(kernel):
    found, _, _ = validate(kernel, ALL_PADDING, seed=0, memory_budget=1 << 30)
    assert found["status"] == "PASSED", found["reason"]
    assert found["rel_l2"] < kernel.tolerance_for(ALL_PADDING)


def test_a_zero_reference_measures_the_error_against_a_typical_output():
    x, w = make_inputs(ALL_PADDING, seed=0)
    ref = np.zeros(ALL_PADDING.output_shape)
    scale = typical_output_norm(ALL_PADDING, x, w)
    noise = np.random.default_rng(0).standard_normal(ref.shape)
    small = (noise * (1e-7 * scale / np.linalg.norm(noise))).astype(np.float32)
    check = compare(small, ref, 2e-6, scale=scale)
    assert check.passed and check.rel_l2 == pytest.approx(1e-7, rel=1e-3)
    # the same output is 1e-7 of the scale, but above 2e-6 as an absolute norm without it
    assert scale > 20 and not compare(small, ref, 2e-6).passed
    large = small * np.float32(100)
    check = compare(large, ref, 2e-6, scale=scale)
    assert not check.passed and "zero everywhere" in check.reason
    assert compare(np.zeros_like(small), ref, 0.0, exact=True, scale=scale).passed


def test_a_nonzero_reference_is_still_its_own_yardstick():
    problem = ConvProblem.parse("mb2ic8ih9oc4oh9kh3ph1")
    x, w = make_inputs(problem, seed=1)
    ref = reference_for(problem, x, w)
    y = (ref * (1 + 1e-5)).astype(np.float32)
    # the typical output's norm would not change the verdict here: it is not used
    assert compare(y, ref, 2e-5, scale=1e-9).rel_l2 == pytest.approx(1e-5, rel=1e-2)


def test_typical_output_norm_is_the_norm_of_an_unpadded_reference():
    problem = ConvProblem.parse("g2mb4ic32ih20oc16oh18kh3")
    x, w = make_inputs(problem, seed=3)
    measured = np.linalg.norm(reference_for(problem, x, w))
    assert typical_output_norm(problem, x, w) == pytest.approx(measured, rel=0.1)


# 8192 channels of 3x3: a sum of 73 728 terms, 16 times the 4608 the tolerances were measured on.
# Measured (AMD CI machine, seed 0): direct 4.3e-6 against its 3e-6, F(4x4,3x3) 1.5e-5 against
# its 1e-5; both within their tolerances grown 4x.
DEEP = ConvProblem.parse("mb1ic8192ih6oc16kh3ph1")


@pytest.mark.parametrize("name", ["direct/cpu", "winograd4/cpu"])
def test_a_deep_sum_is_allowed_the_rounding_its_depth_brings(name):
    kernel = get_kernel(name)
    assert kernel.tolerance_for(DEEP) == pytest.approx(4 * kernel.spec.tolerance)
    found, _, _ = validate(kernel, DEEP, seed=0, memory_budget=1 << 30)
    assert found["status"] == "PASSED", found["reason"]


def test_the_tolerance_grows_as_the_square_root_of_depth_past_the_measured_one():
    kernel = get_kernel("winograd_5x5/cpu")
    depth = kernel.spec.tolerance_depth
    assert depth == 832 * 25  # measured on DeepBench's 5x5 layers, deeper than the default
    at = ConvProblem.parse(f"mb1ic{depth // 25}ih8oc4kh5ph2")
    assert kernel.tolerance_for(at) == kernel.spec.tolerance
    assert kernel.tolerance_for(ConvProblem.parse("mb1ic8ih8oc4kh5ph2")) == kernel.spec.tolerance
    nine = ConvProblem.parse(f"g2mb1ic{2 * 9 * depth // 25}ih8oc4kh5ph2")  # per group: 9x deeper
    assert kernel.tolerance_for(nine) == pytest.approx(3 * kernel.spec.tolerance)


def test_a_row_records_the_tolerance_applied_to_its_problem():
    from convbench.runner import base_row
    kernel = get_kernel("direct/cpu")
    assert base_row(DEEP, kernel, threads=1)["tolerance"] == kernel.tolerance_for(DEEP)
    assert base_row(ALL_PADDING, kernel, threads=1)["tolerance"] == kernel.spec.tolerance
