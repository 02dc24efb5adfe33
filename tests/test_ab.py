"""convbench ab: two versions of the kernels timed alternately under one harness."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import ab
from convbench.ab import ABError, ABSettings, Tree, ratio_statistics, verdict
from convbench.problem import ConvProblem
from convbench.registry import get_kernel

REPO = Path(__file__).resolve().parent.parent
PROBLEM = 'mb1ic3ih9iw11oc4kh3ph1n"ab:tiny"'


# -- statistics ---------------------------------------------------------------------------------

def test_ratio_is_the_geometric_mean_of_the_process_medians():
    ratio, low, high = ratio_statistics([[math.log(1.2)] * 3, [math.log(1.1)] * 3], alpha=0.05)
    assert ratio == pytest.approx(math.sqrt(1.2 * 1.1))
    assert low < ratio < high


def test_one_disturbed_round_does_not_move_a_process_median():
    quiet = [[0.1, 0.1, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]
    disturbed = [[0.1, 0.1, 2.0], [0.1, -1.5, 0.1], [0.1, 0.1, 0.1]]
    assert ratio_statistics(disturbed, 0.05)[0] == pytest.approx(ratio_statistics(quiet, 0.05)[0])


def test_interval_narrows_with_more_process_pairs():
    few = [[0.00], [0.04], [0.02]]
    many = few * 4
    _, low_few, high_few = ratio_statistics(few, 0.05)
    _, low_many, high_many = ratio_statistics(many, 0.05)
    assert high_many - low_many < high_few - low_few


def test_a_single_process_pair_gives_no_interval():
    assert ratio_statistics([[0.1, 0.2]], 0.05)[1:] == (None, None)


@pytest.mark.parametrize("ratio, low, high, expected", [
    (1.20, 1.10, 1.30, "slower"),     # significant and large
    (0.80, 0.70, 0.90, "faster"),
    (1.03, 1.01, 1.05, "same"),       # significant but under min change
    (1.00, 0.98, 1.02, "same"),
    (1.08, 0.97, 1.20, "unclear"),    # could be a 20 % slowdown: more processes needed
    (1.06, 1.01, 1.11, "slower"),
    (1.10, None, None, "unclear"),
])
def test_verdict_rules(ratio, low, high, expected):
    assert verdict(ratio, low, high, min_change=0.05) == expected


# -- the table --------------------------------------------------------------------------------

def test_table_lists_what_ran_and_groups_the_skipped_with_their_whole_reason():
    ran = ab.CaseResult(descriptor="mb1ic8ih8oc8oh8kh3ph1", name="a", algo="winograd", backend="cpu",
                        same_source=False, identical_output=True, base_s=1e-3, new_s=0.9e-3,
                        ratio=0.9, ratio_low=0.85, ratio_high=0.95, verdict="faster")
    reason = ("Winograd F(2x2,3x3) needs a 3x3 filter, stride 1 and no dilation; this problem has "
              "a {0}x{0} filter")
    skipped = [ab.CaseResult(descriptor=f"mb1ic8ih8oc8oh8kh{r}", name=f"k{r}", algo="winograd",
                             backend="cpu", same_source=False, status="SKIPPED",
                             reason=reason.format(r), verdict="skipped") for r in (5, 7)]
    for markdown in (False, True):
        text = ab.render([skipped[0], ran, skipped[1]], markdown=markdown)
        table, rest = text.split("\n\n")
        assert "faster" in table and "-10.0% [-15.0, -5.0]" in table
        assert "k5" not in table and "k7" not in table
        assert "skipped, not run (2 cases)" in rest
        # one line for both layers, the reason not cut short
        assert "winograd/cpu on 2 layers (k5, k7): Winograd F(2x2,3x3) needs a 3x3 filter, " \
               "stride 1 and no dilation" in rest
        assert all(line == line.rstrip() for line in text.splitlines())
    assert ab.render([]) == "(no cases)"


def test_a_slower_call_on_identical_source_is_noise_not_a_regression():
    def case(algo, same_source, verdict, ratio):
        interval = (ratio - 0.05, ratio + 0.05) if ratio else (None, None)
        return ab.CaseResult(descriptor="mb1ic8ih8oc8oh8kh3ph1", name="a", algo=algo, backend="cpu",
                             same_source=same_source, ratio=ratio, ratio_low=interval[0],
                             ratio_high=interval[1], verdict=verdict)

    control = case("im2col", True, "slower", 1.097)
    changed = case("direct", False, "slower", 1.2)
    unknown = case("fft", None, "slower", 1.2)   # source could not be compared: counts
    broken = case("winograd", True, "broken by new", None)
    assert ab.regressions([control]) == []
    assert ab.regressions([control, changed, unknown, broken]) == [changed, unknown, broken]
    text = ab.summarize([control, case("direct", False, "same", 1.0)], min_change=0.05)
    assert "1 called slower or faster, largest change 9.7%" in text
    assert "this run's noise, not regressions" in text
    quiet = ab.summarize([case("im2col", True, "same", 1.01)], min_change=0.05)
    assert "noise" not in quiet


# -- source trees -------------------------------------------------------------------------------

def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "kernels").mkdir(parents=True)
    (root / "kernels" / "thing.py").write_text("VERSION = 1\n")
    (root / "other.txt").write_text("not a kernel\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "one")
    (root / "kernels" / "thing.py").write_text("VERSION = 2\n")
    _git(root, "commit", "-q", "-am", "two")
    return root


def test_commit_tree_extracts_only_kernels_of_that_revision(repo, tmp_path):
    tree = ab.commit_tree("HEAD~1", repo, root=tmp_path / "cache")
    assert (tree.path / "kernels" / "thing.py").read_text() == "VERSION = 1\n"
    assert not (tree.path / "other.txt").exists()
    assert tree.commit and tree.path.name == tree.commit and "HEAD~1" in tree.label


def test_commit_tree_is_reused_once_complete(repo, tmp_path):
    first = ab.commit_tree("HEAD", repo, root=tmp_path / "cache")
    marker = first.path / "kernels" / "thing.py"
    marker.write_text("touched\n")
    second = ab.commit_tree("HEAD", repo, root=tmp_path / "cache")
    assert second.path == first.path and marker.read_text() == "touched\n"


def test_unknown_revision_is_named(repo, tmp_path):
    with pytest.raises(ABError, match="no-such-branch"):
        ab.commit_tree("no-such-branch", repo, root=tmp_path / "cache")


def test_working_tree_knows_when_kernels_are_modified(repo):
    assert not ab.working_tree(repo).dirty
    (repo / "kernels" / "thing.py").write_text("VERSION = 3\n")
    tree = ab.working_tree(repo)
    assert tree.dirty and "modified" in tree.label and tree.path == repo


def test_a_directory_without_kernels_is_refused(tmp_path):
    with pytest.raises(ABError, match="without a kernels/ directory"):
        ab.resolve_tree(str(tmp_path))


# -- end to end, in worker processes ------------------------------------------------------------

def _kernel_tree(tmp_path, name, patch=None):
    """A copy of this checkout's kernels/ (numba caches and file times kept), optionally with
    ``patch`` appended to kernels/cpu/direct.py."""
    root = tmp_path / name
    shutil.copytree(REPO / "kernels", root / "kernels")
    if patch:
        with open(root / "kernels" / "cpu" / "direct.py", "a") as handle:
            handle.write(patch)
    return Tree(path=root, label=name, commit=None)


SLOW = """
import time as _time
_prepare = DirectCPU.prepare
def _slow_prepare(self, problem, w):
    run = _prepare(self, problem, w)
    def slow(x):
        _time.sleep(0.005)
        return run(x)
    return slow
