"""Reports from results files: Markdown and an HTML page with matplotlib figures.

What it shows, per machine:

* the best algorithm for every layer, its speed-up over direct and the error it pays;
* effective GFLOP/s of every algorithm on every layer, with the machine's measured SGEMM rate drawn in;
* relative L2 error per algorithm on a log scale, with each algorithm's tolerance;
* workspace memory per algorithm;
* time per stage (transforms against multiply) for the kernels made of stages;
* the roofline: each layer's floor at the measured SGEMM and copy rates, and how near the fastest
  kernels come to it, as a table and a log-log figure;

and, when several machines are given, the best-per-layer tables side by side.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

ALGO_ORDER = ["direct", "im2col", "fft", "fft_tiled", "winograd", "winograd4", "winograd_5x5",
              "winograd4_5x5", "torch", "scipy"]


def _label(frame):
    return frame["name"].where(frame["name"].fillna("") != "", frame["descriptor"])


def _algo_order(algos):
    known = [a for a in ALGO_ORDER if a in algos]
    return known + sorted(a for a in algos if a not in known)


def best_per_layer(frame):
    """For each (layer, backend): the fastest PASSED non-peer kernel, speed-up over direct, its error."""
    import pandas as pd

    passed = frame[(frame["status"] == "PASSED") & frame["median_s"].notna() & ~frame["peer"].fillna(False).astype(bool)]
    rows = []
    for (descriptor, backend), group in passed.groupby(["descriptor", "backend"], sort=False):
        best = group.loc[group["median_s"].astype(float).idxmin()]
        direct = group[group["algo"] == "direct"]
        speedup = (float(direct["median_s"].iloc[0]) / float(best["median_s"])) if len(direct) else np.nan
        rows.append({"layer": best["layer"], "backend": backend, "best": best["algo"],
                     "time_ms": float(best["median_s"]) * 1e3, "gflops": float(best["gflops"]),
                     "speedup_vs_direct": speedup, "rel_l2": float(best["rel_l2"]),
                     "runner_up": _runner_up(group, best)})
    return pd.DataFrame(rows)


def network_totals(frame):
    """Whole networks: each kernel's time over all of a network's convolutions, each layer counted
    as often as the network runs it (the ``count`` its shape file gives), and the time of the
    fastest of our kernels chosen layer by layer, as a framework picking per layer would run it.

    A network is the part of a layer's name before ``:`` (``resnet50:res2a_branch2b``); only
    networks whose every layer in ``frame`` has a count are added up, so a set that samples a few
    layers of several networks (``default``) gives none. A kernel gets a total only where it passed
    on every layer; otherwise ``total_ms`` is empty and ``layers_timed`` says how many it ran.

    Columns: ``network``, ``backend``, ``kernel``, ``total_ms``, ``gflops`` (the direct
    convolution's arithmetic over the total), ``vs_best`` (total over the per-layer best's),
    ``layers_timed`` (of the distinct layers), ``convolutions`` (the layers with their counts) and
    ``mix`` (for the per-layer best: which kernel took how many distinct layers).
    """
    import pandas as pd

    if "count" not in frame.columns or frame.empty:
        return pd.DataFrame()
    frame = frame.assign(network=frame["name"].fillna("").str.partition(":")[0])
    rows = []
    for (network, backend), group in frame[frame["network"] != ""].groupby(
            ["network", "backend"], sort=False):
        if group["count"].isna().any():
            continue
        layers = group.drop_duplicates("descriptor").set_index("descriptor")
        counts, flops = layers["count"].astype(float), layers["flops"].astype(float)
        work = float((counts * flops).sum())
        timed = group[(group["status"] == "PASSED") & group["median_s"].notna()]
        seconds = timed.assign(seconds=timed["median_s"].astype(float))
        ours = seconds[~seconds["peer"].fillna(False).astype(bool)]
        entries = []
        if len(ours):
            fastest = ours.loc[ours.groupby("descriptor")["seconds"].idxmin()]
            done = len(fastest)
            total = float((fastest.set_index("descriptor")["seconds"] * counts).sum())
            mix = fastest["algo"].value_counts()
            entries.append(("ours, best per layer", total if done == len(layers) else np.nan, done,
                            ", ".join(f"{algo} {n}" for algo, n in mix.items())))
        for (algo, peer), runs in seconds.groupby(["algo", "peer"], sort=False):
            runs = runs.drop_duplicates("descriptor").set_index("descriptor")
            done = len(runs)
            total = float((runs["seconds"] * counts.loc[runs.index]).sum())
            entries.append((algo + (" (peer)" if bool(peer) else ""),
                            total if done == len(layers) else np.nan, done, ""))
        for kernel in sorted(set(group["algo"]) - set(seconds["algo"])):
            entries.append((kernel, np.nan, 0, ""))
        best = entries[0][1] if entries and entries[0][0] == "ours, best per layer" else np.nan
        for kernel, total, done, mix in sorted(entries, key=lambda e: (e[0] != "ours, best per layer",
                                                                       np.isnan(e[1]), e[1])):
            rows.append({"network": network, "backend": backend, "kernel": kernel,
                         "total_ms": total * 1e3, "gflops": work / total / 1e9,
                         "vs_best": total / best, "layers_timed": f"{done}/{len(layers)}",
                         "convolutions": int(counts.sum()), "mix": mix})
    return pd.DataFrame(rows)


def totals_caveat(document):
    """What :func:`network_totals` of a run cover where its ``--match`` chose some of a set's
    layers: "" for a run of whole sets."""
    match = (document.get("options") or {}).get("match")
    return (f"; only over the layers --match {match!r} chose, not whole networks" if match
            else "")


def ranking(frame):
    """The find table (cuDNN's ``find`` order): per (problem, backend), the timed kernels fastest
    first, then those not timed (skipped, failed, or a ``--check-only`` run) with their reason.

    Columns: ``descriptor``, ``layer``, ``backend``, ``rank`` (0 for a row not timed),
    ``kernel`` (peers marked), ``status``, ``time_ms``, ``spread_pct``, ``gflops``,
    ``vs_fastest`` (time over the fastest's on the problem; 1.0 for the fastest),
    ``workspace_bytes``, ``rel_l2``, ``impl`` (the implementation the kernel chose, if it has
    several) and ``note``.
    """
    import pandas as pd

    from .results import kernel_labels

    frame = frame.assign(layer=_label(frame), kernel=kernel_labels(frame))
    rows = []
    for _, group in frame.groupby(["descriptor", "backend"], sort=False):
        timed = group[(group["status"] == "PASSED") & group["median_s"].notna()]
        timed = timed.assign(seconds=timed["median_s"].astype(float)).sort_values("seconds")
        fastest = float(timed["seconds"].iloc[0]) if len(timed) else np.nan
        rows += [_ranked(row, rank, fastest)
                 for rank, (_, row) in enumerate(timed.iterrows(), start=1)]
        rows += [_ranked(row, 0, fastest) for _, row in group.drop(index=timed.index).iterrows()]
    return pd.DataFrame(rows)


def _ranked(row, rank, fastest):
    """One row of :func:`ranking`; ``rank`` 0 for a case that was not timed."""
    seconds = float(row["median_s"]) if rank else np.nan
    return {"descriptor": row["descriptor"], "layer": row["layer"], "backend": row["backend"],
            "rank": rank, "kernel": row["kernel"] + (" (peer)" if bool(row["peer"]) else ""),
            "status": row["status"], "time_ms": seconds * 1e3,
            "spread_pct": 100 * float(row["mad_s"]) / seconds if rank else np.nan,
            "gflops": float(row["gflops"]) if rank else np.nan,
            "vs_fastest": seconds / fastest, "workspace_bytes": row["workspace_bytes"],
            "rel_l2": _float(row["rel_l2"]), "impl": _impl(row),
            "note": "" if row["status"] == "PASSED" else str(row["reason"] or "")}


def _impl(row):
    """The implementation a row's kernel chose (empty where it has one only, or was not run)."""
    impl = row.get("impl")
    return impl if isinstance(impl, str) else ""


def _float(value):
    return np.nan if value is None else float(value)


def _runner_up(group, best):
    others = group[group["algo"] != best["algo"]]
    if others.empty:
        return ""
    second = others.loc[others["median_s"].astype(float).idxmin()]
    return f"{second['algo']} ({float(second['median_s']) / float(best['median_s']):.2f}x slower)"


def stages_table(frame):
    """One row per PASSED case whose kernel reports stages: each stage's time and share, and how the
    stages' sum compares with the kernel's pyperf median (they are timed in different processes)."""
    import pandas as pd

    rows = []
    for _, row in frame.iterrows():
        stages = row.get("stages_s")
        if row["status"] != "PASSED" or not isinstance(stages, dict) or not stages:
            continue
        total = sum(stages.values())
        rows.append({"layer": row["layer"], "kernel": f"{row['algo']}/{row['backend']}",
                     "impl": _impl(row),
                     "stages": " · ".join(f"{name} {seconds * 1e3:.3g} ms ({seconds / total:.0%})"
                                          for name, seconds in stages.items()),
                     "sum_ms": total * 1e3, "median_ms": float(row["median_s"]) * 1e3})
    return pd.DataFrame(rows)


def thread_scaling_table(frame):
    """Layers x kernels run at several CPU thread counts: the time at each count, the speed-up
    from the fewest threads to the most, and the parallel efficiency (speed-up over the ratio of
    thread counts; 100 % is perfect scaling). Empty when the frame has one count per kernel."""
    import pandas as pd

    passed = frame[(frame["status"] == "PASSED") & frame["median_s"].notna()
                   & frame["threads"].notna()]
    rows = []
    for (layer, algo, backend), group in passed.groupby(["layer", "algo", "backend"], sort=False):
        times = group.groupby("threads")["median_s"].first().astype(float).sort_index()
        if len(times) < 2:
            continue
        few, many = int(times.index[0]), int(times.index[-1])
        speedup = times.iloc[0] / times.iloc[-1]
        row = {"layer": layer, "kernel": f"{algo}/{backend}"}
        row.update({f"ms@{int(t)}t": seconds * 1e3 for t, seconds in times.items()})
        row.update({f"speed-up {few}->{many}t": speedup,
                    "efficiency": f"{speedup / (many / few):.0%}"})
        rows.append(row)
    return pd.DataFrame(rows)


def relative_speed_table(frame):
    """Layers x kernels: speed-up over direct and over the fastest peer (torch, scipy) on the layer.

    ``x2.0`` means twice as fast; a peer's own cell compares it with direct and with the best peer.
    """
    passed = frame[(frame["status"] == "PASSED") & frame["median_s"].notna()]
    cells = {}
    for (layer, backend), group in passed.groupby(["layer", "backend"], sort=False):
        times = dict(zip(group["algo"], group["median_s"].astype(float)))
        peers = group[group["peer"].fillna(False).astype(bool)]
        best_peer = float(peers["median_s"].astype(float).min()) if len(peers) else None
        for algo, seconds in times.items():
            vs_direct = f"x{times['direct'] / seconds:.2f}" if "direct" in times else "-"
            vs_peer = f"x{best_peer / seconds:.2f}" if best_peer else "-"
            cells.setdefault(layer, {})[f"{algo}/{backend}"] = f"{vs_direct} / {vs_peer}"
    import pandas as pd
    table = pd.DataFrame.from_dict(cells, orient="index")
    order = [f"{a}/{b}" for b in sorted(frame["backend"].unique())
             for a in _algo_order(frame["algo"].unique()) if f"{a}/{b}" in table.columns]
    return table[order].fillna("")


def gflops_table(frame):
    """Layers x algorithms: GFLOP/s where PASSED, else the status."""
    cells = frame.assign(cell=[f"{g:.1f}" if s == "PASSED" and g == g and g is not None else s
                               for s, g in zip(frame["status"], frame["gflops"])])
    cells = cells.assign(kernel=cells["algo"] + "/" + cells["backend"])
    table = cells.pivot_table(index="layer", columns="kernel", values="cell", aggfunc="first",
                              sort=False)
    order = [f"{a}/{b}" for b in sorted(cells["backend"].unique()) for a in _algo_order(cells["algo"].unique())
             if f"{a}/{b}" in table.columns]
    return table[order]


def _markdown_table(frame, float_format="{:.3g}"):
    columns = list(frame.columns)
    lines = ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = []
        for col in columns:
            value = row[col]
            if isinstance(value, float):
                cells.append("" if value != value else float_format.format(value))
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _grouped_bars(ax, rows, layers, column, scale):
    """One group of bars per layer, one bar per algorithm; a missing row draws no bar."""
    algos = _algo_order(rows["algo"].unique())
    width = 0.8 / max(1, len(algos))
    for i, algo in enumerate(algos):
        values = []
        for layer in layers:
            hit = rows[(rows["layer"] == layer) & (rows["algo"] == algo)]
            values.append(float(hit[column].iloc[0]) * scale if len(hit) else 0.0)
        ax.bar(np.arange(len(layers)) + (i - (len(algos) - 1) / 2) * width, values, width,
               label=algo)
    ax.set_xticks(np.arange(len(layers)))
    ax.set_xticklabels(layers, rotation=35, ha="right", fontsize=8)
    ax.legend(title="algorithm", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)


# Per-layer bar figures put at most this many layers side by side; a larger set (DeepBench's 123
# inference layers drew one 12500-pixel-wide figure) gets a panel below for each further run.
LAYERS_PER_PANEL = 24


def _panels(layers, height):
    """A figure with one panel (axes) per run of :data:`LAYERS_PER_PANEL` layers, stacked, and the
    runs: ``(fig, [(ax, layers), ...])``."""
    import matplotlib.pyplot as plt

    runs = [layers[i:i + LAYERS_PER_PANEL] for i in range(0, len(layers), LAYERS_PER_PANEL)] or [[]]
    width = max(8, 0.9 * max(len(run) for run in runs) + 3)
    fig, axes = plt.subplots(len(runs), 1, figsize=(width, height * len(runs)), squeeze=False)
    return fig, list(zip(axes[:, 0], runs))


def _panel_width(ax, panels):
    """Where there are several panels, each spans a full panel's worth of layers, so a short last
    one draws its bars as wide as the others."""
    if len(panels) > 1:
        ax.set_xlim(-0.6, LAYERS_PER_PANEL - 0.4)


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_gflops(frame, machine, ceiling, path):
    fig, panels = _panels(list(dict.fromkeys(frame["layer"])), 5.5)
    passed = frame[frame["status"] == "PASSED"]
    top = passed["gflops"].astype(float).max() if len(passed) else 0.0
    for ax, layers in panels:
        _grouped_bars(ax, passed, layers, "gflops", 1.0)
        if ceiling:
            ax.axhline(ceiling, color="black", linestyle="--", linewidth=1)
            ax.text(-0.45, ceiling, f"this machine's measured SGEMM: {ceiling:.0f} GFLOP/s",
                    ha="left", va="bottom", fontsize=9)
        if top > 0:   # one scale for every panel, so bars compare across them
            ax.set_ylim(0, 1.05 * max(top, ceiling or 0.0))
        _panel_width(ax, panels)
        ax.set_ylabel("effective GFLOP/s (direct-convolution FLOPs / time)")
    panels[0][0].set_title(f"Speed per layer and algorithm, {machine}\n(missing bar: not "
                           f"supported; FFT and Winograd do fewer FLOPs than direct, so they can "
                           f"pass the SGEMM line)")
    _save(fig, path)


def _figure_errors(frame, machine, path):
    import matplotlib.pyplot as plt

    passed = frame[frame["rel_l2"].notna() & (frame["status"].isin(["PASSED", "FAILED"]))]
    algos = _algo_order(passed["algo"].unique())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rng = np.random.default_rng(0)
    for i, algo in enumerate(algos):
        errors = passed[passed["algo"] == algo]["rel_l2"].astype(float)
        errors = errors[errors > 0]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(errors)), errors, s=18, alpha=0.7)
        tolerances = passed[passed["algo"] == algo]["tolerance"].astype(float)
        ax.hlines(tolerances.min(), i - 0.3, i + 0.3, color="red", linewidth=2)
        if tolerances.max() > tolerances.min():   # grown on the deepest sums (see the registry)
            ax.hlines(tolerances.max(), i - 0.3, i + 0.3, color="red", linewidth=1,
                      linestyles="dashed")
    ax.set_yscale("log")
    ax.set_xticks(range(len(algos)))
    ax.set_xticklabels(algos)
    ax.set_ylabel("relative L2 error vs float64 reference")
    ax.set_xlabel("algorithm")
    ax.set_title(f"Accuracy per algorithm, {machine}\n(dots: layers; red bar: tolerance; "
                 f"dashed: as grown for the deepest sum)")
    ax.grid(axis="y", alpha=0.3, which="both")
    _save(fig, path)


