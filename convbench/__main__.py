"""Command line: ``python -m convbench run | find | list | show | report | compare | ab | bisect
| history | export``."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

from .compare import HISTORY_MIN_RUNS, text_table
from .machine import busy_row, busy_text
from .memory import format_bytes, parse_bytes
from .registry import all_kernels, select, usable_backends
from .results import ResultsError, export_csv, results_files
from .runner import DEFAULT_CASE_TIMEOUT, DEFAULT_RESULTS_DIR, SweepOptions, sweep
from .shapes import load_shapes, match_problems, shape_sets
from .timing import MODES

EXIT_USAGE = 2


def _names(text):
    return [item.strip() for item in text.split(",") if item.strip()] if text else []


def parse_threads(text):
    """``--threads 1,2,4``: sorted distinct counts, each from 1 to the cores this process may use."""
    from .machine import cpu_count

    if not text:
        return None
    counts = set()
    for item in _names(text):
        try:
            count = int(item)
        except ValueError:
            raise ValueError(f"--threads takes whole numbers separated by commas, got {item!r}") from None
        if not 1 <= count <= cpu_count():
            raise ValueError(f"--threads {count}: this process may use {cpu_count()} core(s), so a "
                             f"count from 1 to {cpu_count()}")
        counts.add(count)
    return sorted(counts)


def _seed(text):
    """``--seed``: a whole number from 0 (numpy's generators take no negative seed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0, got {text!r}")
    return value


def _number_over(low, inclusive, what):
    """An argparse type: a number above ``low`` (or equal, with ``inclusive``), NaN refused."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= low if inclusive else value > low):
            raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
        return value
    return parse


_positive_seconds = _number_over(0, False, "seconds must be a number above 0")
_non_negative = _number_over(0, True, "must be a number from 0")


def _probability(text):
    """``--alpha``: a probability strictly between 0 and 1."""
    value = _number_over(0, False, "must be a number between 0 and 1")(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}")
    return value


def _thread_count(text):
    """``ab``/``bisect`` ``--threads``: one count, from 1 to the cores this process may use."""
    try:
        counts = parse_threads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--threads ")) from None
    if len(counts) != 1:
        raise argparse.ArgumentTypeError(f"one count here, got {text!r}")
    return counts[0]


def _fmt(value, spec):
    return "" if value is None or value != value else format(value, spec)


def duration_text(seconds):
    """``1:05`` for 65 s, ``2:01:40`` past the hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(row, done, total, left_s=None, show_threads=False):
    """One finished case on standard error: its place in the sweep and, while cases remain, the
    time they are expected to take (``left_s``, from the sweep)."""
    status = row["status"]
    detail = row["reason"] if status != "PASSED" else (
        f"{row['median_s'] * 1e3:9.3f} ms {row['gflops']:8.1f} GFLOP/s  err {row['rel_l2']:.1e}"
        if row.get("median_s") else f"err {row['rel_l2']:.1e}")
    if status == "PASSED" and row.get("median_s"):
        detail += f"  {busy_text(row)}".rstrip()
    label = row["name"] or row["descriptor"]
    kernel = f"{row['algo']}/{row['backend']}"
    if show_threads and row["threads"]:
        kernel += f"@{row['threads']}t"
    left = f" ~{duration_text(left_s)} left" if left_s is not None and done < total else ""
    print(f"[{done:>{len(str(total))}}/{total}{left}] {label[:34]:34} {kernel:16}"
          f" {status:8} {detail[:110]}", file=sys.stderr, flush=True)


def _progress(args):
    """The progress line, naming each case's thread count when the run sets them."""
    return functools.partial(progress_line, show_threads=bool(args.thread_counts))


def summary_table(path):
    """The readable end-of-run table, from the saved file (what a user would load later)."""
    from .results import kernel_labels, load_results

    frame = load_results(path)
    table = frame.assign(
        layer=frame["name"].where(frame["name"] != "", frame["descriptor"]),
        kernel=kernel_labels(frame),
        time_ms=frame["median_s"].astype(float) * 1e3,
        spread_pct=100 * frame["mad_s"].astype(float) / frame["median_s"].astype(float),
        gflops=frame["gflops"].astype(float),
        pct_sgemm=100 * frame["sgemm_fraction"].astype(float),
        rel_l2=frame["rel_l2"].astype(float),
        workspace=frame["workspace_bytes"].map(lambda b: format_bytes(b) if b == b and b is not None
                                                else ""),
        impl=frame["impl"].map(lambda impl: impl if isinstance(impl, str) else ""),
        note=[_short_note(row["reason"]) if isinstance(row["reason"], str) and row["reason"]
              else busy_text(row) for _, row in frame.iterrows()],
    )[["layer", "kernel", "status", "time_ms", "spread_pct", "gflops", "pct_sgemm", "rel_l2",
       "workspace", "impl", "note"]]
    return text_table(table)


def totals_text(path):
    """The whole-network totals of a results file (:func:`convbench.report.network_totals`) as a
    text table under a heading, or "" when its shapes give no network's counts."""
    from .report import network_totals, totals_caveat
    from .results import load_results, read_document, split_threads

    totals = network_totals(split_threads(load_results(path)))
    if totals.empty:
        return ""
    shown = totals.assign(total_ms=totals["total_ms"].round(4), gflops=totals["gflops"].round(1),
                          vs_best=totals["vs_best"].round(2))
    return ("whole networks (every layer counted as often as the network runs it; a kernel that "
            f"did not pass on all of them has no total{totals_caveat(read_document(path))}):\n"
            + text_table(shown))


def _print_totals(path):
    """:func:`totals_text` after a blank line, where the run has any."""
    totals = totals_text(path)
    if totals:
        print(f"\n{totals}")


def _short_note(reason, width=60):
    """A reason cut for a table cell: its first clause (before "; "), and that cut to ``width``
    characters with an ellipsis. The whole reason is in the results file, and a run prints the
    reasons of the cases that did not pass in full after its table."""
    text = reason.split("; ")[0]
    return text if len(text) <= width else text[:width - 1].rstrip() + "\u2026"


BROKEN = ("FAILED", "CRASHED", "TIMEOUT")


def status_counts(path):
    """'96 cases: 70 PASSED, 26 SKIPPED': how the cases of a results file ended."""
    from .results import read_document

    rows = read_document(path)["rows"]
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    order = ["PASSED", *BROKEN, "SKIPPED"]
    statuses = order + sorted(set(counts) - set(order))
    return f"{len(rows)} cases: " + ", ".join(f"{counts[status]} {status}"
                                             for status in statuses if status in counts)


def failures_text(path):
    """The cases of a results file that failed, crashed or timed out, one line each with the
    whole reason; empty when there are none."""
    from .results import kernel_labels, load_results

    frame = load_results(path)
    broken = frame[frame["status"].isin(BROKEN)]
    if broken.empty:
        return ""
    lines = [f"{len(broken)} case(s) did not pass:"]
    for (_, row), kernel in zip(broken.iterrows(), kernel_labels(broken)):
        lines.append(f"  {row['name'] or row['descriptor']}  {kernel}  {row['status']}: "
                     f"{row['reason']}")
    return "\n".join(lines)


def _resume_refusal(command, path, document, finished=False):
    """Why the interrupted run in ``path`` cannot go on here (it was made on another machine),
    else None; a changed environment on the same machine is named on stderr and it goes on
    (unless the run is ``finished`` and nothing will be timed)."""
    from .machine import environment_changes, fingerprint, machine_id

    recorded = document.get("machine") or {}
    made_on, here = recorded.get("machine_id"), machine_id()
    if made_on and made_on != here:
        return (f"{path} was made on {made_on}, and this machine is {here}: its cases would mix "
                f"two machines' timings. Resume it on {made_on}, or start a new run here")
    changes = environment_changes(recorded, fingerprint())
    if changes and not finished:
        print(f"convbench {command}: resuming in a changed environment ({'; '.join(changes)}): the "
              f"cases timed from here on run in this one", file=sys.stderr)
    return None


def _resume_options(args):
    """With --resume, the interrupted run's own options replace the command line's. Returns why
    the file cannot be resumed here (:func:`_resume_refusal`), else None."""
    from .results import read_document

    document = read_document(args.resume)
    refused = _resume_refusal("run", args.resume, document,
                              finished=document.get("complete") and not args.retime_busy)
    if refused:
        return refused
    stored = document["options"]
    args.shapes, args.mb, args.seed = stored["shapes"], stored["mb"], stored["seed"]
    args.algo, args.backend = ",".join(stored["algos"]), ",".join(stored["backends"])
    args.quick = args.rigorous = False
    args.mode, args.check_only = stored["mode"], stored["check_only"]
    args.case_timeout = stored["case_timeout"]
    budget, limit = stored.get("memory_budget"), stored.get("workspace_limit")
    args.memory_budget = str(budget) if budget else None
    args.workspace_limit = None if limit is None else str(limit)
    args.threads = ",".join(map(str, stored.get("threads") or [])) or None
    args.match = stored.get("match")


def _size_option(flag, text, zero=False):
    """Bytes from a size option's text, None when it was not given (ValueError naming it)."""
    if text is None:
        return None
    try:
        return parse_bytes(text, zero=zero)
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from None


def _selection(shape_texts, args, to_run=True):
    """The problems, backends, kernels and memory budget a command line names (ValueError if bad,
    or, ``to_run``, if none of our kernels it names can run here); its workspace limit goes to
    ``args.limit`` (bytes or None)."""
    problems = [problem for text in shape_texts for problem in load_shapes(text, mb=args.mb)]
    problems = match_problems(problems, args.match, source=" ".join(shape_texts))
    backends_ = _names(args.backend) or usable_backends()
    kernels = select(_names(args.algo), backends_)
    if to_run:   # a run of nothing but SKIPPED rows (and peers) measures none of our code
        _refuse_if_none_can_run([kernel for kernel in kernels if not kernel.spec.peer], "of ours")
    budget = _size_option("--memory-budget", args.memory_budget)
    args.limit = _size_option("--workspace-limit", getattr(args, "workspace_limit", None),
                              zero=True)
    args.thread_counts = parse_threads(args.threads)
    return problems, backends_, kernels, budget


def _refuse_if_none_can_run(kernels, whose=""):
    """ValueError naming why, when there are ``kernels`` and none of them can run here."""
    if kernels and all(kernel.unavailable_reason for kernel in kernels):
        reasons = "; ".join(sorted({kernel.unavailable_reason for kernel in kernels}))
        which = (f"the selected kernel {kernels[0].name} cannot" if len(kernels) == 1 else
                 f"none of the {len(kernels)} selected kernels{' ' + whose if whose else ''} can")
        raise ValueError(f"{which} run here: {reasons} (`convbench list` shows what runs here)")


def cmd_run(args):
    if args.retime_busy and not args.resume:
        print("convbench run: --retime-busy needs --resume FILE (the run whose busy cases to time "
              "again)", file=sys.stderr)
        return EXIT_USAGE
    if args.resume:
        refused = _resume_options(args)
        if refused:
            print(f"convbench run: {refused}", file=sys.stderr)
            return EXIT_USAGE
    mode = "quick" if args.quick else "rigorous" if args.rigorous else args.mode
    try:
        problems, backends_, kernels, budget = _selection([args.shapes], args)
    except ValueError as error:
        print(f"convbench run: {error}", file=sys.stderr)
        return EXIT_USAGE
    for flag, folder in (("--out", args.out), ("--report", args.report)):
        # made now, so a folder that cannot be is named before the sweep, not after it
        if folder is not None:
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                print(f"convbench run: {flag} {folder}: {error.strerror or error}", file=sys.stderr)
                return EXIT_USAGE
    options = SweepOptions(shapes=args.shapes, algos=_names(args.algo), backends=backends_,
                           mb=args.mb, mode=mode, seed=args.seed, memory_budget=budget,
                           workspace_limit=args.limit, case_timeout=args.case_timeout,
                           check_only=args.check_only, threads=args.thread_counts,
                           match=args.match)
    _print_plan("convbench", problems, kernels, options)
    if args.resume and not args.retime_busy and _complete(args.resume):
        print(f"convbench run: {args.resume} is a finished run, every case in it: nothing to "
              f"resume (its table follows; --retime-busy times its busy cases again)",
              file=sys.stderr)
    _print_environment(kernels)
    started = {}
    try:
        path = sweep(problems, kernels, options, out_dir=args.out, resume=args.resume,
                     report=_progress(args), remeasure_ceilings=args.remeasure_ceilings,
                     on_start=lambda path: started.setdefault("path", path),
                     retime=busy_row if args.retime_busy else None)
    except KeyboardInterrupt:
        where = started.get("path")
        print(f"\nconvbench run: interrupted. Every finished case is saved in {where}; continue "
              f"with:\n  python -m convbench run --resume {where}", file=sys.stderr)
        return 130
    print(summary_table(path))
    _print_totals(path)
    print(f"\n{status_counts(path)}")
    print(f"results: {path}")
    _print_drift(path)
    if args.report:
        from .report import write_report
        print(f"report: {write_report([path], args.report)}")
    if args.compare_latest:
        compare_with_latest_committed(
            path, json_path=Path(args.report) / "compare.json" if args.report else None)
    failures = failures_text(path)
    if failures:
        print(f"\n{failures}")
    return 1 if failures else 0


def _print_plan(command, problems, kernels, options):
    """What a sweep is about to do, on stderr, before it starts."""
    print(f"{command}: {len(problems)} problems x {len(kernels)} kernels, mode {options.mode}"
          + (f", CPU threads {','.join(map(str, options.threads))}" if options.threads else "")
          + (f", workspace limit {format_bytes(options.workspace_limit)}"
             if options.workspace_limit is not None else ""), file=sys.stderr)


def _print_environment(kernels):
    """The BLAS kernels and library variables a CPU run times with, before it starts."""
    if any(kernel.spec.backend == "cpu" for kernel in kernels):
        from .machine import busy_now, environment_line, setup_notes
        print(environment_line(), file=sys.stderr)
        for note in setup_notes() + [busy_now()]:
            if note:
                print(f"note: {note}", file=sys.stderr)


def _history_floor_text(alike, total, what):
    """How many earlier runs give the run-to-run floor: those of the base run's environment, and
    only from :data:`convbench.compare.HISTORY_MIN_RUNS` of them."""
    if alike >= HISTORY_MIN_RUNS:
        return (f"{alike} of the {total} {what}, those made in the base run's environment, give "
                f"the run-to-run floor")
    return (f"{alike} of the {total} {what} were made in the base run's environment, and a "
            f"run-to-run floor needs {HISTORY_MIN_RUNS}: none applies, so this machine's drift "
            f"from run to run can be called slower or faster")


def _complete(path):
    """Whether the run of a results file finished its sweep (files that do not say did)."""
    from .results import read_document

    return read_document(path).get("complete") is not False


def _finish_comparison(frame, base_path, new_path, code_changes=None, *, thresholds=None,
                       history_runs=0, json_path=None):
    """The end of a comparison: what changed in the kernels' code (``code_changes``, from
    :func:`convbench.history.refine_code_changed`), what differs between the two runs' machines
    and software (a verdict may be about that), the verdict, and after a REGRESSION the ab command
    that checks the changed kernels side by side. With ``json_path`` the same, and every case,
    goes there as :func:`convbench.compare.comparison_document` (``-``: standard output, where
    the caller has sent the text elsewhere). Returns the exit status."""
    from .compare import Thresholds, ab_suggestion, comparison_document, regressions
    from .history import code_change_text
    from .machine import environment_changes, same_environment
    from .results import read_document

    if code_changes is not None:
        print(code_change_text(code_changes))

    base, new = read_document(base_path), read_document(new_path)
    changes = environment_changes(base["machine"], new["machine"])
    for note in _comparison_notes(frame, (base_path, base), (new_path, new), changes):
        print(note)
    bad = regressions(frame)
    print("verdict: REGRESSION" if len(bad) else "verdict: no significant slowdown or new failure")
    command = ab_suggestion(frame, base, new) if len(bad) else None
    if command:
        print(f"to tell a slower kernel from a slower machine, time both versions side by side:\n"
              f"  {command}")
    unchanged = bad[(bad["verdict"] == "slower") & ~bad["source_changed"].astype(bool)]
    if len(unchanged) and same_environment(base["machine"], new["machine"]):
        print(f"{len(unchanged)} of the slower cases ran the same kernel code as the base run, in "
              f"the same environment: on a shared machine that is most often the machine, not "
              f"the code (run the sweep again with the machine idle, or compare more runs with "
              f"`history`)")
    if json_path is not None:
        document = comparison_document(
            frame, (base_path, base), (new_path, new), thresholds or Thresholds(),
            history_runs=history_runs, code_changes=code_changes, environment_changes=changes,
            ab_command=command)
        _write_comparison(document, json_path)
    return 1 if len(bad) else 0


def _comparison_notes(frame, base, new, changes):
    """What the verdict may be about besides the code, one line each: the two runs' environments
    (``changes``), machines and timing modes when they differ, and a new run whose sweep was
    interrupted. ``base`` and ``new`` are ``(path, document)``."""
    (base_path, base), (new_path, new) = base, new
    if changes:
        yield ("the two runs differ in (a change of speed may come from these, not the code): "
               + "; ".join(changes))
    machines = [document["machine"].get("machine_id") for document in (base, new)]
    if machines[0] != machines[1]:
        yield (f"the two runs were made on different machines ({machines[0]} and {machines[1]}): "
               f"their verdicts compare the machines as much as the code; `convbench report "
               f"{base_path} {new_path}` sets them side by side")
    modes = [document["options"].get("mode") for document in (base, new)]
    if modes[0] != modes[1] and not any(d["options"].get("check_only") for d in (base, new)):
        yield (f"the two runs were timed in different modes (base {modes[0]}, new {modes[1]}): "
               f"their numbers of processes and values differ, and no earlier run's floor "
               f"applies across modes")
    if new.get("complete") is False:
        unreached = int((frame["verdict"] == "not reached").sum())
        yield (f"the new run is incomplete: its sweep was interrupted"
               f"{f' before {unreached} cases of the base run' if unreached else ''}; finish it "
               f"and compare again:\n  python -m convbench run --resume {new_path}")


def _write_comparison(document, json_path):
    """A comparison document to a file (atomically, its folder made) or, for ``-``, to the real
    standard output."""
    import json

    if str(json_path) == "-":
        json.dump(document, sys.__stdout__, indent=1, allow_nan=False)
        sys.__stdout__.write("\n")
        sys.__stdout__.flush()
        return
    from .results import write_atomic

    write_atomic(json_path, document)
    print(f"comparison: {json_path}")


def _print_drift(path, retime_hint=True):
    """What may have disturbed a run's timings: the machine's speed changing between its start
    and its end, and other processes busy while cases ran."""
    from .ceilings import drift_note
    from .machine import busy_note
    from .results import read_document

    document = read_document(path)
    busy = busy_note(document["rows"])
    if busy:
        busy = f"note: {busy}" + (f":\n  python -m convbench run --resume {path} --retime-busy"
                                  if retime_hint else "")
    for note in (drift_note(document.get("ceilings") or {}, document.get("ceilings_end") or {}),
                 busy):
        if note:
            print(note)


def cmd_find(args):
    """Every kernel on the named problems, each problem's kernels printed fastest first."""
    try:
        problems, backends_, kernels, budget = _selection(args.problems, args)
    except ValueError as error:
        print(f"convbench find: {error}", file=sys.stderr)
        return EXIT_USAGE
    mode = "quick" if args.quick else args.mode
    options = SweepOptions(shapes=" ".join(args.problems), algos=_names(args.algo),
                           backends=backends_, mb=args.mb, mode=mode, seed=args.seed,
                           memory_budget=budget, workspace_limit=args.limit,
                           case_timeout=args.case_timeout, threads=args.thread_counts,
                           match=args.match)
    _print_plan("convbench find", problems, kernels, options)
    _print_environment(kernels)
    started = {}
    try:
        path = sweep(problems, kernels, options, out_dir=args.out, report=_progress(args),
                     on_start=lambda path: started.setdefault("path", path), subdir="find")
    except KeyboardInterrupt:
        print(f"\nconvbench find: interrupted; the finished cases are in {started.get('path')}",
              file=sys.stderr)
        return 130
    from .report import ranking
    from .results import load_results, read_document

    frame = load_results(path)
    document = read_document(path)
    table = ranking(frame)
    for (descriptor, backend), group in table.groupby(["descriptor", "backend"], sort=False):
        problem = next(p for p in problems if p.descriptor == descriptor)
        print(f"\n{descriptor}  [{backend}]  {problem.flops / 1e9:.3g} GFLOP (direct count)"
              + _floor_text(problem, group, frame[frame["backend"] == backend], document))
        print(_find_text(group))
    _print_totals(path)
    print(f"\nresults: {path}")
    _print_drift(path, retime_hint=False)
    broken = table[table["status"].isin(BROKEN)]
    if len(broken):
        print(f"{len(broken)} kernel(s) failed: " + ", ".join(broken["kernel"]))
    return 1 if len(broken) else 0


def _floor_text(problem, group, rows, document):
    """``find``'s roofline note for one problem: its floor at the run's ceilings and how near the
    fastest kernel comes to it; empty where the backend's ceilings were not measured."""
    from .roofline import roof, rows_ceiling

    found = rows_ceiling(document.get("ceilings") or {}, str(group["backend"].iloc[0]), rows,
                         document.get("ceilings_end"))
    if not (found.get("sgemm_gflops") and found.get("copy_gbps")):
        return ""
    floor = roof(problem, found["sgemm_gflops"], found["copy_gbps"])
    text = (f"\nroofline floor {floor.seconds * 1e3:.4g} ms: {floor.intensity:.3g} FLOP/B, "
            f"{floor.bound}-bound at SGEMM {floor.sgemm_gflops:.0f} GFLOP/s and copy "
            f"{floor.copy_gbps:.1f} GB/s")
    fastest = group[group["rank"] == 1]
    if len(fastest):
        text += (f"; the fastest runs at "
                 f"{floor.seconds * 1e3 / float(fastest['time_ms'].iloc[0]):.2f} of it")
    return text


def _find_text(group):
    shown = group.assign(
        rank=group["rank"].map(lambda r: str(r) if r else "-"),
        workspace=group["workspace_bytes"].map(
            lambda b: format_bytes(b) if b is not None and b == b else ""))
    shown = shown[["rank", "kernel", "status", "time_ms", "spread_pct", "gflops", "vs_fastest",
                   "workspace", "rel_l2", "impl", "note"]].rename(
        columns={"spread_pct": "+-%", "gflops": "GFLOP/s", "vs_fastest": "x fastest"})
    return text_table(shown)


def cmd_list(args):
    if args.shapes:
        return _list_problems(args)
    print("shape sets:")
    for name in shape_sets():
        problems = load_shapes(name)
        counted = all(problem.count for problem in problems)
        layers = (f" ({sum(problem.count for problem in problems)} layers of the network)"
                  if counted else "")
        print(f"  {name:12} {len(problems):4} problems{layers}")
    print("\nkernels (algorithm/backend; tol: the relative L2 error allowed on sums of up to"
          "\n`depth` terms, C/groups * R * S, and past it grown as the square root of the depth):")
    for kernel in all_kernels():
        reason = kernel.unavailable_reason
        state = "available" if not reason else f"unavailable: {reason}"
        peer = " (peer)" if kernel.spec.peer else ""
        print(f"  {kernel.name:18} tol {kernel.spec.tolerance:<6.0e} depth "
              f"{kernel.spec.tolerance_depth:<6} {state}{peer}")
        if kernel.spec.summary:
            print(f"  {'':18} {kernel.spec.summary}")
    return 0


def cmd_machine(args):
    """This machine as a run would record it, and what in its setup changes what a run times."""
    from .machine import busy_now, fingerprint, setup_notes

    found = fingerprint()
    print(f"machine id   {found['machine_id']}")
    print(f"CPU          {found['cpu_model']}, {found['cpu_count']} cores, "
          f"{found['memory_bytes'] / 2**30:.0f} GiB")
    if found["gpu"]:
        print(f"GPU          {found['gpu']} (driver {found['gpu_driver']})")
    print(f"Python       {found['python']} ({found['implementation']}), {found['platform']}")
    print("libraries    " + ", ".join(f"{name} {version}" for name, version
                                     in found["versions"].items() if version))
    for index, blas in enumerate(found["blas_runtime"] or [{}]):
        label = "BLAS" if index == 0 else "also loaded"
        text = (f"{blas['internal_api']} {blas['version']}, {blas['architecture']} kernels, "
                f"{blas['num_threads']} threads ({blas['library']})" if blas else found["blas"])
        print(f"{label:12} {text}")
    print(f"threads      {found['threads']} by default")
    settings = found["library_settings"]
    print("settings     " + (", ".join(f"{name}={value}" for name, value in settings.items())
                             or "none") + (f"  (set by convbench: "
                                          f"{', '.join(found['convbench_defaults'])})"
                                          if found["convbench_defaults"] else ""))
    if args.ceilings:
        from .ceilings import measure_cpu
        measured = measure_cpu()
        print(f"ceilings     SGEMM {measured['sgemm_gflops']:.0f} GFLOP/s "
              f"({measured['sgemm_size']}^3), copy {measured['copy_gbps']:.1f} GB/s")
    notes = [note for note in setup_notes() + [busy_now()] if note]
    print("\n" + ("\n".join(f"note: {note}" for note in notes) if notes
                  else "no setting found that changes what a run times, and the CPUs are idle"))
    return 0


def _list_problems(args):
    """``list SET...``: the problems a run of those sets (and ``--match``, ``--mb``) would time."""
    import pandas as pd

    try:
        problems = _selection(args.shapes, args, to_run=False)[0]
    except ValueError as error:
        print(f"convbench list: {error}", file=sys.stderr)
        return EXIT_USAGE
    table = pd.DataFrame({
        "name": [problem.name for problem in problems],
        "descriptor": [problem.descriptor for problem in problems],
        "filter": [f"{problem.r}x{problem.s}" for problem in problems],
        "GFLOP": [problem.flops / 1e9 for problem in problems],
        "MB": [problem.bytes_float32() / 1e6 for problem in problems],
        "FLOP/B": [problem.flops / problem.bytes_float32() for problem in problems]})
    counted = all(problem.count for problem in problems)
    if counted:     # whole networks: how often each layer runs, and the network's arithmetic
        table.insert(1, "count", [problem.count for problem in problems])
    print(text_table(table))
    network = ""
    if counted:
        runs = sum(problem.count for problem in problems)
        work = sum(problem.count * problem.flops for problem in problems) / 1e9
        network = f" (with each one's count: {runs} convolutions, {work:.4g} GFLOP)"
    print(f"\n{len(problems)} problems, {table['GFLOP'].sum():.4g} GFLOP in all{network} (direct "
          "count). MB: input, weights and output once, in float32; FLOP/B: the direct count over "
          "those bytes (arithmetic intensity)")
    return 0


def cmd_show(args):
    """A results file's table, as ``run`` printed it at the end, with the run's options."""
    from .machine import environment_line
    from .results import read_document

    paths = [args.results] if args.results else latest_results(args.root)
    if not paths:
        print(f"convbench show: no results file given and none under {args.root} for this "
              f"machine", file=sys.stderr)
        return EXIT_USAGE
    path = paths[0]
    document = read_document(path)
    git, options = document.get("git") or {}, document["options"]
    chosen = ", ".join(
        f"{key} {','.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in ((key, options.get(key)) for key in ("shapes", "match", "mb", "algos",
                                                               "threads", "mode"))
        if value not in (None, [], ""))
    if options.get("workspace_limit") is not None:
        chosen += f", workspace limit {format_bytes(options['workspace_limit'])}"
    print(f"{path}\nmachine {document['machine'].get('machine_id')}, commit "
          f"{git.get('commit', '?')[:10]}{' (dirty)' if git.get('dirty') else ''}, "
          f"created {document.get('created')}; {chosen}"
          f"{'' if document.get('complete') else '; INCOMPLETE (resume it with run --resume)'}\n"
          f"{environment_line(document['machine'])}\n")
    print(summary_table(path))
    _print_totals(path)
    print(f"\n{status_counts(path)}")
    _print_drift(path)
    failures = failures_text(path)
    if failures:
        print(f"\n{failures}")
    return 0


