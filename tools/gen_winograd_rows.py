"""Writes kernels/cpu/_winograd_rows.py, the tile-major Winograd transforms of one tile row.

The tile-major layouts keep the channels innermost (``V[position, tile, c]``, ``M[position, tile,
k]``), so a tile row's tiles and channels make one contiguous run per input or output position.
Each generated function walks those runs holding a tile's values of one channel in local
variables: the loads, the matrix products with their constant coefficients written out (zero
terms left out) and the stores of one element sit in one loop body, which LLVM's loop vectorizer
turns into 16-lane operations. The input transform does B^T d B in one loop; the output
transform does M A one row of M at a time (six or eight runs of M read a loop: all 36 at once
streamed badly where M lies in L3), then A^T (M A). The transforms they replace ran one pass
through memory per coefficient.

The multiply-adds keep the order of the passes they replace (per output, its first non-zero term
assigns and the rest accumulate, in index order), and the code is compiled without fastmath, so
the results are bit for bit the same.

Every loop stores into one flat scratch array at distances fixed here (IN_CHUNK, CHUNK, ROW
elements apart): with distances LLVM can see, it needs one runtime overlap check against each
run read rather than one per pair of runs, and it vectorizes the loop; with the runs as rows of
a 2-D array it would not (too many checks). The input transform then copies its runs into V.

``python tools/gen_winograd_rows.py`` rewrites the file, and removes the numba cache of
kernels/cpu/winograd.py, whose compiled code would go on using the old loops (see
tools/_codegen.py); ``--check`` exits 1 when the committed file differs from what this writes (a
test runs it).
"""

import sys
from fractions import Fraction
from pathlib import Path

import _codegen

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "kernels" / "cpu" / "_winograd_rows.py"
# (m, r) of the four CPU Winograd kernels
VARIANTS = ((2, 3), (4, 3), (2, 5), (4, 5))
# output elements (tiles x output channels) per call of an output function
CHUNK = 1024
# the distance between an output function's m*m runs in ``rows``: a tile row's tiles x channels
# up to this many are gathered there whole
ROW = 8192
# input elements (tiles x channels) per pass of an input function
IN_CHUNK = 256


def _tables():
    sys.path.insert(0, str(ROOT))
    try:
        from kernels.winograd_transforms import transforms
    finally:
        sys.path.pop(0)
    return {(m, r): transforms(m, r) for m, r in VARIANTS}


class _Constants:
    """float32 module constants for the coefficients, named once each."""

    def __init__(self):
        self.names = {}

    def __call__(self, value):
        value = float(value)
        if value not in self.names:
            self.names[value] = f"C{len(self.names)}"
        return self.names[value]

    def lines(self):
        return [f"{name} = np.float32({value!r})   # {Fraction(value)}"
                for value, name in self.names.items()]


def _sum(constants, coefficients, names):
    """``c0 * a + c1 * b + ...`` over the non-zero coefficients, left to right."""
    expr = None
    for coefficient, name in zip(coefficients, names):
        if coefficient == 0:
            continue
        term = f"{constants(coefficient)} * {name}"
        expr = term if expr is None else f"{expr} + {term}"
    return expr or "ZERO"