def _figure_workspace(frame, machine, path):
    fig, panels = _panels(list(dict.fromkeys(frame["layer"])), 5)
    for ax, layers in panels:
        _grouped_bars(ax, frame[frame["workspace_bytes"].notna()], layers, "workspace_bytes",
                      2 ** -20)
        ax.set_yscale("log")
        ax.set_ylabel("workspace (MiB, log scale)")
        _panel_width(ax, panels)
    panels[0][0].set_title(f"Extra memory per algorithm, {machine}\n(no bar: none needed, or not "
                           f"supported)")
    _save(fig, path)


def _figure_networks(totals, machine, path):
    """One panel per network: each kernel's total over the network's convolutions (those with a
    total), fastest at the top, with its time over the per-layer best's."""
    import matplotlib.pyplot as plt

    networks = list(dict.fromkeys(totals["network"]))
    timed = totals[totals["total_ms"].notna()]
    height = max(len(timed[timed["network"] == n]) for n in networks)
    fig, axes = plt.subplots(1, len(networks), squeeze=False,
                             figsize=(max(7.5, 4.2 * len(networks) + 1), 0.45 * height + 2.4))
    for ax, network in zip(axes[0], networks):
        part = timed[timed["network"] == network].iloc[::-1]
        colors = ["tab:green" if kernel.startswith("ours") else
                  "tab:gray" if kernel.endswith("(peer)") else "tab:blue" for kernel in part["kernel"]]
        ax.barh(range(len(part)), part["total_ms"], color=colors)
        ax.set_yticks(range(len(part)))
        ax.set_yticklabels(part["kernel"])
        for y, (ms, ratio) in enumerate(zip(part["total_ms"], part["vs_best"])):
            ax.text(ms, y, f" {ms:.3g} ms (x{ratio:.2f})", va="center", fontsize=8)
        ax.set_xlim(0, 1.45 * float(part["total_ms"].max()))
        ax.set_xlabel("time over the network's convolutions (ms)")
        ax.set_title(f"{network}: {int(part['convolutions'].iloc[0])} convolutions", fontsize=10)
    fig.suptitle(f"Whole networks, {machine}\ngreen: our fastest kernel on each layer; gray: "
                 f"peers;\na kernel that did not pass on every layer has no bar", fontsize=10)
    _save(fig, path)


