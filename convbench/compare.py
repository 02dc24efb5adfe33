"""Compare two runs case by case and say, as a CI job can act on, whether anything got slower.

A change in a case's median time counts as significant only when all three hold (as in pyperf's
``compare_to`` and asv's ``compare``):

* it is at least ``min_change`` (default 10 %) of the base median;
* it is larger than the noise floor: ``noise_factor`` times the larger relative spread
  (median absolute deviation / median) of the two sides;
* a two-sided Mann-Whitney U test (scipy.stats) rejects "same distribution" at ``alpha``
  (default 0.01).

The test and the spread use the per-worker-process medians when both runs have at least three:
values from one process share its memory layout and thread placement and vary much less than
processes do, so treating them as independent would overstate significance (two identical default
runs on the development machine gave two false verdicts that way). Runs without them (older files,
``--quick``) fall back to the raw values.

**Run-to-run drift.** On a shared machine a whole run can be a few percent (and a case up to 20 %)
faster or slower than the next one of the same code, with every worker of one run beyond every worker
of the other; no statistic inside two runs can tell that from a real change. Given earlier runs
(``history``: ``compare --history``, and the committed runs of the machine after ``make bench``), a
case's floor is raised to the largest change seen between two earlier runs of identical code: the same
case, the same kernel code as the base (:func:`code_identities`), the same timing mode, at least
``HISTORY_MIN_RUNS`` runs. A change must exceed that too.

Besides timing, the comparison lists cases present on one side only, cases whose kernel code
changed (an edit to comments or docstrings alone does not count), cases whose status changed (a new
FAILED, CRASHED or TIMEOUT is a regression, and so is a case the base run timed and the new one
SKIPPED, and so is a case an interrupted new run never reached), and cases whose error grew past
the algorithm's tolerance. Nothing is dropped silently:
``convbench compare`` leaves out of its table only the cases skipped in both runs, which the
summary counts and ``--all`` lists. :func:`comparison_document` gives the same as JSON
(``compare --json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .machine import BUSY_WARNING_PCT, busy_row, is_busy, taken_by_others_pct
from .results import kernel_labels

KEY = ["descriptor", "algo", "backend", "threads"]   # threads: None on the GPU
BAD_STATUSES = {"FAILED", "CRASHED", "TIMEOUT"}
HISTORY_MIN_RUNS = 3


@dataclass(frozen=True)
class Thresholds:
    min_change: float = 0.10
    noise_factor: float = 2.0
    alpha: float = 0.01


def _samples(value):
    if isinstance(value, (list, tuple, np.ndarray)) and len(value):
        return np.asarray(value, dtype=float)
    return None


def _is_processes(row):
    medians = _samples(row.get("process_medians_s"))
    return medians is not None and len(medians) >= 3


def _units(row):
    return _samples(row.get("process_medians_s"))


def _relative_mad(values):
    median = np.median(values)
    return float(np.median(np.abs(values - median)) / median) if median else 0.0


CODE_FIELDS = ("reach_hash", "code_hash", "source_hash")   # the narrowest first


def code_identities(row):
    """Every name a row gives its kernel's code, the narrowest first: the hash of the code the
    kernel reaches (:mod:`convbench.reach`), of its files' code (comments and docstrings left out),
    of their text. Older rows lack the first, or the first two."""
    return [f"{field}:{row.get(field)}" for field in CODE_FIELDS
            if isinstance(row.get(field), str) and row.get(field)]


def code_identity(row):
    """The narrowest name of a row's kernel code (:func:`code_identities`); None if it has none."""
    identities = code_identities(row)
    return identities[0] if identities else None


def same_environment_runs(base_path, paths):
    """The results files among ``paths`` whose run was made in the base run's environment
    (:func:`convbench.machine.same_environment`): the only runs whose spread is the machine's
    noise rather than a change of libraries, BLAS kernels or settings."""
    from .machine import same_environment
    from .results import read_document

    base = read_document(base_path)["machine"]
    return [path for path in paths if same_environment(base, read_document(path)["machine"])]


