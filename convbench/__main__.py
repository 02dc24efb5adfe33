"""Command line: ``python -m convbench run | list | report | compare | history | export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .memory import format_bytes, parse_bytes
from .registry import all_kernels, select
from .results import ResultsError, export_csv, results_files
from .runner import DEFAULT_CASE_TIMEOUT, DEFAULT_RESULTS_DIR, SweepOptions, sweep
from .shapes import load_shapes, shape_sets
from .timing import MODES

EXIT_USAGE = 2


def _names(text):
    return [item.strip() for item in text.split(",") if item.strip()] if text else []


def _fmt(value, spec):
    return "" if value is None or value != value else format(value, spec)


def progress_line(row, done, total):
    status = row["status"]
    detail = row["reason"] if status != "PASSED" else (
        f"{row['median_s'] * 1e3:9.3f} ms {row['gflops']:8.1f} GFLOP/s  err {row['rel_l2']:.1e}"
        if row.get("median_s") else f"err {row['rel_l2']:.1e}")
    label = row["name"] or row["descriptor"]
    print(f"[{done:>{len(str(total))}}/{total}] {label[:34]:34} {row['algo'] + '/' + row['backend']:16}"
          f" {status:8} {detail[:110]}", file=sys.stderr, flush=True)


def summary_table(path):
    """The readable end-of-run table, from the saved file (what a user would load later)."""
    from .results import load_results

    frame = load_results(path)
    table = frame.assign(
        layer=frame["name"].where(frame["name"] != "", frame["descriptor"]),
        kernel=frame["algo"] + "/" + frame["backend"],
        time_ms=frame["median_s"].astype(float) * 1e3,
        spread_pct=100 * frame["mad_s"].astype(float) / frame["median_s"].astype(float),
        gflops=frame["gflops"].astype(float),
        pct_sgemm=100 * frame["sgemm_fraction"].astype(float),
        rel_l2=frame["rel_l2"].astype(float),
        workspace=frame["workspace_bytes"].map(lambda b: format_bytes(b) if b == b and b is not None
                                                else ""),
        note=frame["reason"].fillna("").str.slice(0, 60),
    )[["layer", "kernel", "status", "time_ms", "spread_pct", "gflops", "pct_sgemm", "rel_l2",
       "workspace", "note"]]
    return table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")


def cmd_run(args):
    mode = "quick" if args.quick else "rigorous" if args.rigorous else args.mode
    try:
        problems = load_shapes(args.shapes, mb=args.mb)
        kernels = select(_names(args.algo), _names(args.backend))
        budget = parse_bytes(args.memory_budget) if args.memory_budget else None
    except ValueError as error:
        print(f"convbench run: {error}", file=sys.stderr)
        return EXIT_USAGE
    options = SweepOptions(shapes=args.shapes, algos=_names(args.algo), backends=_names(args.backend),
                           mb=args.mb, mode=mode, seed=args.seed, memory_budget=budget,
                           case_timeout=args.case_timeout, check_only=args.check_only)
    print(f"convbench: {len(problems)} problems x {len(kernels)} kernels, mode {mode}",
          file=sys.stderr)
    try:
        path = sweep(problems, kernels, options, out_dir=args.out, resume=args.resume,
                     report=progress_line, remeasure_ceilings=args.remeasure_ceilings)
    except ResultsError as error:
        print(f"convbench run: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_table(path))
    print(f"\nresults: {path}")
    return 0


def cmd_list(args):
    print("shape sets:")
    for name in shape_sets():
        print(f"  {name:12} {len(load_shapes(name)):4} problems")
    print("\nkernels (algorithm/backend):")
    for kernel in all_kernels():
        reason = kernel.unavailable_reason
        state = "available" if not reason else f"unavailable: {reason}"
        peer = " (peer)" if kernel.spec.peer else ""
        print(f"  {kernel.name:18} tol {kernel.spec.tolerance:<8.0e} {state}{peer}")
        if kernel.spec.summary:
            print(f"  {'':18} {kernel.spec.summary}")
    return 0


def cmd_export(args):
    try:
        target = export_csv(args.results, args.csv or Path(args.results).with_suffix(".csv"))
    except ResultsError as error:
        print(f"convbench export: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(target)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="convbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="sweep kernels over a shape set and store the results")
    run.add_argument("--shapes", default="default",
                     help=f"a shipped set ({', '.join(shape_sets())}) or a file of descriptors")
    run.add_argument("--algo", help="comma-separated algorithms (default: all)")
    run.add_argument("--backend", help="comma-separated backends: cpu, gpu (default: all)")
    run.add_argument("--mb", type=int, help="rescale every problem to this batch size")
    run.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR,
                     help="results root; the file goes under OUT/<machine-id>/")
    run.add_argument("--mode", choices=sorted(MODES), default="default", help="timing effort")
    run.add_argument("--quick", action="store_true", help="same as --mode quick")
    run.add_argument("--rigorous", action="store_true", help="same as --mode rigorous")
    run.add_argument("--seed", type=int, default=0, help="seed of the input fills")
    run.add_argument("--memory-budget", help="e.g. 4G; default half the memory available now")
    run.add_argument("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT,
                     help="seconds one case may take before it is killed (TIMEOUT row)")
    run.add_argument("--resume", type=Path, help="continue this interrupted results file")
    run.add_argument("--check-only", action="store_true",
                     help="validate against the reference, do not time (correctness mode)")
    run.add_argument("--remeasure-ceilings", action="store_true",
                     help="measure SGEMM and copy ceilings again instead of using the cached ones")
    run.set_defaults(func=cmd_run)

    lister = sub.add_parser("list", help="shape sets and kernels, and whether each runs here")
    lister.set_defaults(func=cmd_list)

    export = sub.add_parser("export", help="write a results file's rows as CSV")
    export.add_argument("results", type=Path)
    export.add_argument("--csv", type=Path, help="output path (default: beside the results file)")
    export.set_defaults(func=cmd_export)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