DirectCPU.prepare = _slow_prepare
"""

WRONG = """
_prepare = DirectCPU.prepare
def _wrong_prepare(self, problem, w):
    run = _prepare(self, problem, w)
    return lambda x: run(x) * 0.5
DirectCPU.prepare = _wrong_prepare
"""

NUDGED = """
import numpy as _np
_prepare = DirectCPU.prepare
def _nudged_prepare(self, problem, w):
    run = _prepare(self, problem, w)
    # loses the low bits of every non-integer output, keeps integer fills exact
    return lambda x: (run(x) + _np.float32(3)) - _np.float32(3)
DirectCPU.prepare = _nudged_prepare
"""

CRASH = """
import os as _os
def _crash_prepare(self, problem, w):
    _os.abort()
DirectCPU.prepare = _crash_prepare
"""

FAST = ABSettings(processes=3, rounds=2, min_time=0.01, case_timeout=300)


def _measure(base, new, algo="direct", same_source=None):
    problem = ConvProblem.parse(PROBLEM)
    return ab.measure_case(problem, get_kernel(algo, "cpu"), {"base": base, "new": new}, FAST,
                           same_source=same_source)


@pytest.mark.sweep
def test_each_side_imports_kernels_from_its_own_tree(tmp_path):
    base, new = _kernel_tree(tmp_path, "base"), _kernel_tree(tmp_path, "new", SLOW)
    result = _measure(base, new)
    assert Path(result.base["kernels_file"]).is_relative_to(base.path)
    assert Path(result.new["kernels_file"]).is_relative_to(new.path)
    assert result.status == "PASSED" and result.base["rel_l2"] < 1e-6
    assert result.identical_output is True   # the slow version computes the same thing
    assert len(result.samples) == FAST.processes and all(len(p) == FAST.rounds
                                                         for p in result.samples)
    # a 5 ms sleep on a call of tens of microseconds
    assert result.verdict == "slower" and result.ratio > 5 and result.ratio_low > 1


@pytest.mark.sweep
def test_a_version_that_computes_wrong_is_broken_not_timed(tmp_path):
    result = _measure(_kernel_tree(tmp_path, "base"), _kernel_tree(tmp_path, "new", WRONG))
    assert result.status == "FAILED" and result.verdict == "broken by new"
    assert result.reason.startswith("new:") and result.samples == []
    assert ab.regressions([result]) == [result]


@pytest.mark.sweep
def test_outputs_that_differ_within_tolerance_pass_but_are_flagged(tmp_path):
    result = _measure(_kernel_tree(tmp_path, "base"), _kernel_tree(tmp_path, "new", NUDGED))
    assert result.status == "PASSED" and result.identical_output is False
    assert result.new["rel_l2"] > result.base["rel_l2"]


@pytest.mark.sweep
def test_a_version_that_crashes_is_broken(tmp_path):
    result = _measure(_kernel_tree(tmp_path, "base"), _kernel_tree(tmp_path, "new", CRASH))
    assert result.status == "CRASHED" and result.verdict == "broken by new"
    assert "new: worker died" in result.reason


@pytest.mark.sweep
def test_a_kernel_added_by_the_change_is_only_in_new(tmp_path):
    base = _kernel_tree(tmp_path, "base")
    (base.path / "kernels" / "cpu" / "winograd.py").unlink()
    result = _measure(base, _kernel_tree(tmp_path, "new"), algo="winograd")
    assert result.status == "SKIPPED" and result.verdict == "only in new"
    assert "kernels.cpu.winograd" in result.reason and ab.regressions([result]) == []


@pytest.mark.sweep
def test_fixing_a_broken_kernel_is_not_a_regression(tmp_path):
    result = _measure(_kernel_tree(tmp_path, "base", WRONG), _kernel_tree(tmp_path, "new"))
    assert result.verdict == "fixed by new" and ab.regressions([result]) == []


@pytest.mark.sweep
def test_cli_exits_1_on_a_slowdown_and_keeps_every_case(tmp_path):
    base, new = _kernel_tree(tmp_path, "base"), _kernel_tree(tmp_path, "new", SLOW)
    shapes = tmp_path / "shapes.txt"
    shapes.write_text(PROBLEM + "\n")
    out = tmp_path / "ab.json"
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "ab", "--base", str(base.path), "--new", str(new.path),
         "--shapes", str(shapes), "--algo", "direct,im2col,winograd", "--backend", "cpu",
         "--processes", "3", "--rounds", "2", "--min-time", "0.01", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: REGRESSION" in proc.stdout
    document = json.loads(out.read_text())
    by_algo = {case["algo"]: case for case in document["cases"]}
    assert by_algo["direct"]["verdict"] == "slower" and by_algo["direct"]["same_source"] is False
    assert by_algo["im2col"]["same_source"] is True and by_algo["im2col"]["status"] == "PASSED"
    assert by_algo["im2col"]["identical_output"] is True
    assert by_algo["winograd"]["status"] == "PASSED"   # 3x3 stride 1: supported
    # the time left after each measured case but the last: three cases, all measured
    counters = re.findall(r"^\[(\d)/3( ~\d+:\d\d left)?\]", proc.stderr, re.M)
    assert [(done, bool(left)) for done, left in counters] == [("1", True), ("2", True),
                                                               ("3", False)]

    # as if interrupted after two cases: --resume measures the third alone, with the stored trees
    kept = document["cases"][:2]
    out.write_text(json.dumps(dict(document, cases=kept)))
    proc = subprocess.run([sys.executable, "-m", "convbench", "ab", "--resume", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    resumed = json.loads(out.read_text())
    assert resumed["cases"][:2] == kept
    assert [case["algo"] for case in resumed["cases"]] == ["direct", "im2col", "winograd"]
    assert resumed["trees"] == document["trees"]
    # the machine and library settings the comparison ran with, kept from its start
    assert document["machine"]["machine_id"] and "library_settings" in document["machine"]
    assert resumed["machine"] == document["machine"]


def test_resume_refuses_a_file_that_is_not_an_ab_run(tmp_path):
    other = tmp_path / "run.json"
    other.write_text(json.dumps({"schema": 3, "rows": []}))
    with pytest.raises(ABError, match="run.json: not a convbench ab results file"):
        ab.read_ab(other)


def test_changed_only_with_nothing_changed_says_so(tmp_path):
    tree = _kernel_tree(tmp_path, "same")
    proc = subprocess.run([sys.executable, "-m", "convbench", "ab", "--base", str(tree.path),
                           "--new", ".", "--shapes", "smoke", "--algo", "direct", "--changed-only",
                           "--match", "odd|groups", "--out", str(tmp_path / "ab.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 problems x 1 kernels" in proc.stderr   # --match chose two of smoke's four
    assert "no selected kernel's source differs" in proc.stdout


def test_dry_run_names_the_changed_definitions_and_times_nothing(tmp_path):
    tree = _kernel_tree(tmp_path, "patched", "\nTASKS_PER_THREAD = 2\n")
    proc = subprocess.run([sys.executable, "-m", "convbench", "ab", "--base", str(tree.path),
                           "--new", ".", "--shapes", "smoke", "--algo", "direct,fft",
                           "--dry-run", "--out", str(tmp_path / "ab.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert lines["direct/cpu"].split(None, 1)[1] == "changed: `kernels.cpu.direct:TASKS_PER_THREAD`"
    assert "same code" in lines["fft/cpu"]
    assert "1 of 2 kernels' code changed" in proc.stdout
    assert not (tmp_path / "ab.json").exists()


def test_cli_names_a_bad_revision():
    proc = subprocess.run([sys.executable, "-m", "convbench", "ab", "--base", "no-such-rev-xyz",
                           "--shapes", "smoke"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no-such-rev-xyz" in proc.stderr


def test_a_comment_docstring_or_unused_name_leaves_the_kernel_the_same_code(tmp_path):
    kernel = get_kernel("direct", "cpu")
    base = _kernel_tree(tmp_path, "base")
    commented = _kernel_tree(tmp_path, "commented", '\n# a note on the kernel\n"""More prose."""\n')
    unused = _kernel_tree(tmp_path, "unused", "\nK_BLOCK = 4\n")     # nothing reads K_BLOCK
    changed = _kernel_tree(tmp_path, "changed", "\nTASKS_PER_THREAD = 2\n")  # _direct's split
    assert ab.source_digest(kernel, base) == ab.source_digest(kernel, commented)
    assert ab.source_digest(kernel, base) == ab.source_digest(kernel, unused)
    assert ab.source_digest(kernel, base) != ab.source_digest(kernel, changed)