def code_of_sources(*frames):
    """{source hash: {field: hash}} for the code and reach hashes of rows that record them beside
    their source hash: identical text of the same files is identical code, so a row written before
    either hash can take it from a later row with the same source hash (:func:`with_code_hashes`).
    The files of the source hash hold all the code the reach hash reads."""
    known = {}
    for frame in frames:
        if frame is None or not len(frame) or "source_hash" not in frame:
            continue
        for field in CODE_FIELDS[:-1]:
            if field not in frame:
                continue
            for source, code in zip(frame["source_hash"], frame[field]):
                if isinstance(source, str) and source and isinstance(code, str) and code:
                    known.setdefault(source, {})[field] = code
    return known


def with_code_hashes(frame, known):
    """``frame`` with its code and reach hashes filled in from ``known`` where a row lacks them."""
    if not len(frame) or not known:
        return frame
    filled = {}
    for field in CODE_FIELDS[:-1]:
        codes = frame[field] if field in frame else [None] * len(frame)
        filled[field] = [code if isinstance(code, str) and code
                         else known.get(source, {}).get(field)
                         for code, source in zip(codes, frame["source_hash"])]
    return frame.assign(**filled)


def code_changed(base_row, new_row):
    """Whether two rows ran different kernel code: their narrowest hashes that both record differ
    (:data:`CODE_FIELDS`); False when that cannot be told."""
    for field in CODE_FIELDS:
        base, new = base_row.get(field), new_row.get(field)
        if isinstance(base, str) and base and isinstance(new, str) and new:
            return base != new
    return False


def history_spreads(history):
    """{(descriptor, algo, backend, threads, code identity, mode): (spread, runs)} from earlier
    runs, under each name a row gives its code (:func:`code_identities`): rows with the same
    reach hash ran the same code even where a file they import changed elsewhere, and rows from
    before reach hashes still share their code hash with the runs after.

    ``spread`` is the largest relative change between the medians of two runs of identical code:
    max / min - 1 over the PASSED rows of at least ``HISTORY_MIN_RUNS`` distinct files. Rows timed
    while others took over ``BUSY_WARNING_PCT`` of the CPUs are left out: a disturbed run would
    raise the floor and hide real slowdowns.
    """
    if history is None or len(history) == 0:
        return {}
    history = history.assign(code=[code_identities(row) for _, row in history.iterrows()],
                             busy=[busy_row(row) for _, row in history.iterrows()])
    passed = history[(history["status"] == "PASSED") & history["median_s"].notna()
                     & ~history["busy"]].explode("code")        # a row under each of its names
    passed = passed[passed["code"].notna()]
    spreads = {}
    for key, group in passed.groupby(KEY + ["code", "mode"], dropna=False):
        medians = group.groupby("file")["median_s"].first().astype(float)
        if len(medians) >= HISTORY_MIN_RUNS and medians.min() > 0:
            spreads[key] = (float(medians.max() / medians.min() - 1.0), len(medians))
    return spreads


def timing_verdict(base_row, new_row, thresholds, drift=None):
    """('slower' | 'faster' | 'same', ratio, p_value, why) for two PASSED rows of one case.

    ``drift``, when given, is ``(spread, runs)`` from :func:`history_spreads` for the base's code.
    """
    from scipy.stats import mannwhitneyu

    base_median, new_median = float(base_row["median_s"]), float(new_row["median_s"])
    ratio = new_median / base_median
    change = ratio - 1.0
    base_values, new_values = _units(base_row), _units(new_row)
    if _is_processes(base_row) and _is_processes(new_row):
        spreads = [_relative_mad(values) for values in (base_values, new_values)]
    else:
        base_values, new_values = _samples(base_row.get("samples_s")), _samples(new_row.get("samples_s"))
        spreads = [float(row["mad_s"] or 0.0) / float(row["median_s"]) for row in (base_row, new_row)]
    noise = thresholds.noise_factor * max(spreads)
    floor = "the noise floor"
    if drift is not None and drift[0] > noise:
        noise = drift[0]
        floor = f"the run-to-run spread of identical code ({drift[1]} earlier runs)"
    p_value = float("nan")
    if base_values is not None and new_values is not None:
        if np.array_equal(np.sort(base_values), np.sort(new_values)):
            p_value = 1.0
        else:
            p_value = float(mannwhitneyu(base_values, new_values, alternative="two-sided").pvalue)
    if abs(change) < thresholds.min_change:
        return "same", ratio, p_value, f"change {change:+.1%} below the {thresholds.min_change:.0%} minimum"
    if abs(change) <= noise:
        return "same", ratio, p_value, f"change {change:+.1%} within {floor} {noise:.1%}"
    if not p_value < thresholds.alpha:
        why = ("no raw values to test" if np.isnan(p_value)
               else f"not significant (p={p_value:.3g} >= {thresholds.alpha})")
        return "same", ratio, p_value, why
    verdict = "slower" if change > 0 else "faster"
    return verdict, ratio, p_value, f"{change:+.1%}, p={p_value:.2g}"


