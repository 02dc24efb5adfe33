"""Each case's speed across a machine's runs, ordered by commit date, with step changes marked.

A step change is a pair of consecutive runs where :mod:`convbench.compare` calls the case
significantly slower or faster.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .compare import KEY, Thresholds, compare_frames
from .machine import busy_row, is_busy
from .results import load_results, mixed_thread_backends, results_files, split_threads


def committed_results(root, machine_id):
    """Results files of ``machine_id`` that git tracks (the committed history), oldest name first."""
    root = Path(root).resolve()   # git runs in root: a relative root would be taken twice
    try:
        listed = subprocess.run(["git", "ls-files", "--", str(root / machine_id)], cwd=root,
                                capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    tracked = {(root / line).resolve() for line in listed.splitlines()} if listed else set()
    base = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root,
                               capture_output=True, text=True, timeout=30).stdout.strip() or root)
    tracked |= {(base / line).resolve() for line in listed.splitlines()}
    return [path for path in results_files(root, machine_id) if path.resolve() in tracked]


def runs_in_order(paths):
    """(path, frame) per run, ordered by commit date, then creation time."""
    loaded = [(path, load_results(path)) for path in paths]
    return sorted(loaded, key=lambda item: (str(item[1]["commit_date"].iloc[0] or ""),
                                            str(item[1]["created"].iloc[0] or "")))


def step_changes(runs, thresholds=Thresholds(), floors=True):
    """Rows of (case, from run, to run, verdict, ratio, busy_pct, code_changed) for significant
    changes between neighbours; ``busy_pct``: the larger share of the CPUs others took while the
    case ran in either run, where recorded; ``code_changed``: whether the case's kernel code differs
    between the two runs (a step of unchanged code is the machine's or the software's, not the
    commit's).

    With ``floors`` each step must also exceed the case's run-to-run floor, as in ``compare
    --history``: the largest change between two runs up to the earlier one, made in its
    environment with the same kernel code (:data:`convbench.compare.HISTORY_MIN_RUNS` of them at
    least). On a shared machine whole runs drift by 10 % and more, and without it most "steps" are
    that drift. Runs after the step are left out: the pair across it would count the step itself
    as noise.
    """
    import pandas as pd

    from .machine import same_environment
    from .results import read_document

    # each run's fingerprint read once (compare.same_environment_runs reads the files per call)
    machines = [read_document(path).get("machine") or {} for path, _ in runs] if floors else []
    steps = []
    for index, ((_, before), (path, after)) in enumerate(zip(runs, runs[1:])):
        history = None
        if floors:   # the runs up to the earlier one: a later run would measure this step itself
            alike = [frame for (_, frame), machine in zip(runs[:index + 1], machines)
                     if same_environment(machines[index], machine)]
            history = pd.concat(alike) if len(alike) > 1 else None
        verdicts = compare_frames(before, after, thresholds, history)
        for _, row in verdicts[verdicts["verdict"].isin(["slower", "faster"])].iterrows():
            steps.append({**{key: row[key] for key in KEY}, "name": row["name"],
                          "commit": str(after["commit"].iloc[0])[:10], "file": str(path),
                          "verdict": row["verdict"], "ratio": row["ratio"],
                          "busy_pct": row["busy_pct"], "code_changed": bool(row["source_changed"])})
    return pd.DataFrame(steps, columns=KEY + ["name", "commit", "file", "verdict", "ratio",
                                              "busy_pct", "code_changed"])


def environment_shifts(runs):
    """{index of a run: what changed from the run before it} for the runs whose machine
    fingerprint differs from their predecessor's in something that can change a timing
    (:func:`convbench.machine.environment_changes`): a step there may be the software's, not
    the code's."""
    from .machine import environment_changes
    from .results import read_document

    machines = [read_document(path).get("machine") or {} for path, _ in runs]
    shifts = {}
    for index in range(1, len(runs)):
        changes = environment_changes(machines[index - 1], machines[index])
        if changes:
            shifts[index] = changes
    return shifts


SHOWN_DEFINITIONS = 8   # per kernel and run in history.md


def code_changes_between(before, after, kernel_names, repo=None, cache=None):
    """What changed in the code of each of ``kernel_names`` ("direct/cpu") from the commit of
    run ``before`` to that of run ``after`` (``(path, frame)`` as :func:`runs_in_order` gives
    them): ``{name: [(definition, how)]}`` (:func:`convbench.ab.code_changes`; None for a
    kernel missing from one of them), or a string saying why it cannot be told: a run made from
    a tree with uncommitted changes, or a commit this checkout (``repo``) does not have."""
    from .ab import PROJECT_ROOT, ABError, code_changes, commit_tree
    from .registry import get_kernel
    from .results import read_document

    trees = {}
    for side, (path, frame) in (("base", before), ("new", after)):
        git = read_document(path).get("git") or {}
        if git.get("dirty"):
            return f"`{Path(path).name}` was run from a tree with uncommitted changes"
        if git.get("dirty") is None or git.get("commit") in (None, "unknown"):
            return f"`{Path(path).name}` records no commit (not run from a git checkout)"
        try:
            trees[side] = commit_tree(str(frame["commit"].iloc[0]), repo or PROJECT_ROOT, cache)
        except (ABError, OSError):
            return f"commit {str(frame['commit'].iloc[0])[:10]} is not in this checkout"
    found = {}
    for name in kernel_names:
        try:
            found[name] = code_changes(get_kernel(name), trees)   # kernels/ where it is here
        except (ValueError, OSError, SyntaxError):
            found[name] = None
    return found


def refine_code_changed(frame, before, after, repo=None, column="source_changed"):
    """``(frame, changes)``: a table of cases of two runs (:func:`convbench.compare.compare_frames`,
    or :func:`step_changes`' rows of one run with ``column="code_changed"``) whose ``column`` was
    read from hashes, checked against the two runs' commits (:func:`code_changes_between`;
    ``before`` and ``after`` as ``(path, frame)``): a kernel whose reached code the commits show
    unchanged is marked unchanged (runs from before reach hashes could only tell that its files
    changed). ``changes`` is what :func:`code_changes_between` found, None where no kernel's code
    was flagged."""
    flagged = frame[frame[column].astype(bool)]
    if flagged.empty:
        return frame, None
    changes = code_changes_between(before, after, sorted(
        {f"{a}/{b}" for a, b in zip(flagged["algo"], flagged["backend"])}), repo)
    if isinstance(changes, dict):
        frame = frame.assign(**{column: [
            bool(changed) and changes.get(f"{a}/{b}") != []
            for changed, a, b in zip(frame[column], frame["algo"], frame["backend"])]})
    return frame, changes


def code_change_text(changes):
    """:func:`refine_code_changed`'s ``changes`` as lines of text for a terminal or markdown."""
    return "\n".join(_code_change_lines(changes, since="the base run")).strip()


def _code_change_lines(changes, since="the run before"):
    """Markdown lines for :func:`code_changes_between`, kernels with the same changes together."""
    if isinstance(changes, str):
        return [f"What changed in the kernels' code cannot be told: {changes}.", ""]
    from .reach import describe

    grouped = {}
    for name, found in changes.items():
        text = ("missing from one of the two commits" if found is None
                else "no change in the code it reaches" if not found
                else describe(found, SHOWN_DEFINITIONS))
        grouped.setdefault(text, []).append(name)
    if all(found == [] for found in changes.values()):
        return [f"Kernel code since {since}: the recorded hashes differ, but the two commits show "
                f"no change in the code {', '.join(changes)} "
                f"{'reaches' if len(changes) == 1 else 'reach'}", ""]
    return [f"Kernel code changed since {since}:"] + [
        f"- {', '.join(names)}: {text}" for text, names in grouped.items()] + [""]


def _step_summary(steps, position, shifts):
    """Markdown: one table row per run with steps: how many cases went slower and faster, how
    many of those ran changed kernel code, and whether the software changed before it."""
    lines = ["| run | commit | slower | faster | of which kernel code changed | environment |",
             "|---|---|---|---|---|---|"]
    for file, group in steps.groupby("file", sort=False):
        index = position[file]
        changed = group[group["code_changed"]]
        lines.append(f"| `{Path(file).name}` | {group['commit'].iloc[0]} | "
                     f"{int((group['verdict'] == 'slower').sum())} | "
                     f"{int((group['verdict'] == 'faster').sum())} | "
                     f"{int((changed['verdict'] == 'slower').sum())} slower, "
                     f"{int((changed['verdict'] == 'faster').sum())} faster | "
                     f"{'changed' if index in shifts else 'same'} |")
    lines += ["", "A step must exceed the case's largest change between two earlier runs of the "
              "same kernel code in the same environment (three at least). A step of unchanged "
              "kernel code in an unchanged environment is then the machine drifting further than "
              "before; `convbench ab` times two commits side by side where it matters."]
    return lines


def layer_styles(names):
    """{layer: matplotlib line style}: one colour per layer in every panel of the history figure
    (tab20, where the default cycle's ten colours repeat on the twelve layers of the default
    set), and past twenty layers dashed, then dotted, lines as well."""
    from matplotlib import colormaps

    return {name: {"color": colormaps["tab20"](index % 20),
                   "linestyle": ("-", "--", ":")[index // 20 % 3]}
            for index, name in enumerate(sorted(names))}


def write_history(paths, out_dir, thresholds=Thresholds(), repo=None):
    """history.png (GFLOP/s per case across runs, one panel per algorithm) and history.md.

    Where a run's steps ran changed kernel code, history.md names the definitions that changed
    since the run before (:func:`code_changes_between`, from the two commits in ``repo``, by
    default this checkout)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    runs = runs_in_order(paths)
    shifts = environment_shifts(runs)
    position = {str(path): index for index, (path, _) in enumerate(runs)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = step_changes(runs, thresholds)
    notes = {}   # run index -> what changed in the code of the kernels its steps ran
    if not steps.empty:
        refined = []
        for file, group in steps.groupby("file", sort=False):
            index = position[file]
            group, changes = refine_code_changed(group, runs[index - 1], runs[index], repo,
                                                 column="code_changed")
            refined.append(group)
            if changes is not None:
                notes[index] = changes
        steps = pd.concat(refined)
        steps = steps.assign(_run=steps["file"].map(position),
                             _size=(steps["ratio"].astype(float).map(np.log).abs())).sort_values(
            ["_run", "code_changed", "verdict", "_size"], ascending=[True, False, False, False],
            kind="stable").drop(columns=["_run", "_size"])
    # one panel per kernel and thread count where the runs hold a backend at several counts
    mixed = mixed_thread_backends(pd.concat([frame for _, frame in runs]))
    runs = [(path, split_threads(frame, mixed)) for path, frame in runs]
    steps = split_threads(steps, mixed)
    labels = [f"{str(frame['commit'].iloc[0])[:7]} {str(frame['commit_date'].iloc[0] or '')[:10]}"
              for _, frame in runs]
    kernels = sorted({(a, b) for _, frame in runs for a, b in zip(frame["algo"], frame["backend"])})
    # a third of an inch per run, so the runs' labels stand upright side by side without touching
    fig, axes = plt.subplots(len(kernels), 1, figsize=(max(10.0, 5 + 0.33 * len(runs)),
                                                       3.4 * len(kernels)),
                             squeeze=False, layout="constrained")
    style = layer_styles({row_name or descriptor for _, frame in runs
                          for row_name, descriptor in zip(frame["name"], frame["descriptor"])})
    for ax, (algo, backend) in zip(axes[:, 0], kernels):
        cases, disturbed = {}, []
        for index, (_, frame) in enumerate(runs):
            part = frame[(frame["algo"] == algo) & (frame["backend"] == backend)
                         & (frame["status"] == "PASSED")]
            for _, row in part.iterrows():
                cases.setdefault(row["name"] or row["descriptor"], {})[index] = row["gflops"]
                if busy_row(row):
                    disturbed.append((index, row["gflops"]))
        for index, gflops in disturbed:
            ax.plot(index, gflops, marker="x", markersize=9, color="grey", zorder=6)
        for name, series in cases.items():
            xs = sorted(series)
            ax.plot(xs, [series[x] for x in xs], marker="o", markersize=3, label=name,
                    **style[name])
            for _, step in steps[(steps["algo"] == algo) & (steps["backend"] == backend)
                                 & (steps["name"] == name)].iterrows():
                index = position[step["file"]]
                if index in series:
                    slower = step["verdict"] == "slower"
                    ax.plot(index, series[index], marker="v" if slower else "^", markersize=11,
                            color="red" if slower else "green", zorder=5)
        for index in shifts:
            ax.axvline(index - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{algo}/{backend}", fontsize=10, loc="left")
        ax.set_ylabel("GFLOP/s")
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels(labels, fontsize=7, rotation=90)
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.grid(alpha=0.3)
        if cases:
            ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    from matplotlib.lines import Line2D
    key = [Line2D([], [], marker="v", markersize=10, color="red", linestyle="none",
                  label="significantly slower than the run before"),
           Line2D([], [], marker="^", markersize=10, color="green", linestyle="none",
                  label="significantly faster"),
           Line2D([], [], marker="x", markersize=8, color="grey", linestyle="none",
                  label="timed while others were busy on the CPUs"),
           Line2D([], [], color="grey", linestyle=":", label="the software or its settings changed")]
    fig.legend(handles=key, loc="outside upper center", ncol=2, fontsize=9, frameon=False)
    fig.savefig(out_dir / "history.png", dpi=100)
    plt.close(fig)
    lines = ["# convbench history", "", f"{len(runs)} runs, oldest first: "
             + ", ".join(f"`{Path(p).name}`" for p, _ in runs), "", "![history](history.png)", "",
             "## Step changes", ""]
    if steps.empty:
        lines.append("None: no case changed significantly between consecutive runs.")
    else:
        lines += _step_summary(steps, position, shifts)
    heading = None
    for _, step in steps.iterrows():
        index = position[step["file"]]
        if index != heading:
            heading = index
            lines += ["", f"### `{Path(step['file']).name}` (commit {step['commit']})", ""]
            if index in notes:
                lines += _code_change_lines(notes[index])
        lines.append(f"- {step['name'] or step['descriptor']} {step['algo']}/{step['backend']}: "
                     f"{step['verdict']} (x{step['ratio']:.2f}), "
                     + ("kernel code changed" if step["code_changed"] else "same kernel code")
                     + (" (the environment changed too, see below)" if index in shifts else "")
                     + (f" (timed on a busy machine: others took {step['busy_pct']:.0f} % of "
                        f"the CPUs)" if is_busy(step["busy_pct"]) else ""))
    lines += ["", "## Environment changes", ""]
    if not shifts:
        lines.append("None recorded between consecutive runs (files from before the BLAS kernels "
                     "and library variables were recorded compare on versions only).")
    for index, changes in shifts.items():
        path, frame = runs[index]
        lines.append(f"- before `{Path(path).name}` (commit {str(frame['commit'].iloc[0])[:10]}): "
                     + "; ".join(changes))
    (out_dir / "history.md").write_text("\n".join(lines) + "\n")
    return out_dir / "history.md", steps
