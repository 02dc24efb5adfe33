"""How far a kernel is from what the machine allows: the roofline of a convolution.

Every convolution has to read its input and weights and write its output at least once, and a
kernel doing the direct count of arithmetic has to do ``problem.flops`` of it. With the machine's
measured SGEMM rate ``F`` (FLOP/s) and copy bandwidth ``B`` (bytes read plus written per second, as
:mod:`convbench.ceilings` counts them), no such kernel can take less than::

    floor = max(flops / F, bytes / B)

The layer is *compute-bound* when the first term is the larger, *memory-bound* otherwise; the
arithmetic intensity ``flops / bytes`` against the ridge ``F / B`` says which. A kernel's
``of_roof`` is ``floor / time``: 1.0 means it runs at the roof. The roofs are the rates this
machine measured, not its datasheet's, so a kernel that does less arithmetic than the direct count
(Winograd, FFT) or that beats the BLAS on the ceiling's square SGEMM can pass 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roof:
    """The floor of one problem on one machine."""

    flops: int
    bytes: int
    sgemm_gflops: float
    copy_gbps: float

    @property
    def intensity(self) -> float:
        """FLOPs per byte of input, weights and output moved once."""
        return self.flops / self.bytes

    @property
    def ridge(self) -> float:
        """The intensity at which the two roofs meet: below it a layer is memory-bound."""
        return self.sgemm_gflops / self.copy_gbps

    @property
    def compute_s(self) -> float:
        return self.flops / (self.sgemm_gflops * 1e9)

    @property
    def memory_s(self) -> float:
        return self.bytes / (self.copy_gbps * 1e9)

    @property
    def seconds(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def attainable_gflops(self) -> float:
        """The roofline's GFLOP/s at this problem's intensity."""
        return min(self.sgemm_gflops, self.copy_gbps * self.intensity)


def roof(problem, sgemm_gflops, copy_gbps) -> Roof:
    """The floor of ``problem`` (a :class:`~convbench.problem.ConvProblem`) at the given rates."""
    if not (sgemm_gflops and sgemm_gflops > 0 and copy_gbps and copy_gbps > 0):
        raise ValueError(f"a roofline needs positive ceilings, got SGEMM {sgemm_gflops!r} GFLOP/s "
                         f"and copy {copy_gbps!r} GB/s")
    return Roof(problem.flops, problem.bytes_float32(), float(sgemm_gflops), float(copy_gbps))


def ceiling_for(ceilings, backend, threads=None, end=None):
    """The ceilings (``sgemm_gflops``, ``copy_gbps``) that apply to rows of ``backend`` run at
    ``threads``: the pinned count's (``cpu@1t``) where the run measured one, else the backend's.

    With ``end`` (the run's ``ceilings_end``), each rate is the better of the two measurements: the
    roof is the most this machine showed during the run. Empty when nothing was measured.
    """
    from .ceilings import pinned_key

    base = backend.split("@")[0]
    try:
        keys = [pinned_key(base, int(threads)), base]
    except (TypeError, ValueError):   # None, NaN or pandas' NA: no thread count recorded
        keys = [base]
    found = {}
    for key in keys:
        if (ceilings or {}).get(key):
            found = dict(ceilings[key])
            later = (end or {}).get(key) or {}
            for rate in ("sgemm_gflops", "copy_gbps"):
                if later.get(rate) and (not found.get(rate) or later[rate] > found[rate]):
                    found[rate] = later[rate]
            break
    return found


def rows_ceiling(ceilings, backend, part, end=None):
    """:func:`ceiling_for` the rows ``part`` of ``backend``: at their thread count if they share
    one."""
    threads = part["threads"].dropna().unique() if "threads" in part else []
    return ceiling_for(ceilings, backend, threads[0] if len(threads) == 1 else None, end)


def roofline_table(frame, ceilings, end=None):
    """Per (layer, backend): intensity, which roof bounds it, the floor, and how close the fastest
    of our kernels and the fastest peer come to it (``of_roof``, floor over time).

    ``frame`` is one run's rows (with ``layer``); ``ceilings``/``end`` that run's ``ceilings`` and
    ``ceilings_end``. Backends without measured ceilings are left out.
    """
    import pandas as pd

    from .problem import ConvProblem

    passed = frame[(frame["status"] == "PASSED") & frame["median_s"].notna()]
    rows = []
    for backend, part in passed.groupby("backend", sort=False):
        found = rows_ceiling(ceilings, backend, part, end)
        if not (found.get("sgemm_gflops") and found.get("copy_gbps")):
            continue
        for descriptor, group in part.groupby("descriptor", sort=False):
            floor = roof(ConvProblem.parse(descriptor), found["sgemm_gflops"], found["copy_gbps"])
            peer = group["peer"].fillna(False).astype(bool)
            row = {"layer": group["layer"].iloc[0], "backend": backend,
                   "FLOP/B": floor.intensity, "bound": floor.bound,
                   "floor_ms": floor.seconds * 1e3}
            for label, chosen in (("best", group[~peer]), ("peer", group[peer])):
                if len(chosen):
                    fastest = chosen.loc[chosen["median_s"].astype(float).idxmin()]
                    row[label] = fastest["algo"]
                    row[f"{label}_of_roof"] = floor.seconds / float(fastest["median_s"])
            rows.append(row)
    columns = ["layer", "backend", "FLOP/B", "bound", "floor_ms", "best", "best_of_roof", "peer",
               "peer_of_roof"]
    table = pd.DataFrame(rows)
    return table.reindex(columns=[c for c in columns if c in table.columns or not rows])


def figure(frame, ceiling, title, path):
    """The roofline plot of one backend's rows: the two measured roofs and every timed kernel at
    its layer's intensity (effective GFLOP/s, direct count), one colour per algorithm."""
    import matplotlib.pyplot as plt

    from .problem import ConvProblem
    from .report import _algo_order, _save

    sgemm, copy = ceiling["sgemm_gflops"], ceiling["copy_gbps"]
    passed = frame[(frame["status"] == "PASSED") & frame["gflops"].notna()]
    intensity = {d: roof(ConvProblem.parse(d), sgemm, copy).intensity
                 for d in passed["descriptor"].unique()}
    fig, ax = plt.subplots(figsize=(8, 5.5))
    low = min([sgemm / copy] + list(intensity.values())) / 3
    high = max([sgemm / copy] + list(intensity.values())) * 3
    xs = np.geomspace(low, high, 200)
    ax.plot(xs, np.minimum(sgemm, copy * xs), color="black", linewidth=1.5)
    ax.text(high, sgemm, f"SGEMM {sgemm:.0f} GFLOP/s ", ha="right", va="bottom", fontsize=8)
    ax.text(low * 1.5, copy * low * 1.5 / 1.4, f"copy {copy:.1f} GB/s", ha="left", va="top",
            fontsize=8)
    for algo in _algo_order(passed["algo"].unique()):
        rows = passed[passed["algo"] == algo]
        ax.scatter([intensity[d] for d in rows["descriptor"]], rows["gflops"].astype(float),
                   s=22, alpha=0.8, label=algo)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (direct FLOPs per byte of input, weights and output)")
    ax.set_ylabel("effective GFLOP/s")
    ax.set_title(f"Roofline, {title}\n(the rates this machine measured; "
                 f"Winograd and FFT can pass them)", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(title="algorithm", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)