def _timed(row):
    """Whether a row holds a time: a median above zero (not None, nor NaN from a join)."""
    median = row.get("median_s")
    return median is not None and median == median and float(median) > 0


def _flag(value):
    """A boolean column's value, False where the row has none (a file from before the column,
    or the side of an outer join that lacks the case: None or NaN)."""
    return value is not None and value == value and bool(value)


def compare_frames(base, new, thresholds=Thresholds(), history=None, new_complete=True):
    """One row per case in either run, with a ``verdict`` and the reason for it.

    ``history``: rows of earlier runs (``load_results``) for the run-to-run floor; the new run's own
    rows are left out of it.

    ``new_complete``: False when the new run's sweep was interrupted (its file says so); a case
    of the base it lacks is then ``not reached`` rather than ``only in base``. A case the base
    timed and the new run passed without a time (``--check-only``) is ``not timed in new``.

    Verdicts: ``slower``, ``faster``, ``same`` (timing); ``new failure``, ``fixed``, ``still failing``,
    ``newly skipped`` (passed in the base run, SKIPPED in the new: the kernel stopped running a case
    it ran), ``peer unavailable`` (a peer the base run timed that cannot run at all where the new
    run ran: its library is not installed there; the peers are what our kernels are measured
    against, not the code under test), ``newly run`` (the other way), ``skipped`` (in one run or
    both, and not timed in the other); ``only in base``, ``only in new``.
    Extra flags: ``source_changed`` and ``error_over_tolerance``.
    """
    import pandas as pd

    if history is not None and len(history) and len(new):
        new_files = {str(Path(f).resolve()) for f in new["file"]}
        history = history[~history["file"].map(lambda f: str(Path(f).resolve())).isin(new_files)]
    known = code_of_sources(base, new, history)
    base, new = with_code_hashes(base, known), with_code_hashes(new, known)
    history = None if history is None else with_code_hashes(history, known)
    drifts = history_spreads(history)
    merged = pd.merge(base, new, on=KEY, how="outer", suffixes=("_base", "_new"), indicator=True)
    rows = []
    for _, row in merged.iterrows():
        b = {col[:-5]: row[col] for col in merged.columns if col.endswith("_base")}
        n = {col[:-4]: row[col] for col in merged.columns if col.endswith("_new")}
        out = {key: row[key] for key in KEY}
        out["name"] = n.get("name") if row["_merge"] != "left_only" else b.get("name")
        out.update(base_status=b.get("status"), new_status=n.get("status"),
                   base_median_s=b.get("median_s"), new_median_s=n.get("median_s"),
                   ratio=None, p_value=None, source_changed=False, error_over_tolerance=False,
                   busy_pct=None)
        if row["_merge"] == "left_only" and not new_complete:
            out.update(verdict="not reached", why="the new run was interrupted before this case")
        elif row["_merge"] == "left_only":
            out.update(verdict="only in base", why="case missing from the new run")
        elif row["_merge"] == "right_only":
            out.update(verdict="only in new", why="case not in the base run")
        else:
            out["source_changed"] = code_changed(b, n)
            tolerance = n.get("tolerance")
            rel_l2 = n.get("rel_l2")
            out["error_over_tolerance"] = bool(rel_l2 is not None and tolerance is not None
                                               and rel_l2 == rel_l2 and rel_l2 > tolerance)
            bs, ns = b.get("status"), n.get("status")
            if ns in BAD_STATUSES and bs not in BAD_STATUSES:
                out.update(verdict="new failure", why=f"{ns}: {n.get('reason') or ''}".strip())
            elif bs in BAD_STATUSES and ns == "PASSED":
                out.update(verdict="fixed", why=f"was {bs}")
            elif bs in BAD_STATUSES and ns in BAD_STATUSES:
                out.update(verdict="still failing", why=f"{ns}: {n.get('reason') or ''}".strip())
            elif (bs == "PASSED" and ns == "SKIPPED" and _flag(n.get("peer"))
                  and _flag(n.get("unavailable"))):
                out.update(verdict="peer unavailable",
                           why=f"not in the new run: {n.get('reason') or ''}".strip())
            elif bs == "PASSED" and ns == "SKIPPED":
                out.update(verdict="newly skipped", why=n.get("reason") or "")
            elif bs == "SKIPPED" and ns == "PASSED":
                out.update(verdict="newly run", why=f"was skipped: {b.get('reason') or ''}".strip())
            elif bs == "PASSED" and ns == "PASSED" and _timed(b) and not _timed(n):
                out.update(verdict="not timed in new",
                           why="timed in the base run, not in the new one (a --check-only run "
                               "measures no time)")
            elif bs == "PASSED" and ns == "PASSED" and _timed(b) and _timed(n):
                taken = [pct for pct in (taken_by_others_pct(b), taken_by_others_pct(n))
                         if pct is not None]
                out["busy_pct"] = max(taken) if taken else None
                drift = next((drifts[key] for key in (
                    tuple(row[k] for k in KEY) + (code, b.get("mode"))
                    for code in code_identities(b)) if key in drifts), None)
                verdict, ratio, p_value, why = timing_verdict(b, n, thresholds, drift)
                out.update(verdict=verdict, ratio=ratio, p_value=p_value, why=why)
            else:
                out.update(verdict="skipped" if "SKIPPED" in (bs, ns) else "not timed",
                           why=n.get("reason") or b.get("reason") or "")
        rows.append(out)
    frame = pd.DataFrame(rows)
    order = {"new failure": 0, "newly skipped": 1, "slower": 2, "not reached": 3,
             "not timed in new": 4, "only in base": 5, "only in new": 6, "still failing": 7,
             "faster": 8, "fixed": 9, "newly run": 10, "peer unavailable": 11, "same": 12,
             "skipped": 13, "not timed": 14}
    frame["_order"] = frame["verdict"].map(order).fillna(len(order))
    return frame.sort_values(["_order", "ratio"], ascending=[True, False]).drop(columns="_order")