def machine_text(machine):
    """What the run ran on, in one paragraph: CPU and cores, GPU, library versions, BLAS line."""
    from .machine import environment_line

    parts = [f"{machine.get('cpu_model', '?')}, {machine.get('cpu_count', '?')} cores"]
    if machine.get("gpu"):
        parts.append(f"{machine['gpu']} (driver {machine.get('gpu_driver')})")
    versions = machine.get("versions") or {}
    parts.append(", ".join(f"{name} {version}" for name, version in versions.items() if version))
    parts.append(environment_line(machine))
    return "Machine: " + "; ".join(part for part in parts if part) + "."


def write_report(paths, out_dir):
    """Write report.md, report.html and the figures for the given results files into ``out_dir``."""
    import matplotlib
    matplotlib.use("Agg")
    from .results import load_results, read_document, split_threads
    from .machine import busy_note
    from .roofline import figure as roofline_figure, roofline_table, rows_ceiling

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = load_results(*paths)
    frame["layer"] = _label(frame)
    documents = {str(path): read_document(path) for path in paths}
    sections = [f"# convbench report\n\nFrom {len(paths)} results file(s): "
                + ", ".join(f"`{p}`" for p in paths) + "\n"]
    figures = []
    bests = {}
    for machine, group in frame.groupby("machine_id", sort=False):
        # one run per machine: the latest file given
        latest = group[group["file"] == group["file"].iloc[-1]]
        document = documents[str(latest["file"].iloc[0])]
        starts, ends = document.get("ceilings") or {}, document.get("ceilings_end")
        disturbed = busy_note(document["rows"])
        scaling = thread_scaling_table(latest)
        latest = split_threads(latest)   # tables and figures per backend and thread count
        best = best_per_layer(latest)
        bests[machine] = best
        sections.append(f"## {machine}\n\nRun of commit `{str(latest['commit'].iloc[0])[:10]}` "
                        f"({latest['created'].iloc[0]}).\n\n"
                        + machine_text(document["machine"]) + "\n"
                        + (f"\n**Incomplete:** the sweep was interrupted after {len(latest)} "
                           f"cases; `python -m convbench run --resume {latest['file'].iloc[0]}` "
                           f"finishes it.\n" if document.get("complete") is False else "")
                        + (f"\n**Disturbed:** {disturbed}.\n" if disturbed else ""))
        sections.append("### Best algorithm per layer\n\n" + _markdown_table(best) + "\n")
        totals = network_totals(latest)
        if len(totals):
            sections.append("### Whole networks\n\nEach kernel's time over all of a network's "
                            "convolutions, every layer counted as often as the network runs it; "
                            "`ours, best per layer` takes our fastest kernel on each layer. A "
                            "kernel that did not pass on every layer has no total"
                            + totals_caveat(document) + ".\n\n" + _markdown_table(totals) + "\n")
        sections.append("### Effective GFLOP/s\n\n"
                        + _markdown_table(gflops_table(latest).reset_index(), "{}") + "\n")
        if latest["peer"].fillna(False).astype(bool).any():
            sections.append("### Speed relative to direct / to the best peer\n\nEach cell: speed-up "
                            "over our direct kernel, then over the fastest peer (PyTorch, "
                            "scipy.signal) on the same layer; x1.00 is equal, below 1 slower.\n\n"
                            + _markdown_table(relative_speed_table(latest).reset_index()
                                              .rename(columns={"index": "layer"}), "{}") + "\n")
        if len(scaling):
            sections.append("### Thread scaling\n\nKernels run at several CPU thread counts "
                            "(each case pinned to that many cores): time per call at each count, "
                            "the speed-up from the fewest to the most, and the parallel efficiency "
                            "(speed-up over the ratio of thread counts).\n\n"
                            + _markdown_table(scaling) + "\n")
        roofs = roofline_table(latest, starts, ends)
        if len(roofs):
            sections.append(ROOFLINE_TEXT + _markdown_table(roofs) + "\n")
        stages = stages_table(latest)
        if len(stages):
            sections.append("### Time per stage\n\nKernels made of stages (lowering or transforms, "
                            "then the multiply), each stage timed alone after the kernel's validated "
                            "call; `sum_ms` beside the kernel's own median.\n\n"
                            + _markdown_table(stages) + "\n")
        slug = machine.replace("/", "_")
        for backend in sorted(latest["backend"].unique()):
            part = latest[latest["backend"] == backend]
            ceiling = rows_ceiling(starts, backend, part, ends)
            stem = f"{slug}-{backend.replace('@', '-')}"
            names = {f"{stem}-gflops.png": lambda p, part=part, c=ceiling:
                     _figure_gflops(part, f"{machine} ({backend})", c.get("sgemm_gflops"), p),
                     f"{stem}-errors.png": lambda p, part=part:
                     _figure_errors(part, f"{machine} ({backend})", p),
                     f"{stem}-workspace.png": lambda p, part=part:
                     _figure_workspace(part, f"{machine} ({backend})", p)}
            if ceiling.get("sgemm_gflops") and ceiling.get("copy_gbps"):
                names[f"{stem}-roofline.png"] = lambda p, part=part, c=ceiling: roofline_figure(
                    part, c, f"{machine} ({backend})", p)
            networks = totals[totals["backend"] == backend] if len(totals) else totals
            if len(networks) and networks["total_ms"].notna().any():
                names[f"{stem}-networks.png"] = lambda p, part=networks: _figure_networks(
                    part, f"{machine} ({backend})", p)
            for name, draw in names.items():
                draw(out_dir / name)
                figures.append(name)
                sections.append(f"![{name}]({name})\n")
    if len(bests) > 1:
        side = None
        for machine, best in bests.items():
            part = best[["layer", "backend", "best", "gflops"]].rename(
                columns={"best": f"best on {machine}", "gflops": f"GFLOP/s on {machine}"})
            side = part if side is None else side.merge(part, on=["layer", "backend"], how="outer")
        sections.insert(1, "## Machines side by side\n\n" + _markdown_table(side) + "\n")
    markdown = "\n".join(sections)
    (out_dir / "report.md").write_text(markdown)
    (out_dir / "report.html").write_text(_html(markdown, out_dir))
    return out_dir / "report.md"


