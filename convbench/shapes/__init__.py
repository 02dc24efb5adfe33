"""Shape sets: text files of descriptors, one a line, ``#`` starting a comment.

A line may end in a count, ``x3`` after a space: the network runs that layer three times. A set
lists each distinct layer once; with a count on every line of a network, reports add its layers
up into the network's total (:func:`convbench.report.network_totals`).

A set is named by its file stem here (``resnet50``), given as a path to a file of one's own, or
written out as one descriptor (``mb1ic64ih56oc64oh56kh3ph1``) for a single problem.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ..problem import DESCRIPTOR_KEYS, ConvProblem

SHAPES_DIR = Path(__file__).resolve().parent


def shape_sets():
    """Names of the shipped shape sets."""
    return sorted(path.stem for path in SHAPES_DIR.glob("*.txt"))


def resolve(name_or_path) -> Path:
    """The file of a shipped set name, or an existing path; ValueError listing the valid names."""
    candidate = Path(name_or_path)
    if candidate.suffix == "" and (SHAPES_DIR / f"{name_or_path}.txt").is_file():
        return SHAPES_DIR / f"{name_or_path}.txt"
    if candidate.is_file():
        return candidate
    raise ValueError(f"unknown shape set {str(name_or_path)!r}: not a shipped set "
                     f"({', '.join(shape_sets())}) nor an existing file")


def parse_lines(lines, source="<text>"):
    """Problems from descriptor lines; ValueError naming ``source``, the line number and the fault."""
    problems = []
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("--"):
            raise ValueError(f"{source}:{number}: benchdnn option {line!r} is not supported; "
                             f"a shape file holds descriptors only")
        counted = _COUNT.match(line)
        try:
            if counted:
                problem = dataclasses.replace(ConvProblem.parse(counted.group(1)),
                                              count=int(counted.group(2)))
            else:
                problem = ConvProblem.parse(line)
        except ValueError as error:
            raise ValueError(f"{source}:{number}: {error}") from None
        problems.append(problem)
    return problems


# A descriptor, then its count: ``x`` and a number after white space (a descriptor has none but
# inside its quoted name, which ends before the count)
_COUNT = re.compile(r'^(.*\S)\s+x(\d+)$')


def load_shapes(name_or_path, mb=None):
    """The problems of a shape set, optionally rescaled to batch ``mb``.

    ``name_or_path`` is a shipped set's name, a file of descriptors, or one descriptor.

    Raises
    ------
    ValueError
        Unknown set (listing the shipped ones), a malformed line (file and line number), a
        malformed descriptor (the field at fault), an empty set, or a non-positive ``mb``.
    """
    try:
        path = resolve(name_or_path)
    except ValueError as unknown:
        problems = [_single_descriptor(str(name_or_path), unknown)]
    else:
        problems = parse_lines(path.read_text().splitlines(), source=str(path))
    if not problems:
        raise ValueError(f"{path}: holds no descriptors")
    if mb is not None:
        if mb < 1:
            raise ValueError(f"--mb must be positive, got {mb}")
        problems = [dataclasses.replace(problem, n=mb) for problem in problems]
    return problems


def match_problems(problems, pattern, source="the shapes"):
    """The problems whose name or canonical descriptor ``pattern`` (a Python regular expression)
    finds a match in, in their order; all of them when ``pattern`` is empty or None.

    Raises
    ------
    ValueError
        ``pattern`` is not a valid regular expression, or no problem of ``source`` matches it (the
        message lists a few names to choose from).
    """
    if not pattern:
        return list(problems)
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"--match {pattern!r} is not a valid regular expression: {error}") from None
    chosen = [problem for problem in problems
              if regex.search(problem.name or "") or regex.search(problem.descriptor)]
    if not chosen:
        names = [problem.name or problem.descriptor for problem in problems]
        shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
        raise ValueError(f"--match {pattern!r} matches no problem of {source} (by name or "
                         f"descriptor): {shown}")
    return chosen


def _single_descriptor(text, unknown):
    """``text`` read as one descriptor; where it is not one either, the error says both things.

    Text that does not open with a descriptor key and a number (``resnet51``, ``my.txt``) is taken
    for a mistyped set or file name, and only the unknown-set error is raised, listing the sets.
    """
    if not re.match(rf"(?:{'|'.join(DESCRIPTOR_KEYS)})\d", text):
        raise unknown
    try:
        return ConvProblem.parse(text)
    except ValueError as error:
        raise ValueError(f"{text!r} is not a shipped set ({', '.join(shape_sets())}) nor an "
                         f"existing file, and as a descriptor: {error}") from None