REGRESSION_VERDICTS = ("slower", "new failure", "newly skipped", "not reached",
                       "not timed in new")


def regressions(frame):
    """Cases a CI job should fail on: significant slowdowns, new failures, cases a kernel ran
    in the base run and skips in the new one (a lost case can hide a slowdown: `find`'s best and
    the whole-network totals move to another kernel without a word), and cases an interrupted
    new run never reached or a correctness-only new run did not time (neither can vouch for
    their speed)."""
    return frame[frame["verdict"].isin(REGRESSION_VERDICTS)]


def ab_suggestion(frame, base_document, new_document):
    """The ``convbench ab`` command that re-times, side by side, the cases this comparison called
    slower whose kernel code changed: two runs cannot tell a slower kernel from a slower machine,
    ab can. None when there are no such cases or the base run has no clean commit to extract."""
    import re

    slow = frame[(frame["verdict"] == "slower") & frame["source_changed"]]
    base_git, new_git = base_document.get("git") or {}, new_document.get("git") or {}
    commit = base_git.get("commit")
    if slow.empty or not commit or commit == "unknown" or base_git.get("dirty"):
        return None
    names = sorted({str(name or descriptor) for name, descriptor
                    in zip(slow["name"], slow["descriptor"])})
    options = new_document.get("options") or {}
    parts = ["python -m convbench ab", f"--base {commit[:10]}"]
    if new_git.get("commit") not in (None, "unknown") and not new_git.get("dirty"):
        parts.append(f"--new {new_git['commit'][:10]}")
    if options.get("shapes"):
        parts.append(f"--shapes {options['shapes']}")
    if options.get("mb"):
        parts.append(f"--mb {options['mb']}")
    parts.append(f"--algo {','.join(sorted(set(slow['algo'])))}")
    parts.append(f"--backend {','.join(sorted(set(slow['backend'])))}")
    parts.append("--match '" + "|".join(re.escape(name) for name in names) + "'")
    return " ".join(parts)