def _input(constants, m, r, bt):
    alpha = len(bt)
    out = [
        "",
        "",
        "@njit(cache=True, fastmath=False)",
        f"def input_f{m}x{m}_{r}x{r}(band, top, v, length, channels, run, col, scratch):",
        f'    """F({m}x{m},{r}x{r}) input transform ``B^T d B`` of a tile row: ``band`` holds the '
        "row's input,",
        f"    flattened from ({alpha}, {m}, length, channels), its input row u in slot (top + u) "
        f"% {alpha}, padded",
        f"    column X at phase X % {m}, index X // {m};",
        "    ``v[position, col:col + run]`` gets the row's tiles x channels for each of the "
        f"{alpha * alpha}",
        "    positions, through ``scratch`` (runs IN_CHUNK apart, IN_CHUNK at a time).",
        '    """',
        "    for e0 in range(0, run, IN_CHUNK):",
        "        count = min(IN_CHUNK, run - e0)",
    ]
    for u in range(alpha):
        out.append(f"        slot = (top + {u}) % {alpha} * {m}" if u else
                   f"        slot = top * {m}")
        for w in range(alpha):
            out.append(f"        at = ((slot + {w % m}) * length + {w // m}) * channels + e0")
            out.append(f"        d{u}_{w} = band[at:at + count]")
    out.append("        for e in range(count):")
    for u in range(alpha):
        for w in range(alpha):
            out.append(f"            x{u}_{w} = d{u}_{w}[e]")
    for a in range(alpha):           # B^T d, down each column
        for w in range(alpha):
            out.append(f"            t{a}_{w} = "
                       + _sum(constants, bt[a], [f"x{u}_{w}" for u in range(alpha)]))
    for a in range(alpha):           # then across by B
        for b in range(alpha):
            out.append(f"            scratch[{a * alpha + b} * IN_CHUNK + e] = "
                       + _sum(constants, bt[b], [f"t{a}_{w}" for w in range(alpha)]))
    out += [
        f"        for p in range({alpha * alpha}):",
        "            row = v[p, col + e0:col + e0 + count]",
        "            run_p = scratch[p * IN_CHUNK:p * IN_CHUNK + count]",
        "            for e in range(count):",
        "                row[e] = run_p[e]",
    ]
    return out


def _output(constants, m, r, at):
    alpha = len(at[0])
    out = [
        "",
        "",
        "@njit(cache=True, fastmath=False)",
        f"def output_f{m}x{m}_{r}x{r}(mm, half, rows, first, run):",
        f'    """F({m}x{m},{r}x{r}) output transform ``A^T M A``: for each of the {m * m} '
        f"outputs (yo, xo) of a",
        f"    tile, ``rows[(yo * {m} + xo) * ROW:][:run]`` from ``mm[position, first:first + "
        "run]``",
        f"    (run <= CHUNK), through ``half`` (M A: {alpha} x {m} runs CHUNK apart).",
        '    """',
    ]
    for a in range(alpha):           # M A, one row of M at a time: alpha streams of mm a loop
        out.append(f"    # row {a} of M")
        for b in range(alpha):
            out.append(f"    m{b} = mm[{a * alpha + b}, first:first + run]")
        out.append("    for e in range(run):")
        for b in range(alpha):
            out.append(f"        x{b} = m{b}[e]")
        for xo in range(m):
            out.append(f"        half[{a * m + xo} * CHUNK + e] = "
                       + _sum(constants, at[xo], [f"x{b}" for b in range(alpha)]))
    out.append("    # A^T (M A)")
    out.append("    for e in range(run):")
    for a in range(alpha):
        for xo in range(m):
            out.append(f"        h{a}_{xo} = half[{a * m + xo} * CHUNK + e]")
    for yo in range(m):
        for xo in range(m):
            out.append(f"        rows[{yo * m + xo} * ROW + e] = "
                       + _sum(constants, at[yo], [f"h{a}_{xo}" for a in range(alpha)]))
    return out


def source():
    tables = _tables()
    constants = _Constants()
    body = []
    for m, r in VARIANTS:
        body += _input(constants, m, r, tables[m, r]["BT"])
    for m, r in VARIANTS:
        body += _output(constants, m, r, tables[m, r]["AT"])
    head = [
        '"""Tile-major Winograd transforms of one tile row: generated by '
        'tools/gen_winograd_rows.py,',
        "do not edit.",
        "",
        "Each function walks a tile row's tiles x channels holding a tile's values of one channel in",
        "local variables, the transform's coefficients written out (see that script and",
        "kernels/cpu/winograd.py).",
        '"""',
        "",
        "import numpy as np",
        "from numba import njit",
        "",
        "# output elements per call of an output function, and the distance between the runs of",
        "# M A it keeps in ``half``",
        f"CHUNK = {CHUNK}",
        "# the distance between an output function's runs in ``rows``",
        f"ROW = {ROW}",
        "# input elements per pass of an input function, and the distance between its runs in",
        "# ``scratch``",
        f"IN_CHUNK = {IN_CHUNK}",
        "ZERO = np.float32(0.0)",
    ]
    return "\n".join(head + constants.lines() + body) + "\n"


def main(argv=None):
    return _codegen.main(argv, __doc__, TARGET, source, Path(__file__).name,
                         stale=("__pycache__/winograd.*.nb[ic]",))


if __name__ == "__main__":
    sys.exit(main())
