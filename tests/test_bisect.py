"""convbench bisect: the commit that made a kernel slower, found with ab's timing."""

import shutil
import subprocess
import sys

import pytest

from convbench.ab import ABError, ABSettings
from convbench.bisect import bisect, kernel_versions
from convbench.registry import get_kernel
from convbench.shapes import load_shapes
from .test_ab import PROBLEM, REPO, SLOW, _git

# One thread, pinned: at two, a call of this tiny problem took 16 us in some worker processes and
# 89 us in others (waking numba's second thread), so three process pairs could call an unchanged
# kernel 5x slower. And only a change of 2x or more counts: the slowdown (a 5 ms sleep) is far more.
FAST = ABSettings(processes=3, rounds=2, min_time=0.01, case_timeout=300, min_change=1.0,
                  threads=1)


def _append(root, text, message, path="kernels/cpu/direct.py"):
    with open(root / path, "a") as handle:
        handle.write(text)
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", message)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """good, then: a code change that costs nothing, a change outside kernels/, the slowdown, a
    comment and a name the kernel never reads (no change to its code), another free code change
    (bad = HEAD)."""
    root = tmp_path_factory.mktemp("history") / "repo"
    shutil.copytree(REPO / "kernels", root / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "good")
    _append(root, "\nTASKS_PER_THREAD = TASKS_PER_THREAD + 0\n", "free change A")
    _append(root, "notes\n", "notes only", path="NOTES.txt")
    _append(root, SLOW, "the slowdown")
    _append(root, "# only a comment\n_UNREAD = 1\n", "a comment and an unread name")
    _append(root, "\nCHUNKS_PER_TASK = CHUNKS_PER_TASK * 1\n", "free change B")
    return root


def test_versions_are_the_commits_that_change_a_chosen_kernels_code(history, tmp_path):
    direct, im2col = get_kernel("direct", "cpu"), get_kernel("im2col", "cpu")
    good, bad, versions = kernel_versions("HEAD~5", "HEAD", [direct, im2col], history,
                                          root=tmp_path / "cache")
    assert [v.subject for v in versions] == ["free change A", "the slowdown", "free change B"]
    assert all(v.changed == ["direct/cpu"] for v in versions)
    assert bad == _git_out(history, "rev-parse", "HEAD")
    _, _, none = kernel_versions("HEAD~5", "HEAD", [im2col], history, root=tmp_path / "cache")
    assert none == []


def _git_out(root, *args):
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_revisions_are_checked(history, tmp_path):
    kernels = [get_kernel("direct", "cpu")]
    with pytest.raises(ABError, match="not an ancestor"):
        kernel_versions("HEAD", "HEAD~2", kernels, history, root=tmp_path)
    with pytest.raises(ABError, match="unknown revision 'nope'"):
        kernel_versions("nope", "HEAD", kernels, history, root=tmp_path)


@pytest.mark.sweep
def test_bisect_names_the_commit_that_made_it_slower(history, tmp_path):
    out = tmp_path / "bisect.json"
    seen = []
    document = bisect(load_shapes(PROBLEM), [get_kernel("direct", "cpu")], "HEAD~5", "HEAD",
                      FAST, repo=history, root=tmp_path / "cache", out=out,
                      report=lambda kind, version, results, step: seen.append(version.subject))
    assert document["outcome"] == "found"
    assert document["culprit"]["subject"] == "the slowdown"
    assert document["last_good"] == _git_out(history, "rev-parse", "HEAD~4")   # free change A
    assert document["confirm"]["regression"] is True
    # three versions: the search times A (not slower), then the slowdown (slower), and stops
    assert seen == ["free change B", "free change A", "the slowdown"]
    assert [step["regression"] for step in document["steps"]] == [False, True]
    assert out.is_file()


@pytest.mark.sweep
def test_bisect_with_nothing_slower_names_no_commit(history, tmp_path):
    document = bisect(load_shapes(PROBLEM), [get_kernel("direct", "cpu")], "HEAD~2", "HEAD",
                      FAST, repo=history, root=tmp_path / "cache")
    assert document["culprit"] is None and document["steps"] == []
    assert document["outcome"] == "no regression between good and bad on these cases"


@pytest.mark.parametrize("args, message", [
    (["--good", "no-such-rev"], "unknown revision 'no-such-rev'"),
    (["--good", "HEAD~1", "--processes", "2"], "--processes must be at least 3"),
    (["--good", "HEAD", "--bad", "HEAD"], "--good and --bad are the same commit"),
])
def test_cli_refuses_what_it_cannot_search(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "convbench", "bisect", *args, "--shapes", PROBLEM,
                           "--algo", "direct", "--out", str(tmp_path / "b.json")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and not (tmp_path / "b.json").exists()