SHIFT_WARNING = 0.05


def run_shift(frame):
    """(median ratio, cases) over the timed cases whose kernel code did not change, or None.

    When most cases of unchanged code move together, the machine moved (another load on a shared
    host, a different clock), not the code; ``summarize`` says so from a 5 % median shift up.
    """
    timed = frame[frame["verdict"].isin(["same", "slower", "faster"]) & ~frame["source_changed"]]
    if len(timed) < 3:
        return None
    return float(timed["ratio"].astype(float).median()), len(timed)


def _pct(pct):
    return f"{float(pct):.0f}%" if is_busy(pct) else ""


def summarize(frame):
    counts = frame["verdict"].value_counts()
    parts = [f"{counts[v]} {v}" for v in ("slower", "new failure", "newly skipped", "not reached",
                                         "not timed in new", "faster", "fixed", "newly run",
                                         "same", "only in base",
                                         "only in new", "still failing", "peer unavailable",
                                         "skipped", "not timed")
             if v in counts]
    flags = []
    if frame["source_changed"].any():
        flags.append(f"{int(frame['source_changed'].sum())} with changed kernel code")
    if frame["error_over_tolerance"].any():
        flags.append(f"{int(frame['error_over_tolerance'].sum())} with error over tolerance")
    text = ", ".join(parts + flags)
    called = frame[frame["verdict"].isin(["slower", "faster"])]
    busy = called[called["busy_pct"].map(is_busy)]
    if len(busy):
        text += (f"\n{len(busy)} of the {len(called)} cases called slower or faster ran while other "
                 f"processes or the hypervisor took over {BUSY_WARNING_PCT:.0f} % of the CPUs in "
                 f"one of the runs (flag 'busy machine'): time them again with the machine idle")
    shift = run_shift(frame)
    if shift and abs(shift[0] - 1) >= SHIFT_WARNING:
        text += (f"\nwhole-run shift: the {shift[1]} timed cases with unchanged kernel code moved by a "
                 f"median {shift[0] - 1:+.1%}; a shift this broad points to the machine, not the code "
                 f"(to test a code change, `convbench ab` times both versions side by side)")
    return text


def unavailable_peers_text(frame):
    """One line per peer the base run timed and the new run could not run at all (its library is
    not installed there): the cases left uncompared and why. Empty when there are none."""
    gone = frame[frame["verdict"] == "peer unavailable"]
    lines = []
    for (algo, backend, why), cases in gone.groupby(["algo", "backend", "why"], sort=True):
        lines.append(f"{algo}/{backend} (peer): {len(cases)} cases timed in the base run, "
                     f"{why}; not compared, not a regression")
    return "\n".join(lines)


def render(frame, markdown=False):
    """The comparison as a text or Markdown table."""
    table = frame.assign(
        case=frame["name"].where(frame["name"].fillna("") != "", frame["descriptor"]),
        kernel=kernel_labels(frame),
        base_ms=frame["base_median_s"].astype(float) * 1e3,
        new_ms=frame["new_median_s"].astype(float) * 1e3,
        ratio=frame["ratio"].astype(float),
        flags=[", ".join(f for f, on in (("code changed", s), ("error > tolerance", e),
                                         (f"busy machine {_pct(b)}", is_busy(b))) if on)
               for s, e, b in zip(frame["source_changed"], frame["error_over_tolerance"],
                                  frame["busy_pct"])],
    )[["case", "kernel", "base_ms", "new_ms", "ratio", "verdict", "why", "flags"]]
    if markdown:
        return markdown_table(table)
    return text_table(table)