def cmd_export(args):
    target = export_csv(args.results, args.csv or Path(args.results).with_suffix(".csv"))
    print(target)
    return 0


def cmd_compare(args):
    if args.json == "-":   # the document alone on standard output, the text on standard error
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):
            return _compare(args)
    return _compare(args)


def _compare(args):
    from .compare import (Thresholds, compare_frames, render, same_environment_runs, summarize,
                          unavailable_peers_text)
    from .history import refine_code_changed
    from .results import load_results

    if args.base is not None and args.new is None:
        print("convbench compare: name both results files, BASE and NEW, or neither (this "
              "machine's latest two runs)", file=sys.stderr)
        return EXIT_USAGE
    if args.new is None:   # none named: this machine's latest run and the one before it
        from .machine import machine_id
        runs = results_files(args.root, machine_id())
        if len(runs) < 2:
            print(f"convbench compare: name two results files; under {args.root / machine_id()} "
                  f"there are {len(runs)} runs of this machine, and two are needed",
                  file=sys.stderr)
            return EXIT_USAGE
        args.new = runs[-1]
        args.base, alike = latest_alike(runs[:-1], args.new)
        args.history = args.history or [str(args.root / machine_id())]
        print(f"comparing this machine's latest run with the one before it "
              f"{'of the same selection' if alike else '(none made the same selection)'}: "
              f"{args.base.name} -> {args.new.name}")
    base, new = load_results(args.base), load_results(args.new)
    thresholds = Thresholds(min_change=args.min_change, alpha=args.alpha,
                            noise_factor=args.noise_factor)
    history_files = history_paths(args.history or [])
    alike_files = same_environment_runs(args.base, history_files)
    history = load_results(*alike_files) if alike_files else None
    if history_files and (len(alike_files) < len(history_files)
                          or len(alike_files) < HISTORY_MIN_RUNS):
        print(f"history: {_history_floor_text(len(alike_files), len(history_files), 'runs')}")
    frame = compare_frames(base, new, thresholds, history,
                           new_complete=_complete(args.new))
    frame, code_changes = refine_code_changed(frame, (args.base, base), (args.new, new))
    both_skipped = ((frame["base_status"] == "SKIPPED") & (frame["new_status"] == "SKIPPED"))
    peers_gone = frame["verdict"] == "peer unavailable"
    print(render(frame if args.all else frame[~both_skipped & ~peers_gone],
                 markdown=args.markdown))
    if both_skipped.any() and not args.all:
        print(f"({int(both_skipped.sum())} cases skipped in both runs are not listed; --all lists "
              f"them)")
    if peers_gone.any() and not args.all:
        print(unavailable_peers_text(frame))
    print(f"\n{summarize(frame)}")
    return _finish_comparison(frame, args.base, args.new, code_changes, thresholds=thresholds,
                              history_runs=len(alike_files), json_path=args.json)


