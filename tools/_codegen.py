"""What the code generators in tools/ share: write their file, or check that the committed one is
what they write."""

import argparse
import sys


def main(argv, doc, target, source, script, stale=()):
    """Write ``source()`` to ``target``, or with ``--check`` exit 1 when ``target`` differs.

    ``stale``: glob patterns, relative to ``target``'s folder, of numba cache files to remove after
    writing. numba's cache checks only the source file of each function it keeps, so the compiled
    functions that call the generated ones would otherwise go on running the old code.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file is not what this script writes")
    args = parser.parse_args(argv)
    text = source()
    if args.check:
        current = target.read_text() if target.exists() else ""
        if current != text:
            print(f"{target} is not what {script} writes: run it", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    for pattern in stale:
        for path in target.parent.glob(pattern):
            path.unlink()
    return 0
