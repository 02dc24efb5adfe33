"""What a command needs installed, and what it says before starting where that is missing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convbench import requirements
from convbench.__main__ import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def parsed(*argv):
    return build_parser().parse_args(list(argv))


def test_every_module_a_command_checks_is_a_declared_dependency():
    """The names checked are pip's names too, and the project installs every one of them."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    declared = {re.match(r"[A-Za-z0-9_.-]+", item).group().lower()
                for item in re.findall(r'"([^"]+)"', block)}
    checked = {module for modules in requirements.NEEDS.values() for module in modules}
    checked |= set(requirements.FIGURES + requirements.TABLES)
    assert checked and checked <= declared


@pytest.mark.parametrize("argv, expected", [
    (("run",), {"scipy", "pandas", "pyperf"}),
    (("run", "--report", "out"), {"scipy", "pandas", "pyperf", "matplotlib"}),
    (("find", "smoke"), {"scipy", "pandas", "pyperf"}),
    (("compare", "a.json", "b.json"), {"scipy", "pandas"}),
    (("report",), {"pandas", "matplotlib"}),
    (("list",), set()),
    (("list", "smoke"), {"pandas"}),
])
def test_a_command_needs_what_it_uses(argv, expected):
    assert set(requirements.needed(parsed(*argv))) == expected


def test_a_missing_library_stops_the_command_before_it_starts(tmp_path, monkeypatch, capsys):
    """As `make bench PYTHON=python3` on an interpreter without pyperf or matplotlib: the error
    names each missing module and how to install it, and no results file is begun."""
    monkeypatch.setattr(requirements, "installed",
                        lambda module: module not in ("pyperf", "matplotlib"))
    status = main(["run", "--shapes", "smoke", "--out", str(tmp_path / "results"),
                   "--report", str(tmp_path / "report")])
    error = capsys.readouterr().err
    assert status == 2
    assert "lacks pyperf, matplotlib" in error and "-m pip install pyperf matplotlib" in error
    assert sys.executable in error and "convbench run" in error
    assert not (tmp_path / "results").exists() and not (tmp_path / "report").exists()
    monkeypatch.setattr(requirements, "installed", lambda module: module != "pandas")
    assert main(["list"]) == 0                      # lists kernels without a table library
    assert main(["list", "smoke"]) == 2 and "lacks pandas," in capsys.readouterr().err


def test_a_library_that_cannot_be_found_counts_as_missing():
    assert requirements.installed("json")
    assert not requirements.installed("convbench_no_such_library")
    assert not requirements.installed("convbench_no_such_package.module")   # parent missing


def test_a_run_none_of_whose_kernels_can_run_here_is_refused(tmp_path):
    """Kernels of ours that cannot run here (their library missing) would give a run of nothing
    but SKIPPED rows: refused, naming why; a peer alone that cannot run is still recorded."""
    env = dict(os.environ, CONVBENCH_EXTRA_KERNELS="tests.bad_kernels:MISSING")

    def run(algos):
        return subprocess.run(
            [sys.executable, "-m", "convbench", "run", "--shapes", 'mb1ic2ih6oc2kh3n"tiny"',
             "--check-only", "--out", str(tmp_path), "--algo", algos],
            capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)

    refused = run("missing_ours,missing_peer")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert ("the selected kernel missing_ours/cpu cannot run here: convbench_no_such_library is "
            "not installed") in refused.stderr
    assert not list(tmp_path.glob("*/*.json"))
    peer_only = run("missing_peer")
    assert peer_only.returncode == 0, peer_only.stdout + peer_only.stderr
    assert "1 SKIPPED" in peer_only.stdout


def test_an_ab_none_of_whose_kernels_can_run_here_is_refused_not_passed(tmp_path):
    """ab with every case skipped would say "no significant slowdown" and exit 0 having timed
    nothing: a CI job on a machine without the kernel's library would pass. It is refused;
    --dry-run, which only reads the code, still answers."""
    env = dict(os.environ, CONVBENCH_EXTRA_KERNELS="tests.bad_kernels:MISSING")

    def ab(*extra):
        return subprocess.run(
            [sys.executable, "-m", "convbench", "ab", "--shapes", 'mb1ic2ih6oc2kh3n"tiny"',
             "--algo", "missing_ours", "--out", str(tmp_path / "ab.json"), *extra],
            capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)

    refused = ab()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "missing_ours/cpu cannot run here: convbench_no_such_library" in refused.stderr
    assert not (tmp_path / "ab.json").exists()
    dry = ab("--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
