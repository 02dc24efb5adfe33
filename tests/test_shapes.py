import pytest

from convbench.shapes import load_shapes, match_problems, parse_lines, shape_sets

SHIPPED = ["alexnet", "deepbench", "default", "googlenet", "gpu32", "lenet5", "mobilenet_v1",
           "resnet50", "smoke", "vgg16"]


def test_every_required_set_is_shipped():
    assert set(SHIPPED) <= set(shape_sets())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sets_parse_and_round_trip(name):
    problems = load_shapes(name)
    assert problems
    for problem in problems:
        assert problem.name, f"{name}: {problem} has no layer name"
        assert type(problem).parse(problem.descriptor) == problem


def test_default_set_has_the_promised_mix():
    problems = load_shapes("default")
    kernels = {(p.r, p.s) for p in problems}
    assert {(1, 1), (3, 3), (5, 5), (7, 7), (11, 11)} <= kernels
    assert any(p.stride != (1, 1) for p in problems)
    assert all(p.n == 1 for p in problems)
    assert any(p.name.startswith("resnet50") and p.r == 3 for p in problems)
    assert any(p.name.startswith("vgg16") for p in problems)


def test_deepbench_holds_training_and_inference_sets():
    names = [p.name for p in load_shapes("deepbench")]
    assert sum(n.startswith("deepbench:train_") for n in names) == 94
    assert sum(n.startswith("deepbench:server_") for n in names) == 107
    assert sum(n.startswith("deepbench:device_") for n in names) == 16


def test_mobilenet_pairs_each_depthwise_layer_with_a_pointwise_one():
    problems = load_shapes("mobilenet_v1")
    depthwise = [p for p in problems if p.groups == p.c == p.k and (p.r, p.s) == (3, 3)]
    pointwise = [p for p in problems if (p.r, p.s) == (1, 1) and p.groups == 1]
    assert len(depthwise) == len(pointwise) == 9 and len(problems) == 19
    for dw, pw in zip(depthwise, pointwise):       # each 1x1 reads what the 3x3 before it wrote
        assert (pw.c, pw.h, pw.w) == (dw.k, dw.p, dw.q)


# Convolution layers of each whole network, as published: a set lists each distinct layer once
# with the number of times the network runs it
NETWORK_LAYERS = {"resnet50": 53, "vgg16": 13, "googlenet": 57, "mobilenet_v1": 27, "alexnet": 5,
                  "lenet5": 3}


@pytest.mark.parametrize("name", sorted(NETWORK_LAYERS))
def test_network_sets_count_every_layer_of_the_network(name):
    problems = load_shapes(name)
    assert all(p.count for p in problems), [p.name for p in problems if not p.count]
    assert sum(p.count for p in problems) == NETWORK_LAYERS[name]
    assert {p.count for p in load_shapes(name, mb=8)} == {p.count for p in problems}


def test_sets_that_sample_networks_have_no_counts():
    for name in ("default", "deepbench", "gpu32", "smoke"):
        assert all(p.count is None for p in load_shapes(name)), name


def test_a_count_ends_a_line_and_must_be_positive(tmp_path):
    first, second, third = parse_lines(['mb1ic2ih6oc3kh3n"net:a b x2" x4  # two words',
                                        "mb1ic2ih6oc3kh3 x1", 'mb1ic2ih6oc3kh3n"net:c"'])
    assert (first.name, first.count) == ("net:a b x2", 4)
    assert second.count == 1 and third.count is None
    assert "x4" not in first.descriptor           # the descriptor names the problem only
    assert first == parse_lines(['mb1ic2ih6oc3kh3n"net:a b x2"'])[0]
    for line, fault in (("mb1ic2ih6oc3kh3 x0", "count must be a positive integer, got 0"),
                        ("mb1ic2ih6oc3kh3 x", "cannot read ' x'"),
                        ("mb1ic2ih6oc3kh3 3", "cannot read ' 3'")):
        path = tmp_path / "counts.txt"
        path.write_text(f"# a comment\n{line}\n")
        with pytest.raises(ValueError, match=f"counts.txt:2: {fault}"):
            load_shapes(str(path))


def test_mb_rescales_batch():
    problems = load_shapes("resnet50", mb=32)
    assert {p.n for p in problems} == {32}
    assert [p.name for p in problems] == [p.name for p in load_shapes("resnet50")]
    with pytest.raises(ValueError, match="--mb must be positive"):
        load_shapes("smoke", mb=0)


def test_unknown_set_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_shapes("resnet51")
    assert "resnet51" in str(info.value) and "resnet50" in str(info.value)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my layers\nmb1ic3ih8oc4kh3\n\nmb1ic3ih8oc4kh3xx2\n")
    with pytest.raises(ValueError) as info:
        load_shapes(path)
    assert f"{path}:4:" in str(info.value) and "unknown key 'xx'" in str(info.value)


def test_user_file_with_comments(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text('mb1ic3ih8oc4kh3 # trailing comment\n  \n# only comment\nmb2ic1ih5oc1kh1n"b"\n')
    assert [p.n for p in load_shapes(path)] == [1, 2]


def test_benchdnn_options_are_refused_with_line():
    with pytest.raises(ValueError, match="<text>:1: benchdnn option"):
        parse_lines(["--dir=FWD_B"])


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no descriptors"):
        load_shapes(path)


def test_one_descriptor_is_a_set_of_one():
    problems = load_shapes('mb1ic64ih56oc64oh56kh3ph1n"res2a"', mb=4)
    assert len(problems) == 1
    assert (problems[0].n, problems[0].c, problems[0].padding, problems[0].name) == \
        (4, 64, (1, 1), "res2a")


def test_bad_descriptor_names_its_fault_and_the_sets():
    with pytest.raises(ValueError) as info:
        load_shapes("mb1ic64ih56oc64kh3xx2")
    message = str(info.value)
    assert "unknown key 'xx'" in message and "resnet50" in message
    with pytest.raises(ValueError, match="lacks the required key 'ih'"):
        load_shapes("mb1ic64")
    with pytest.raises(ValueError) as info:     # a mistyped set name is not read as a descriptor
        load_shapes("resnet5O")
    assert "unknown shape set 'resnet5O'" in str(info.value)


def test_match_keeps_the_problems_whose_name_or_descriptor_it_finds_in_set_order():
    resnet = load_shapes("resnet50")
    chosen = match_problems(resnet, "res[34]a_branch2b")
    assert [p.name for p in chosen] == ["resnet50:res3a_branch2b", "resnet50:res4a_branch2b"]
    by_descriptor = match_problems(resnet, "kh3ph1")     # every padded 3x3 layer, none other
    assert by_descriptor and all(p.r == p.s == 3 and p.padding == (1, 1) for p in by_descriptor)
    assert len(by_descriptor) == sum(p.r == 3 for p in resnet)
    assert match_problems(resnet, None) == resnet and match_problems(resnet, "") == resnet


def test_match_names_a_bad_expression_and_a_pattern_that_selects_nothing():
    with pytest.raises(ValueError, match=r"--match 'res\[34' is not a valid regular expression"):
        match_problems(load_shapes("resnet50"), "res[34")
    with pytest.raises(ValueError) as info:
        match_problems(load_shapes("smoke"), "conv9", source="smoke")
    message = str(info.value)
    assert "--match 'conv9' matches no problem of smoke" in message
    assert "smoke:3x3_odd" in message and "smoke:5x5" in message   # what there is to choose from
