import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convbench import ConvProblem


def test_benchdnn_example_resnet50_res2a():
    p = ConvProblem.parse('mb8ic64ih56oc64oh56kh3ph1n"resnet50:res2a_branch2b"')
    assert (p.n, p.c, p.h, p.w, p.k, p.r, p.s) == (8, 64, 56, 56, 64, 3, 3)
    assert p.padding == (1, 1) and p.stride == (1, 1) and p.dilation == (1, 1) and p.groups == 1
    assert p.name == "resnet50:res2a_branch2b"
    assert p.output_shape == (8, 64, 56, 56)
    assert p.flops == 2 * 8 * 64 * 56 * 56 * 64 * 3 * 3
    assert p.params == 64 * 64 * 3 * 3 + 64


def test_benchdnn_example_full_form_and_canonical_print():
    text = 'g1mb50ic3ih224iw224oc64oh112ow112kh7kw7sh2sw2ph3pw3n"resnet_50:conv1"'
    p = ConvProblem.parse(text)
    assert p.output_shape == (50, 64, 112, 112)
    assert p.stride == (2, 2) and p.padding == (3, 3)
    assert p.descriptor == 'mb50ic3ih224oc64oh112kh7sh2ph3n"resnet_50:conv1"'
    assert ConvProblem.parse(p.descriptor) == p
    assert str(p) == p.descriptor


def test_defaults_follow_benchdnn():
    p = ConvProblem.parse("ic3ih10oc4kh3")
    assert p.n == 2  # benchdnn's default minibatch
    assert (p.w, p.s) == (10, 3) and p.stride == (1, 1) and p.padding == (0, 0)
    assert p.output_shape == (2, 4, 8, 8)


def test_dilation_zero_means_dense_and_w_values_default_to_h():
    p = ConvProblem.parse("mb1ic1ih20oc1kh3dh2ph1sh2")
    assert p.dilation == (3, 3) and p.stride == (2, 2) and p.padding == (1, 1)
    # dilated extent 7: (20 + 2 - 7) // 2 + 1 = 8
    assert (p.p, p.q) == (8, 8)
    assert ConvProblem.parse(p.descriptor) == p


def test_rectangular_and_grouped():
    p = ConvProblem.parse("g4mb2ic8ih10iw7oc12oh5ow7kh3kw1sh2sw1ph1pw0")
    assert p.weight_shape == (12, 2, 3, 1)
    assert p.output_shape == (2, 12, 5, 7)
    assert p.flops == 2 * 2 * 12 * 5 * 7 * 2 * 3 * 1
    assert p.params == 12 * 2 * 3 * 1 + 12
    assert ConvProblem.parse(p.descriptor) == p


def test_underscore_separators_and_bare_name():
    assert ConvProblem.parse("mb1_ic3_ih8_oc4_kh3_nlayer1").name == "layer1"


@pytest.mark.parametrize("text, words", [
    ("mb1ic3ih8oc4kh3zz1", ["unknown key 'zz'"]),
    ("mb0ic3ih8oc4kh3", ["mb", "0"]),
    ("mb1ic-3ih8oc4kh3", ["ic", "-3"]),
    ("mb1ic3ih0oc4kh3", ["ih", "0"]),
    ("mb1ic3ih8oc4kh9", ["filter along h", "9", "8"]),
    ("mb1ic3ih8oc4kh5dh1", ["filter along h", "spans 9"]),
    ("g2mb1ic3ih8oc4kh3", ["c=3", "groups=2"]),
    ("g3mb1ic3ih8oc4kh3", ["k=4", "groups=3"]),
    ("mb1ic3ih8oc4oh7kh3", ["oh=7", "6"]),
    ("mb1ic3ih8iw9oc4oh6ow9kh3", ["ow=9", "7"]),
    ("mb1ic3ih8oc4", ["required key 'kh'"]),
    ("mb1ic3ih8oc4kh3kh3", ["given twice"]),
    ("mb1ic3id8ih8oc4kh3", ["3-D"]),
    ("mb1ic3ih8oc4kh3rh1", ["asymmetric"]),
    ("mb1ic3ih8oc4kh3 extra", ["cannot read"]),
    ("", ["empty"]),
    ("mb1ic3ih8oc4kh3sh0", ["sh", "0"]),
])
def test_bad_descriptors_name_field_and_value(text, words):
    with pytest.raises(ValueError) as info:
        ConvProblem.parse(text)
    for word in words:
        assert word in str(info.value)


def test_direct_construction_validates():
    with pytest.raises(ValueError, match="stride along w must be >= 1, got 0"):
        ConvProblem(1, 1, 5, 5, 1, 3, 3, stride=(1, 0))
    with pytest.raises(ValueError, match="n must be an integer"):
        ConvProblem(1.5, 1, 5, 5, 1, 3, 3)


@pytest.mark.parametrize("count", [0, -2, 1.5, True, "3"])
def test_count_must_be_a_positive_integer(count):
    with pytest.raises(ValueError, match="count must be a positive integer"):
        ConvProblem(1, 1, 5, 5, 1, 3, 3, count=count)


def test_with_mb_keeps_everything_else():
    p = ConvProblem.parse('g2mb1ic4ih9oc6kh3ph1n"x"')
    q = p.with_mb(16)
    assert q.n == 16 and dataclasses.replace(q, n=1) == p
    assert dataclasses.replace(p, count=3).with_mb(16).count == 3


@st.composite
def problems(draw):
    groups = draw(st.integers(1, 4))
    c = groups * draw(st.integers(1, 8))
    k = groups * draw(st.integers(1, 8))
    r, s = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    min_h = max(1, (r - 1) * dh + 1 - 2 * ph)
    min_w = max(1, (s - 1) * dw + 1 - 2 * pw)
    h = draw(st.integers(min_h, min_h + 40))
    w = draw(st.integers(min_w, min_w + 40))
    name = draw(st.text(alphabet="abcxyz_:0123-", max_size=12))
    return ConvProblem(n=draw(st.integers(1, 64)), c=c, h=h, w=w, k=k, r=r, s=s,
                       stride=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
                       padding=(ph, pw), dilation=(dh, dw), groups=groups, name=name)


@settings(max_examples=300, deadline=None)
@given(problems())
def test_descriptor_round_trip(problem):
    text = problem.descriptor
    assert ConvProblem.parse(text) == problem
    p, q = problem.p, problem.q
    assert p >= 1 and q >= 1
    # output size formula, written out independently
    sh, sw = problem.stride
    assert (p - 1) * sh + (problem.r - 1) * problem.dilation[0] + 1 <= problem.h + 2 * problem.padding[0]
    assert p * sh + (problem.r - 1) * problem.dilation[0] + 1 > problem.h + 2 * problem.padding[0]
    assert (q - 1) * sw + (problem.s - 1) * problem.dilation[1] + 1 <= problem.w + 2 * problem.padding[1]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='mbicohkwsdpgn_"0123456789-xz ', max_size=40))
def test_parser_fuzz_gives_problem_or_value_error(text):
    try:
        problem = ConvProblem.parse(text)
    except ValueError:
        return
    assert ConvProblem.parse(problem.descriptor) == problem
