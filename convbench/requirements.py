"""The libraries each command needs, checked before it starts.

``make bench PYTHON=python3`` runs the suite on an interpreter it did not set up (a GPU box
provisioned without a registry). Where that interpreter lacks a library the harness itself needs,
a sweep used to start anyway: every case's process died importing pyperf, and after the last one
the summary died importing pandas. The command now names what is missing before it starts.

The kernels' own libraries are not here: numba, CuPy and torch missing make their kernels
``SKIPPED`` with that reason (the registry's ``requires``), which is a result, not a set-up error.
"""

from __future__ import annotations

import importlib.util
import sys

# Module names, which for these are also the names pip installs them by (pyproject.toml). numpy is
# not among them: the command line cannot load without it, and Python's own error names it.
TABLES = ("pandas",)                              # reading, joining and printing results
TIMING = ("scipy", "pandas", "pyperf")            # the reference, the timing, the rows
FIGURES = ("pandas", "matplotlib")

VERDICTS = ("scipy", "pandas")                    # the significance test between two runs

NEEDS = {
    "run": TIMING, "find": TIMING, "ab": TIMING, "bisect": TIMING,
    "report": FIGURES, "history": VERDICTS + FIGURES[1:],
    "compare": VERDICTS, "show": TABLES, "export": TABLES,
    "list": (),                                   # list SET...: TABLES (see needed)
}


def needed(args):
    """The modules the parsed command line ``args`` needs, in a stable order."""
    modules = list(NEEDS.get(args.command, ()))
    if args.command == "list" and getattr(args, "shapes", None):   # a table of the sets' problems
        modules += TABLES
    if args.command == "run" and getattr(args, "report", None):
        modules += FIGURES
    return tuple(dict.fromkeys(modules))


def installed(module):
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # a parent package missing, a module without a spec
        return False


def missing_text(command, missing):
    """The error for ``command`` run where ``missing`` modules cannot be imported."""
    names = " ".join(missing)
    return (f"convbench {command}: {sys.executable} lacks {', '.join(missing)}, which "
            f"`convbench {command}` needs. Install {'it' if len(missing) == 1 else 'them'} "
            f"({sys.executable} -m pip install {names}), or run `make` without PYTHON=, which "
            f"makes a .venv with every dependency. On a machine without a package registry, "
            f"bring the wheels (pip download {names}) and install them from a folder: "
            f"tools/gpu_check.sh does that for pyperf from .whl/.")


def check(args):
    """None when every module the command needs is installed, else the error to print."""
    missing = [module for module in needed(args) if not installed(module)]
    return missing_text(args.command, missing) if missing else None