def ab_progress(result, done, total, left_s=None):
    if result.ratio is not None:
        low = "" if result.ratio_low is None else \
            f" [{100 * (result.ratio_low - 1):+.1f}, {100 * (result.ratio_high - 1):+.1f}]"
        detail = (f"base {result.base_s * 1e3:8.3f} ms  new {result.new_s * 1e3:8.3f} ms  "
                  f"{100 * (result.ratio - 1):+6.1f}%{low}")
    else:
        detail = result.reason
    source = {True: "same", False: "changed", None: "?"}[result.same_source]
    label = result.name or result.descriptor
    left = f" ~{duration_text(left_s)} left" if left_s is not None and done < total else ""
    print(f"[{done:>{len(str(total))}}/{total}{left}] {label[:30]:30} "
          f"{result.algo + '/' + result.backend:16}"
          f" {source:7} {result.verdict:8} {detail[:100]}", file=sys.stderr, flush=True)


def cmd_ab(args):
    from .ab import (ABError, ABSettings, read_ab, regressions, render, resolve_tree,
                     resume_trees, run_ab, summarize)

    previous = None
    try:
        if args.resume:  # the interrupted comparison's own selection, trees and settings
            previous = read_ab(args.resume)
            refused = _resume_refusal("ab", args.resume, previous)
            if refused:
                raise ABError(refused)
            stored = previous["options"]
            args.shapes, args.mb = stored["shapes"], stored["mb"]
            args.algo, args.backend = stored["algo"], ",".join(stored["backends"])
            args.match = stored.get("match")
        problems, backends_, kernels = _ab_cases(args)
        if previous:
            trees = resume_trees(previous)
            settings = ABSettings(**previous["settings"])
        else:
            trees = {"base": resolve_tree(args.base), "new": resolve_tree(args.new)}
            settings = _ab_settings(args)
    except (ValueError, ABError) as error:
        print(f"convbench ab: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        return _ab_dry_run(problems, kernels, trees)
    out = args.resume or args.out or _stamped_path("ab")
    options = _ab_options(args, backends_)
    print(f"convbench ab: base = {trees['base'].label}, new = {trees['new'].label}; "
          f"{len(problems)} problems x {len(kernels)} kernels, {settings.processes} process pairs "
          f"x {settings.rounds} rounds per case", file=sys.stderr)
    _print_environment(kernels)
    try:
        results, _ = run_ab(problems, kernels, trees, settings, out=out, report=ab_progress,
                            options=options, previous=previous)
    except KeyboardInterrupt:
        print(f"\nconvbench ab: interrupted. Every finished case is saved in {out}; continue "
              f"with:\n  python -m convbench ab --resume {out}", file=sys.stderr)
        return 130
    print(render(results, markdown=args.markdown))
    print(f"\n{summarize(results, settings.min_change)}")
    bad = regressions(results)
    print(f"saved: {out}")
    base_commit, new_commit = trees["base"].commit, trees["new"].commit
    if bad and base_commit and new_commit:
        algos = ",".join(sorted({result.algo for result in bad}))
        print("to find the commit between them that did it:\n  "
              + _case_command(f"bisect --good {base_commit[:10]} --bad {new_commit[:10]}", args,
                              algos))
    print("verdict: REGRESSION" if bad else "verdict: no significant slowdown or new failure")
    return 1 if bad else 0


def _ab_dry_run(problems, kernels, trees):
    """``ab --dry-run``: for each selected kernel, whether the code it reaches differs between the
    two trees and in which definitions; nothing is timed."""
    from .ab import code_changes
    from .reach import describe

    print(f"convbench ab --dry-run: base = {trees['base'].label}, new = {trees['new'].label}; "
          f"{len(problems)} problems x {len(kernels)} kernels would be timed (nothing is timed here)")
    width = max(len(kernel.name) for kernel in kernels)
    changed = 0
    for kernel in kernels:
        changes = code_changes(kernel, trees)
        if changes is None:
            print(f"{kernel.name:<{width}}  missing from one version")
        elif not changes:
            print(f"{kernel.name:<{width}}  same code (an A/A control; --changed-only skips it)")
        else:
            changed += 1
            print(f"{kernel.name:<{width}}  changed: {describe(changes)}")
    print(f"{changed} of {len(kernels)} kernels' code changed")
    return 0


def _bisect_progress(kind, version, results, step):
    from .ab import regressions

    title = "good against the code of bad" if kind == "confirm" else f"step {step}"
    verdict = "a regression" if regressions(results) else "not slower"
    print(f"{title}: {version.label[:60]}  ->  {verdict}", file=sys.stderr, flush=True)
    for done, result in enumerate(results, 1):
        ab_progress(result, done, len(results))


def cmd_bisect(args):
    from .ab import ABError
    from .bisect import bisect

    try:
        problems, backends_, kernels = _ab_cases(args)
        settings = _ab_settings(args)
    except ValueError as error:
        print(f"convbench bisect: {error}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or _stamped_path("bisect")
    print(f"convbench bisect: {args.good} (good) .. {args.bad} (bad); {len(problems)} problems x "
          f"{len(kernels)} kernels, {settings.processes} process pairs x {settings.rounds} rounds "
          f"per case", file=sys.stderr)
    _print_environment(kernels)
    try:
        document = bisect(problems, kernels, args.good, args.bad, settings, out=out,
                          report=_bisect_progress, options=_ab_options(args, backends_))
    except ABError as error:
        print(f"convbench bisect: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\nconvbench bisect: interrupted; the steps so far are in {out}", file=sys.stderr)
        return 130
    versions = document["versions"]
    print(f"{len(versions)} commit(s) from {document['good'][:10]} to {document['bad'][:10]} "
          f"change the code of the chosen kernels")
    print(f"saved: {out}")
    culprit = document["culprit"]
    if not culprit:
        print(f"verdict: {document['outcome']}")
        return 0
    from .ab import CaseResult, render
    found = next((step for step in reversed(document["steps"])
                  if step["commit"] == culprit["commit"]), document["confirm"])
    print(render([CaseResult(**case) for case in found["cases"]]))
    print(f"first slower commit: {culprit['commit'][:10]} {culprit['subject']} (changes "
          f"{', '.join(culprit['changed'])}); the last not slower: "
          f"{document['last_good'][:10]}")
    algos = ",".join(sorted({case["algo"] for case in found["cases"]}))
    print("to check it alone:\n  " + _case_command(
        f"ab --base {document['last_good'][:10]} --new {culprit['commit'][:10]}", args, algos))
    print("verdict: REGRESSION")
    return 1


def _ab_settings(args):
    from .ab import QUICK, ABSettings

    effort = dict(QUICK) if args.quick else {}
    for name in ("processes", "rounds", "min_time"):
        if getattr(args, name) is not None:
            effort[name] = getattr(args, name)
    budget = _size_option("--memory-budget", args.memory_budget)
    settings = ABSettings(**effort, min_change=args.min_change, alpha=args.alpha, seed=args.seed,
                          memory_budget=budget, case_timeout=args.case_timeout,
                          changed_only=getattr(args, "changed_only", False), threads=args.threads)
    if settings.processes < 3 or settings.rounds < 1:
        raise ValueError("--processes must be at least 3 and --rounds at least 1 (the interval "
                         "is taken over process pairs)")
    return settings


def _ab_cases(args):
    """The problems, backends and kernels an ``ab`` or ``bisect`` command line names (ValueError
    if bad); the peers only where ``--algo`` names them, as they are not ours to change."""
    problems = match_problems(load_shapes(args.shapes, mb=args.mb), args.match,
                              source=args.shapes)
    backends_ = _names(args.backend) or usable_backends()
    kernels = select(_names(args.algo), backends_)
    if not args.algo:
        kernels = [kernel for kernel in kernels if not kernel.spec.peer]
    if not getattr(args, "dry_run", False):   # all skipped would be a pass that timed nothing
        _refuse_if_none_can_run(kernels)
    return problems, backends_, kernels


def _case_command(verb, args, algos):
    """``python -m convbench VERB`` on the cases an ``ab`` or ``bisect`` command line chose, for
    the kernels ``algos``: what one prints for the other."""
    return (f"python -m convbench {verb} --shapes {args.shapes} --algo {algos}"
            + (f" --match '{args.match}'" if args.match else "")
            + (f" --mb {args.mb}" if args.mb else ""))


def _ab_options(args, backends_):
    """What selected the cases, as ``ab`` and ``bisect`` files keep it (for ``--resume``)."""
    return {"shapes": args.shapes, "mb": args.mb, "algo": args.algo, "backends": backends_,
            "match": args.match}


def _stamped_path(kind):
    """``results/<machine-id>/<kind>/<UTC time>.json``."""
    from datetime import datetime, timezone

    from .machine import machine_id
    return (DEFAULT_RESULTS_DIR / machine_id() / kind
            / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json")


def history_paths(paths):
    """Results files named directly or found in the named directories (their pyperf files left out)."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += results_files(path, pattern="*.json")
        else:
            found.append(path)
    return found


def latest_results(root, machine=None):
    from .machine import machine_id
    files = results_files(root, machine or machine_id())
    return files[-1:] if files else []


def cmd_report(args):
    from .report import write_report

    paths = args.results or latest_results(args.root)
    if not paths:
        print(f"convbench report: no results files given and none under {args.root}",
              file=sys.stderr)
        return EXIT_USAGE
    target = write_report(paths, args.out)
    print(f"report: {target} (and {target.with_suffix('.html')})")
    return 0


def cmd_history(args):
    from .history import committed_results, write_history
    from .machine import machine_id

    machine = args.machine or machine_id()
    paths = args.results or (committed_results(args.root, machine) if not args.all
                             else results_files(args.root, machine))
    if len(paths) < 1:
        print(f"convbench history: no results for machine {machine!r} under {args.root}",
              file=sys.stderr)
        return EXIT_USAGE
    target, steps = write_history(paths, args.out)
    changed = int(steps["code_changed"].sum()) if len(steps) else 0
    print(f"{len(paths)} runs, {len(steps)} step changes ({changed} where the kernel code "
          f"changed); history: {target}")
    return 0


WORKSPACE_LIMIT_HELP = ("e.g. 16M or 0: kernels that need more workspace than this are SKIPPED with "
                        "their figure, as cuDNN's find with a workspace size (default: no limit)")

# what a run chose to time
SELECTION = ("shapes", "match", "mb", "algos", "backends", "threads", "workspace_limit")


def latest_alike(candidates, path):
    """(base, alike): the last of ``candidates`` (results files, oldest first) that made the same
    selection as the run in ``path`` and True, else the last of them and False."""
    from .results import read_document

    def selection(run):
        options = read_document(run)["options"]
        return [options.get(key) for key in SELECTION]

    wanted = selection(path)
    alike = [run for run in candidates if selection(run) == wanted]
    return (alike[-1], True) if alike else (candidates[-1], False)


def compare_with_latest_committed(path, json_path=None):
    """After a sweep: compare with the newest committed run of this machine that made the same
    selection (shapes, --match, --mb, kernels, thread counts), else with the newest committed run;
    print the verdict, and with ``json_path`` write the comparison there as ``compare --json``
    does."""
    from .compare import (compare_frames, render, same_environment_runs, summarize,
                          unavailable_peers_text)
    from .history import committed_results, refine_code_changed
    from .results import load_results, read_document

    machine = read_document(path)["machine"]["machine_id"]
    root = Path(path).parent.parent
    baselines = [p for p in committed_results(root, machine) if p.resolve() != Path(path).resolve()]
    if not baselines:
        print(f"\nno committed baseline for machine {machine} under {root}: nothing to compare")
        return 0
    base_path, alike = latest_alike(baselines, path)
    # the runs made in the base's environment give the run-to-run floor
    floors = same_environment_runs(base_path, baselines)
    base, new = load_results(base_path), load_results(path)
    frame = compare_frames(base, new, history=load_results(*floors), new_complete=_complete(path))
    frame, code_changes = refine_code_changed(frame, (base_path, base), (path, new))
    quiet = ["same", "skipped", "peer unavailable"]
    if not alike:   # the base chose other problems or kernels: what this run lacks, it did not choose
        quiet.append("only in base")
    changed = frame[~frame["verdict"].isin(quiet)]
    print(f"\ncompared with the latest committed run "
          f"{'of the same selection' if alike else '(none made the same selection)'} {base_path} "
          f"({_history_floor_text(len(floors), len(baselines), 'committed runs')}):")
    if len(changed):
        print(render(changed))
    missing = int((frame["verdict"] == "only in base").sum())
    if not alike and missing:
        print(f"({missing} cases of that run are not in this one, which selected other shapes, "
              f"kernels or thread counts; not listed)")
    if (frame["verdict"] == "peer unavailable").any():
        print(unavailable_peers_text(frame))
    print(summarize(frame))
    return _finish_comparison(frame, base_path, path, code_changes, history_runs=len(floors),
                              json_path=json_path)


def _match_argument(parser):
    parser.add_argument("--match", metavar="REGEX",
                        help="only the problems whose name or descriptor this regular expression "
                             "finds (re.search), e.g. 'res[34]a' or 'kh3ph1'")


def _add_ab_arguments(parser):
    """The case selection, timing and verdict options ``ab`` and ``bisect`` share."""
    parser.add_argument("--shapes", default="default",
                        help=f"a shipped set ({', '.join(shape_sets())}), a file of descriptors "
                             f"or one descriptor")
    _match_argument(parser)
    parser.add_argument("--algo", help="comma-separated algorithms (default: all but the peers)")
    parser.add_argument("--backend", help="comma-separated backends (default: those usable here)")
    parser.add_argument("--mb", type=int, help="rescale every problem to this batch size")
    parser.add_argument("--processes", type=int,
                        help="worker pairs per case (default 6; quick 3)")
    parser.add_argument("--rounds", type=int,
                        help="timed values per side and pair (default 6; quick 4)")
    parser.add_argument("--min-time", type=_positive_seconds,
                        help="seconds one value lasts at least (default 0.05; quick 0.02)")
    parser.add_argument("--quick", action="store_true", help="fewer processes and rounds")
    parser.add_argument("--min-change", type=_non_negative, default=0.05,
                        help="smallest relative change that can count (default 0.05)")
    parser.add_argument("--alpha", type=_probability, default=0.05,
                        help="1 - confidence level of the ratio's interval (default 0.05)")
    parser.add_argument("--seed", type=_seed, default=0)
    parser.add_argument("--memory-budget", help="e.g. 4G; default half the memory available now")
    parser.add_argument("--case-timeout", type=_positive_seconds, default=DEFAULT_CASE_TIMEOUT,
                        help="seconds one case (both versions) may take")
    parser.add_argument("--threads", type=_thread_count,
                        help="pin both versions to this many CPUs and threads (1 is far less noisy "
                             "on a shared machine, but cannot see a change in parallel scaling)")


def build_parser():
    parser = argparse.ArgumentParser(prog="convbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="sweep kernels over a shape set and store the results")
    run.add_argument("--shapes", default="default",
                     help=f"a shipped set ({', '.join(shape_sets())}), a file of descriptors or "
                          f"one descriptor")
    _match_argument(run)
    run.add_argument("--algo", help="comma-separated algorithms (default: all)")
    run.add_argument("--backend", help="comma-separated backends: cpu, gpu (default: those with a "
                                       "kernel usable here)")
    run.add_argument("--mb", type=int, help="rescale every problem to this batch size")
    run.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR,
                     help="results root; the file goes under OUT/<machine-id>/")
    run.add_argument("--mode", choices=sorted(MODES), default="default", help="timing effort")
    run.add_argument("--quick", action="store_true", help="same as --mode quick")
    run.add_argument("--rigorous", action="store_true", help="same as --mode rigorous")
    run.add_argument("--seed", type=_seed, default=0, help="seed of the input fills")
    run.add_argument("--memory-budget", help="e.g. 4G; default half the memory available now")
    run.add_argument("--workspace-limit", metavar="SIZE", help=WORKSPACE_LIMIT_HELP)
    run.add_argument("--case-timeout", type=_positive_seconds, default=DEFAULT_CASE_TIMEOUT,
                     help="seconds one case may take before it is killed (TIMEOUT row)")
    run.add_argument("--resume", type=Path,
                     help="continue this interrupted results file with its own options")
    run.add_argument("--retime-busy", action="store_true",
                     help="with --resume: time again, in place, the cases of that file during "
                          "which others took over 10 %% of the CPUs")
    run.add_argument("--threads", metavar="N[,N...]",
                     help="CPU kernels once per count, e.g. 1,2: each case pinned to that many "
                          "cores with numba, OpenMP and BLAS set to as many threads (default: "
                          "whatever the environment gives, all cores)")
    run.add_argument("--check-only", action="store_true",
                     help="validate against the reference, do not time (correctness mode)")
    run.add_argument("--remeasure-ceilings", action="store_true",
                     help="measure the GPU's SGEMM and copy ceilings again instead of using the "
                          "cached ones (the CPU's are measured for every run)")
    run.add_argument("--report", type=Path, metavar="DIR",
                     help="write the report for this run into DIR when it finishes (with "
                          "--compare-latest, the comparison too, as DIR/compare.json)")
    run.add_argument("--compare-latest", action="store_true",
                     help="compare with the latest committed run of this machine that made the "
                          "same selection (else the latest) and print the verdict")
    run.set_defaults(func=cmd_run)

    find = sub.add_parser("find", help="every kernel on the given problems, fastest first "
                                       "(as cuDNN's find)")
    find.add_argument("problems", nargs="+", metavar="PROBLEM",
                      help="a descriptor such as mb1ic64ih56oc64oh56kh3ph1, a shipped set or a "
                           "file of descriptors")
    _match_argument(find)
    find.add_argument("--algo", help="comma-separated algorithms (default: all, peers included)")
    find.add_argument("--backend", help="comma-separated backends (default: those usable here)")
    find.add_argument("--mb", type=int, help="rescale every problem to this batch size")
    find.add_argument("--mode", choices=sorted(MODES), default="default", help="timing effort")
    find.add_argument("--quick", action="store_true", help="same as --mode quick")
    find.add_argument("--seed", type=_seed, default=0, help="seed of the input fills")
    find.add_argument("--memory-budget", help="e.g. 4G; default half the memory available now")
    find.add_argument("--workspace-limit", metavar="SIZE", help=WORKSPACE_LIMIT_HELP)
    find.add_argument("--case-timeout", type=_positive_seconds, default=DEFAULT_CASE_TIMEOUT,
                      help="seconds one case may take before it is killed (TIMEOUT row)")
    find.add_argument("--threads", metavar="N[,N...]",
                      help="CPU kernels once per count, e.g. 1,2: each case pinned to that many "
                           "cores with numba, OpenMP and BLAS set to as many threads (default: "
                           "whatever the environment gives, all cores)")
    find.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR,
                      help="results root; the file goes under OUT/<machine-id>/find/")
    find.set_defaults(func=cmd_find)

    lister = sub.add_parser("list", help="shape sets and kernels, and whether each runs here; "
                                         "with sets named, their problems")
    lister.add_argument("shapes", nargs="*", metavar="SET",
                        help="list the problems of these shapes (a set, a file or a descriptor)")
    _match_argument(lister)
    lister.add_argument("--mb", type=int, help="rescale every problem to this batch size")
    lister.set_defaults(func=cmd_list, algo=None, backend=None, memory_budget=None, threads=None)

    compare = sub.add_parser("compare", help="compare two runs; exit 1 on a significant slowdown, "
                                             "a new failure or a case newly skipped")
    compare.add_argument("base", type=Path, nargs="?",
                         help="results file of the base run (with NEW; neither: this machine's "
                              "latest run and the one before it of the same selection, with its "
                              "directory as history)")
    compare.add_argument("new", type=Path, nargs="?", help="results file of the new run")
    compare.add_argument("--root", type=Path, default=DEFAULT_RESULTS_DIR,
                         help="results root searched when no files are named")
    compare.add_argument("--min-change", type=_non_negative, default=0.10,
                         help="smallest relative change that can count (default 0.10)")
    compare.add_argument("--alpha", type=_probability, default=0.01,
                         help="significance level of the Mann-Whitney U test (default 0.01)")
    compare.add_argument("--noise-factor", type=_non_negative, default=2.0,
                         help="changes within this many relative MADs are noise (default 2)")
    compare.add_argument("--markdown", action="store_true", help="Markdown table for a pull request")
    compare.add_argument("--all", action="store_true",
                         help="list the cases skipped in both runs too (by default only counted)")
    compare.add_argument("--json", metavar="PATH",
                         help="also write the verdict and every case as JSON to PATH for a CI "
                              "job to read (- : to standard output, the text to standard error)")
    compare.add_argument("--history", nargs="+", metavar="PATH",
                         help="earlier results files or directories of the same machine: a change "
                              "must also exceed the largest change identical code showed between "
                              "two of them")
    compare.set_defaults(func=cmd_compare)

    ab = sub.add_parser("ab", help="time two versions of the kernels side by side, interleaved; "
                                   "exit 1 on a significant slowdown")
    ab.add_argument("--base", default="HEAD",
                    help="git revision of the base version (default HEAD)")
    ab.add_argument("--new", default=".",
                    help="git revision of the new version, or . for this working tree with its "
                         "uncommitted changes (default)")
    _add_ab_arguments(ab)
    ab.add_argument("--dry-run", action="store_true",
                    help="say which kernels' code differs between the versions, and where, "
                         "without timing anything")
    ab.add_argument("--changed-only", action="store_true",
                    help="only kernels whose code differs between the two versions (the code "
                         "each reaches: comments and helpers it does not call do not count)")
    ab.add_argument("--out", type=Path, help="JSON file for the comparison (default "
                                             "results/<machine-id>/ab/<time>.json)")
    ab.add_argument("--resume", type=Path, metavar="FILE",
                    help="finish an interrupted comparison with its own trees and options")
    ab.add_argument("--markdown", action="store_true", help="Markdown table for a pull request")
    ab.set_defaults(func=cmd_ab)

    bisect = sub.add_parser("bisect", help="the commit that made a kernel slower: ab's timing "
                                           "as the test of a binary search; exit 1 when found")
    bisect.add_argument("--good", required=True, help="a git revision whose kernels were fast")
    bisect.add_argument("--bad", default="HEAD",
                        help="a later git revision whose kernels are slower (default HEAD)")
    _add_ab_arguments(bisect)
    bisect.add_argument("--out", type=Path, help="JSON file of the search (default "
                                                 "results/<machine-id>/bisect/<time>.json)")
    bisect.set_defaults(func=cmd_bisect)

    report = sub.add_parser("report", help="Markdown/HTML report with figures")
    report.add_argument("results", type=Path, nargs="*",
                        help="results files (default: the latest of this machine)")
    report.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    report.add_argument("--root", type=Path, default=DEFAULT_RESULTS_DIR)
    report.set_defaults(func=cmd_report)

    history = sub.add_parser("history", help="GFLOP/s of every case across a machine's runs")
    history.add_argument("results", type=Path, nargs="*",
                         help="results files (default: the committed runs of this machine)")
    history.add_argument("--machine", help="machine id (default: this machine)")
    history.add_argument("--all", action="store_true", help="include uncommitted results files")
    history.add_argument("--root", type=Path, default=DEFAULT_RESULTS_DIR)
    history.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    history.set_defaults(func=cmd_history)

    machine = sub.add_parser("machine", help="this machine as runs record it (CPU, libraries, "
                                             "BLAS kernels, settings) and settings that change "
                                             "what a run times")
    machine.add_argument("--ceilings", action="store_true",
                         help="also measure the CPU's SGEMM and copy ceilings (a few seconds)")
    machine.set_defaults(func=cmd_machine)

    show = sub.add_parser("show", help="print a results file's table (default: this machine's "
                                       "latest run)")
    show.add_argument("results", type=Path, nargs="?", help="a results file")
    show.add_argument("--root", type=Path, default=DEFAULT_RESULTS_DIR)
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="write a results file's rows as CSV")
    export.add_argument("results", type=Path)
    export.add_argument("--csv", type=Path, help="output path (default: beside the results file)")
    export.set_defaults(func=cmd_export)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job's timeout or cancel, ``kill``) taken as Ctrl-C is: the running case and
    its workers are killed with it, the finished ones stay saved, and the command says how to go
    on from them."""


_TERMINATED = []   # set by the handler: a command's 130 (interrupted) was a SIGTERM


def _terminate(signum, frame):
    _TERMINATED.append(signum)
    raise Terminated()


def main(argv=None):
    import signal

    from .requirements import check

    args = build_parser().parse_args(argv)
    unmet = check(args)
    if unmet:
        print(unmet, file=sys.stderr)
        return EXIT_USAGE
    # Python's default for SIGTERM ends the process where it stands: the case's own process group
    # (pyperf's workers with it) would run on with nobody to kill it, and nothing said what was kept
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:   # called from a thread other than the main one: leave signals alone
        previous = None
    try:
        status = args.func(args)
        return 128 + signal.SIGTERM if status == 130 and _TERMINATED else status
    except Terminated:   # outside the commands' own handling: no traceback
        return 128 + signal.SIGTERM
    except ResultsError as error:  # a missing, corrupt or unknown-version results file
        print(f"convbench {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:   # output piped into head or less, which quit: no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:  # a file or folder it cannot write (or read): named, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"convbench {args.command}: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _TERMINATED.clear()


if __name__ == "__main__":
    sys.exit(main())
