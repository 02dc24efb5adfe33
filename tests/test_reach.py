"""convbench.reach: the code a kernel reaches, and its hash, which changes exactly when that code
does."""

import shutil
from pathlib import Path

import pytest

from convbench.reach import Reach, reach_hash
from convbench.registry import get_kernel

REPO = Path(__file__).resolve().parent.parent

PACKAGE = {
    "__init__.py": '''
"""A package."""
import os
if "PKG_SETTING" not in os.environ:
    os.environ["PKG_SETTING"] = "1"
def package_helper():
    return 0
''',
    "helpers.py": '''
from .deep import depth
CONST = 2
def used():
    return _inner() + depth()
def _inner():
    return CONST
def unused():
    return 1
_registry = []
_registry.append(len)
''',
    "deep.py": '''
def depth():
    return 3
def shallow():
    return 4
''',
    "whole.py": '''
def anything():
    return 5
def everything():
    return 6
''',
    "lazy.py": '''
def late():
    return 7
''',
    "kernel.py": '''
from . import whole
from .helpers import used
import math

class A:
    def run(self):
        return used() + whole.anything() + math.pi

class B:
    def run(self):
        from .lazy import late
        return late()

a = A()
b = B()

import pkg.lazy
import pkg.deep

class C:
    def run(self):
        return pkg.lazy.late()

c = C()
''',
}


def _package(root, edits=None):
    """The package above under ``root/pkg``, with ``edits`` ({file: (old, new)}) made."""
    folder = root / "pkg"
    folder.mkdir(parents=True)
    for name, text in PACKAGE.items():
        old, new = (edits or {}).get(name, ("", ""))
        assert old in text
        (folder / name).write_text(text.replace(old, new, 1) if old else text)
    return root


def _hashes(tmp_path, name, edits=None):
    root = _package(tmp_path / name, edits)
    return {target: reach_hash(f"pkg.kernel:{target}", root) for target in ("a", "b")}


@pytest.mark.parametrize("edits, changed", [
    pytest.param({"helpers.py": ("return 1", "return 10")}, set(), id="a helper nobody calls"),
    pytest.param({"deep.py": ("return 4", "return 40")}, set(), id="its neighbour in a module"),
    pytest.param({"__init__.py": ("return 0", "return 1")}, set(), id="a package function"),
    pytest.param({"kernel.py": ("import math\n", "import math\n# a comment\n")}, set(),
                 id="a comment"),
    pytest.param({"helpers.py": ("CONST = 2", "CONST = 3")}, {"a"}, id="a constant it reads"),
    pytest.param({"deep.py": ("return 3", "return 30")}, {"a"}, id="two imports away"),
    pytest.param({"whole.py": ("return 6", "return 60")}, {"a"}, id="a module used as an object"),
    pytest.param({"lazy.py": ("return 7", "return 70")}, {"b"}, id="an import inside a method"),
    pytest.param({"kernel.py": ("return late()", "return late() + 1")}, {"b"},
                 id="the other kernel's class"),
    pytest.param({"helpers.py": ("_registry.append(len)", "_registry.append(print)")},
                 {"a"}, id="a statement run on import"),
    pytest.param({"__init__.py": ('= "1"', '= "2"')}, {"a", "b"}, id="the package's set-up"),
])
def test_the_hash_changes_exactly_where_the_reached_code_does(tmp_path, edits, changed):
    base = _hashes(tmp_path, "base")
    edited = _hashes(tmp_path, "edited", edits)
    assert {target for target in base if base[target] != edited[target]} == changed


def test_a_whole_module_counts_every_definition(tmp_path):
    root = _package(tmp_path / "base")
    reach = Reach("pkg.helpers", root)
    assert "def unused" in reach.text() and "def shallow" not in reach.text()
    assert reach.modules == ["pkg", "pkg.deep", "pkg.helpers"]


def test_a_module_that_is_not_there_has_no_hash(tmp_path):
    assert reach_hash("pkg.missing:a", _package(tmp_path / "base")) is None


def test_a_shared_helper_marks_only_the_kernels_that_call_it(tmp_path):
    """The case this module exists for: a change to load_channel in kernels/cpu/_common.py, which
    the direct, im2col and Winograd kernels call and the FFT and the peers do not."""
    shutil.copytree(REPO / "kernels", tmp_path / "base" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "kernels", tmp_path / "edited" / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    common = tmp_path / "edited" / "kernels" / "cpu" / "_common.py"
    common.write_text(common.read_text() + "\nload_channel = None\n")
    changed = set()
    for algo in ("direct", "im2col", "fft", "fft_tiled", "winograd", "winograd4", "torch", "scipy"):
        target = get_kernel(algo, "cpu").spec.target
        hashes = [reach_hash(target, tmp_path / side) for side in ("base", "edited")]
        assert None not in hashes
        if hashes[0] != hashes[1]:
            changed.add(algo)
    assert changed == {"direct", "im2col", "winograd", "winograd4"}
    # the hash of this checkout is the one a run records
    assert reach_hash("kernels.cpu.fft:fft") == reach_hash("kernels.cpu.fft:fft",
                                                           tmp_path / "base")


def test_the_changes_are_named_by_the_definitions_they_touch(tmp_path):
    from convbench.reach import ON_IMPORT, changed_definitions
    base = _package(tmp_path / "base")
    edited = _package(tmp_path / "edited", {"helpers.py": (
        "return _inner() + depth()\n", "return _inner() + depth() + _extra()\ndef _extra():\n"
        "    return 0\n_registry.append(min)\n")})
    assert changed_definitions("pkg.kernel:a", base, edited) == [
        (f"pkg.helpers:{ON_IMPORT}", "changed"),
        ("pkg.helpers:_extra", "only in the second"),
        ("pkg.helpers:used", "changed")]
    assert changed_definitions("pkg.kernel:a", edited, base)[1] == ("pkg.helpers:_extra",
                                                                   "only in the first")
    assert changed_definitions("pkg.kernel:b", base, edited) == []


def test_every_import_that_binds_a_name_is_followed(tmp_path):
    """``import pkg.lazy`` and then ``import pkg.deep`` both bind ``pkg``: a kernel that calls
    ``pkg.lazy.late()`` reaches lazy.py, though the later import rebound the name."""
    base = reach_hash("pkg.kernel:c", _package(tmp_path / "base"))
    edited = reach_hash("pkg.kernel:c", _package(tmp_path / "edited",
                                                 {"lazy.py": ("return 7", "return 70")}))
    assert base != edited