ROOFLINE_TEXT = (
    "### Against the roofline\n\nNo kernel doing the direct count of arithmetic can beat "
    "`floor = max(FLOP / SGEMM rate, bytes / copy rate)`, with the bytes those of input, weights "
    "and output moved once and both rates the best this machine measured during the run. "
    "`FLOP/B` is the layer's arithmetic intensity, `bound` the roof that sets its floor, "
    "`best_of_roof` and `peer_of_roof` the floor over the time of our fastest kernel and of the "
    "fastest peer: 1.0 is at the roof; Winograd and FFT, doing less arithmetic, can pass it.\n\n")


def _html(markdown, out_dir):
    """A self-contained page: tables as <pre>-free HTML, figures embedded as base64 PNG."""
    body = []
    table = []

    def flush():
        if table:
            rows = [line.strip("|").split("|") for line in table if not set(line) <= set("|-")]
            html_rows = ["<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c.strip())}"
                                          f"</{'th' if i == 0 else 'td'}>" for c in row) + "</tr>"
                         for i, row in enumerate(rows)]
            body.append("<table>" + "".join(html_rows) + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("!["):
            name = line[line.index("(") + 1:line.rindex(")")]
            data = base64.b64encode((out_dir / name).read_bytes()).decode()
            body.append(f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(name)}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}th{background:#eee}"
             "img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>convbench report</title>" \
           f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