def text_table(table):
    """A DataFrame as aligned text: numbers to 4 significant digits and right-aligned, text
    left-aligned (pandas right-aligns both, which pushes a short note far from its row), NaN
    blank, no trailing blanks."""
    import pandas as pd

    columns = []
    for name in table.columns:
        values = table[name]
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        cells = [str(name)] + [_text_cell(value) for value in values]
        width = max(len(cell) for cell in cells)
        columns.append([cell.rjust(width) if numeric else cell.ljust(width) for cell in cells])
    return "\n".join("  ".join(row).rstrip() for row in zip(*columns))


def _text_cell(value):
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(table):
    """A DataFrame as a GitHub Markdown table (numbers to 4 significant digits, NaN blank)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_cell(row[col]) for col in table.columns) + " |")
    return "\n".join(lines)


def _cell(value):
    return _text_cell(value).replace("|", "\\|")


COMPARISON_SCHEMA = 1

# A case of the comparison document: these columns of the frame, source_changed renamed.
CASE_COLUMNS = ("descriptor", "name", "algo", "backend", "threads", "verdict", "why",
                "base_status", "new_status", "base_median_s", "new_median_s", "ratio", "p_value",
                "source_changed", "error_over_tolerance", "busy_pct")
CASE_NAMES = {"source_changed": "code_changed"}


def _plain(value):
    """A frame cell as JSON: numpy scalars as Python numbers, NaN and pandas' missing as null."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, (bool, int, str)):
        return value
    try:
        import pandas as pd
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _run_summary(path, document):
    git = document.get("git") or {}
    return {"file": str(path), "created": document.get("created"),
            "machine_id": (document.get("machine") or {}).get("machine_id"),
            "commit": git.get("commit"), "dirty": git.get("dirty"),
            "complete": document.get("complete") is not False,
            "options": document.get("options") or {}}


def comparison_document(frame, base, new, thresholds=Thresholds(), *, history_runs=0,
                        code_changes=None, environment_changes=(), ab_command=None):
    """The comparison as one JSON-ready dict, for a CI job to read rather than parse the table.

    ``base`` and ``new`` are ``(path, document)`` of the two runs (:func:`read_document`);
    ``frame`` is :func:`compare_frames`' (after
    :func:`convbench.history.refine_code_changed`, whose ``changes`` go in ``code_changes``).
    The document holds the verdict and the exit status ``compare`` gives, the count of cases per
    verdict, the thresholds and the number of earlier runs that gave the run-to-run floors, what
    differs between the two runs' environments, the whole-run shift of unchanged code, the
    ``ab`` command that re-times the slower cases whose code changed, and every case: its
    verdict and reason, both medians in seconds, the ratio new / base, the test's p-value, and
    its flags (``code_changed``, ``error_over_tolerance``, ``busy_pct``). NaN becomes null, so
    strict JSON readers (``jq``, ``json.loads``) take it.
    """
    bad = regressions(frame)
    shift = run_shift(frame)
    cases = []
    for _, row in frame.iterrows():
        case = {CASE_NAMES.get(column, column): _plain(row.get(column))
                for column in CASE_COLUMNS}
        if case["threads"] is not None:
            case["threads"] = int(case["threads"])
        case["regression"] = case["verdict"] in REGRESSION_VERDICTS
        cases.append(case)
    if isinstance(code_changes, dict):
        code_changes = {name: None if found is None else [list(item) for item in found]
                        for name, found in code_changes.items()}
    return {
        "convbench_compare": COMPARISON_SCHEMA,
        "verdict": "REGRESSION" if len(bad) else "ok",
        "exit_status": 1 if len(bad) else 0,
        "regressions": len(bad),
        "counts": {str(verdict): int(count)
                   for verdict, count in frame["verdict"].value_counts().items()},
        "base": _run_summary(*base),
        "new": _run_summary(*new),
        "thresholds": {"min_change": thresholds.min_change,
                       "noise_factor": thresholds.noise_factor, "alpha": thresholds.alpha},
        "history_runs": int(history_runs),
        "environment_changes": list(environment_changes),
        "code_changes": code_changes,
        "whole_run_shift": None if shift is None else {"median_ratio": shift[0],
                                                       "cases": shift[1]},
        "ab_command": ab_command,
        "cases": cases,
    }
