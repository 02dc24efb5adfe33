"""The sweep: every selected kernel on every problem, one row each, saved as it goes.

Each case that a kernel supports runs in its own process (``convbench._case``), so an exception, a
segfault in compiled code or a hang costs one row (FAILED, CRASHED or TIMEOUT with the reason) and the
sweep goes on. After every case the results file is rewritten atomically; ``resume`` continues a file
without redoing its finished cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .ceilings import MEASURED_EVERY_RUN, measure, measure_pinned, pinned_key
from .ceilings import ceilings as machine_ceilings
from .machine import (CpuShare, code_hash, default_threads, fingerprint, git_state, machine_id,
                      peer_environment, source_hash, thread_environment)
from .memory import default_budget, format_bytes
from .reach import reach_hash
from .reference import reference_bytes
from .results import (PYPERF_SUFFIX, SCHEMA_VERSION, read_document, unrecorded_threads,
                      write_atomic)
from .timing import MODES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS_DIR = PROJECT_ROOT / "results"
DEFAULT_CASE_TIMEOUT = 600.0  # seconds for one case: validation plus every pyperf worker


@dataclass
class SweepOptions:
    shapes: str = "default"
    algos: list = field(default_factory=list)
    backends: list = field(default_factory=list)
    mb: int | None = None
    mode: str = "default"
    seed: int = 0
    memory_budget: int | None = None
    workspace_limit: int | None = None   # bytes; kernels with a larger workspace are SKIPPED
    case_timeout: float = DEFAULT_CASE_TIMEOUT
    check_only: bool = False
    threads: list | None = None   # CPU cases run once per count, pinned to that many cores
    match: str | None = None      # the regular expression that chose the set's problems, if any

    def as_dict(self):
        return {"shapes": self.shapes, "algos": self.algos, "backends": self.backends, "mb": self.mb,
                "mode": self.mode, "seed": self.seed, "memory_budget": self.memory_budget,
                "workspace_limit": self.workspace_limit, "case_timeout": self.case_timeout,
                "check_only": self.check_only, "threads": self.threads, "match": self.match}

    def thread_counts(self, kernel):
        """The thread counts ``kernel`` runs at: each of ``threads`` on the CPU, else once with
        whatever the environment gives (None)."""
        return list(self.threads) if self.threads and kernel.spec.backend == "cpu" else [None]


def problem_fields(problem):
    return {"descriptor": problem.descriptor, "name": problem.name, "n": problem.n, "c": problem.c,
            "h": problem.h, "w": problem.w, "k": problem.k, "r": problem.r, "s": problem.s,
            "stride_h": problem.stride[0], "stride_w": problem.stride[1],
            "pad_h": problem.padding[0], "pad_w": problem.padding[1],
            "dilation_h": problem.dilation[0], "dilation_w": problem.dilation[1],
            "groups": problem.groups, "flops": problem.flops, "count": problem.count}


class TimeLeft:
    """The time the cases still to run should take, for progress lines: the mean wall time of
    those run so far times how many remain. Cases that will be skipped take none, so only the
    ``to_run`` cases that will run are counted."""

    def __init__(self, to_run):
        self.to_run, self.walls = to_run, []

    def ran(self, seconds):
        self.walls.append(seconds or 0.0)
        self.to_run = max(0, self.to_run - 1)

    def seconds(self):
        """None before the first case has run."""
        return sum(self.walls) / len(self.walls) * self.to_run if self.walls else None


def kernel_hashes(kernel):
    """``source_hash`` and ``code_hash`` of a kernel's source files, and ``reach_hash`` of the code
    it reaches in them (:mod:`convbench.reach`); None each where they cannot be read. Once per
    kernel and sweep: the code hashes parse every file, tens of ms a kernel."""
    try:
        files = kernel.source_files()
        return {"source_hash": source_hash(files), "code_hash": code_hash(files),
                "reach_hash": reach_hash(kernel.spec.target)}
    except (OSError, UnicodeDecodeError, SyntaxError, ImportError):
        return {"source_hash": None, "code_hash": None, "reach_hash": None}


def base_row(problem, kernel, threads=None, hashes=None):
    """A row before its case runs. ``threads``: the count the case is pinned to; a CPU case the run
    does not pin records the environment's default, a GPU case none. ``hashes``: the kernel's
    :func:`kernel_hashes`, worked out here if not given."""
    row = problem_fields(problem)
    if threads is None and kernel.spec.backend == "cpu":
        threads = default_threads()
    row.update(algo=kernel.spec.algo, backend=kernel.spec.backend, peer=kernel.spec.peer,
               threads=threads,
               tolerance=kernel.tolerance_for(problem), status="", reason="", rel_l2=None,
               max_err=None,
               median_s=None, mad_s=None, stdev_s=None, values=None, samples_s=None,
               process_medians_s=None, loops=None,
               gflops=None,
               sgemm_fraction=None, workspace_bytes=None, impl=None, prepare_s=None,
               first_call_s=None,
               case_wall_s=None, busy_other_pct=None, steal_pct=None, unavailable=False,
               **(kernel_hashes(kernel) if hashes is None else hashes))
    return row


def _check_case_memory(problem, kernel, budget):
    """The whole case -- kernel, its inputs and the float64 reference -- must fit the budget."""
    need = kernel.memory_needed(problem) + reference_bytes(problem)
    if need > budget:
        return (f"the case needs {format_bytes(need)} with the float64 reference "
                f"({format_bytes(reference_bytes(problem))}), over the memory budget of "
                f"{format_bytes(budget)}")
    return None


def case_key(row):
    return (row["descriptor"], row["algo"], row["backend"], row.get("threads"))


def _signal_name(returncode):
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def reference_cache_dir(workdir, problem):
    """Where the cases of ``problem`` share its float64 references; references of any other problem
    are deleted, so the cache never holds more than one problem's."""
    root = Path(workdir) / "reference"
    wanted = root / hashlib.sha256(problem.descriptor.encode()).hexdigest()[:16]
    if root.is_dir():
        for old in root.iterdir():
            if old != wanted:
                shutil.rmtree(old, ignore_errors=True)
    return wanted


def kill_group(pid):
    """SIGKILL the process group led by ``pid``; nothing to do when it has already gone (a Ctrl-C
    reaches the case and its workers too, and they may exit before the sweep gets here)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_case(problem, kernel, options, workdir, env=None, threads=None):
    """Run one supported case in a child process; the row's measured fields and its pyperf file.

    With ``threads`` the case and its pyperf workers get that count in every thread variable and
    are pinned to that many cores."""
    result_path = Path(workdir) / "case.json"
    pyperf_path = Path(workdir) / "case.pyperf.json"
    for stale in (result_path, pyperf_path):
        stale.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "convbench._case", "--problem", problem.descriptor,
           "--algo", kernel.spec.algo, "--backend", kernel.spec.backend, "--seed", str(options.seed),
           "--mode", options.mode, "--result", str(result_path), "--output", str(pyperf_path),
           "--quiet"]
    if options.memory_budget is not None:
        cmd += ["--memory-budget", str(options.memory_budget)]
    if options.check_only:
        cmd.append("--check-only")
    if threads:
        cmd += ["--threads", str(threads)]
        env = thread_environment(threads, env)
    cmd += ["--reference-cache", str(reference_cache_dir(workdir, problem))]
    start = time.perf_counter()
    share = CpuShare().start()   # what else ran meanwhile: other processes, the hypervisor
    # A new session makes the case the leader of its own process group, so a timeout can kill the
    # pyperf workers it started too.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=options.case_timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        output, _ = proc.communicate()
        timed_out = True
    except BaseException:  # Ctrl-C or a kill of the sweep: take the case and its workers down too
        kill_group(proc.pid)
        proc.wait()
        raise
    found = {"case_wall_s": time.perf_counter() - start, **share.stop()}
    if result_path.is_file():
        try:
            found.update(json.loads(result_path.read_text()))
        except json.JSONDecodeError:
            pass
    tail = " | ".join(line for line in (output or "").strip().splitlines()[-3:])
    if timed_out:
        found.update(status="TIMEOUT", reason=f"case exceeded the {options.case_timeout:g} s limit")
    elif proc.returncode < 0:
        found.update(status="CRASHED",
                     reason=f"process killed by {_signal_name(proc.returncode)}: {tail}".strip())
    elif proc.returncode != 0:
        # An exception in the kernel (or in a pyperf worker, which the manager reports this way).
        found.update(status="FAILED", reason=f"exit status {proc.returncode}: {tail}".strip())
    elif not found.get("status"):
        found.update(status="FAILED", reason=f"case wrote no result: {tail}")
    elif found["status"] == "PASSED" and not options.check_only and "median_s" not in found:
        found.update(status="FAILED", reason=f"timing did not finish: {tail}")
    return found, pyperf_path if pyperf_path.is_file() else None


def row_ceiling(ceilings, kernel, threads=None):
    """The ceiling a row's fraction is taken of: its pinned thread count's, else its backend's."""
    backend = kernel.spec.backend
    return ceilings.get(pinned_key(backend, threads)) if threads else ceilings.get(backend)


def complete_row(row, found, problem, ceiling):
    for key in ("status", "reason", "rel_l2", "max_err", "median_s", "mad_s", "stdev_s", "values",
                "samples_s", "process_medians_s", "loops", "prepare_s", "first_call_s",
                "case_wall_s", "busy_other_pct", "steal_pct", "stages_s", "threads_seen",
                "workspace_bytes", "impl"):
        if key in found:
            row[key] = found[key]
    if row["status"] == "PASSED" and row.get("median_s"):
        row["gflops"] = problem.flops / row["median_s"] / 1e9
        if ceiling:
            row["sgemm_fraction"] = row["gflops"] / ceiling["sgemm_gflops"]
    return row


class PyperfSuite:
    """pyperf's own JSON for the run, kept beside the results file and rewritten per case."""

    def __init__(self, path):
        self.path = Path(path)
        self.benchmarks = []
        if self.path.is_file():
            import pyperf
            try:
                self.benchmarks = list(pyperf.BenchmarkSuite.load(str(self.path)).get_benchmarks())
            except Exception:  # noqa: BLE001 - a damaged side file is rebuilt from what follows
                self.benchmarks = []

    def add(self, case_file):
        """Add a case's benchmarks, replacing any of the same name (a case timed again)."""
        import pyperf
        added = list(pyperf.BenchmarkSuite.load(str(case_file)).get_benchmarks())
        names = {benchmark.get_name() for benchmark in added}
        self.benchmarks = [benchmark for benchmark in self.benchmarks
                           if benchmark.get_name() not in names] + added
        self._write()

    def remove(self, name):
        """Drop the benchmark ``name`` (a case timed again that did not pass this time)."""
        kept = [benchmark for benchmark in self.benchmarks if benchmark.get_name() != name]
        if len(kept) != len(self.benchmarks):
            self.benchmarks = kept
            self._write()

    def _write(self):
        import pyperf
        if not self.benchmarks:     # pyperf writes no empty suite: no file rather than a stale one
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        pyperf.BenchmarkSuite(self.benchmarks).dump(str(tmp), replace=True)
        os.replace(tmp, self.path)


def new_results_path(out_dir, git, subdir=None):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    commit = (git.get("commit") or "unknown")[:10]
    dirty = "-dirty" if git.get("dirty") else ""
    return Path(out_dir) / machine_id() / (subdir or "") / f"{stamp}_{commit}{dirty}.json"


def sweep(problems, kernels, options, out_dir=DEFAULT_RESULTS_DIR, resume=None, report=None,
          remeasure_ceilings=False, env=None, on_start=None, subdir=None, retime=None):
    """Run every kernel on every problem; return the results file's path.

    The file is ``out_dir/<machine-id>/[subdir/]<time>_<commit>.json``; a ``subdir`` keeps runs that
    are not sweeps of a set (``find``) out of the machine's history and comparisons.

    ``on_start(path)`` is called once the results file exists; ``report(row, done, total,
    left_s)`` after each case (progress output), ``left_s`` the time the cases still to run are
    expected to take (the mean wall time of those run so far; None before the first). With
    ``resume``, rows already in that file are kept and their cases not run again, except those
    for which ``retime(row)`` is true: they run again and their new rows take the old ones'
    places.
    """
    if options.mode not in MODES:
        raise ValueError(f"unknown mode {options.mode!r}; valid: {', '.join(MODES)}")
    budget = options.memory_budget or default_budget()
    if resume:
        path = Path(resume)
        document = read_document(path)
        default = unrecorded_threads(document)
        for row in document["rows"]:   # a file written before rows recorded their threads
            if "threads" not in row:
                row["threads"] = default if row.get("backend") == "cpu" else None
        redo = {case_key(row): index for index, row in enumerate(document["rows"])
                if retime is not None and retime(row)}
        finished = {case_key(row) for row in document["rows"]} - set(redo)
    else:
        redo = {}
        git = git_state()
        path = new_results_path(out_dir, git, subdir)
        backends = sorted({kernel.spec.backend for kernel in kernels
                           if kernel.unavailable_reason is None})
        document = {"schema": SCHEMA_VERSION, "convbench_version": __version__,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": fingerprint(), "git": git, "options": options.as_dict(),
                    "ceilings": {} if options.check_only else machine_ceilings(
                        Path(out_dir) / machine_id(), backends, remeasure_ceilings),
                    "complete": False, "rows": []}
        if options.threads and "cpu" in backends and not options.check_only:
            for threads in options.threads:   # the fractions of pinned rows use their own
                document["ceilings"][pinned_key("cpu", threads)] = measure_pinned(threads)
        finished = set()
        write_atomic(path, document)
    if on_start:
        on_start(path)
    hashes = {kernel.name: kernel_hashes(kernel) for kernel in kernels}
    cases = [(problem, kernel, threads, base_row(problem, kernel, threads, hashes[kernel.name]))
             for problem in problems for kernel in kernels
             for threads in options.thread_counts(kernel)]
    done = len([1 for *_, row in cases if case_key(row) in finished])
    if resume and document.get("complete") and done == len(cases):
        return path   # a finished run: nothing to add, and its file stays as it was measured
    suite = PyperfSuite(path.with_name(path.stem + PYPERF_SUFFIX))
    # why each case still to run will be skipped, or None: known first, for the time left
    skips = {index: kernel.supports(problem, budget, options.workspace_limit)
             or _check_case_memory(problem, kernel, budget)
             for index, (problem, kernel, _, row) in enumerate(cases)
             if case_key(row) not in finished}
    left = TimeLeft(sum(1 for reason in skips.values() if not reason))
    with tempfile.TemporaryDirectory(prefix="convbench-case-") as workdir:
        for index, (problem, kernel, threads, row) in enumerate(cases):
            if index not in skips:   # in the file already
                continue
            reason = skips[index]
            if reason:   # unavailable: the kernel cannot run here at all (a library, no GPU)
                row.update(status="SKIPPED", reason=reason,
                           unavailable=reason == kernel.unavailable_reason)
            else:
                row["workspace_bytes"] = kernel.workspace_bytes(problem)
                found, case_pyperf = run_case(problem, kernel, options, workdir,
                                              env=peer_environment(env) if kernel.spec.peer else env,
                                              threads=threads)
                complete_row(row, found, problem, row_ceiling(document["ceilings"], kernel, threads))
                left.ran(row.get("case_wall_s"))
                if case_pyperf is not None and row["status"] == "PASSED":
                    suite.add(case_pyperf)
                elif case_key(row) in redo:   # timed again, and not timed this time
                    from ._case import benchmark_name
                    suite.remove(benchmark_name(problem, kernel.spec.algo, kernel.spec.backend,
                                                threads))
            if case_key(row) in redo:
                document["rows"][redo[case_key(row)]] = row
            else:
                document["rows"].append(row)
            write_atomic(path, document)
            done += 1
            if report:
                report(row, done, len(cases), left.seconds())
    document["complete"] = True
    if document["ceilings"]:   # measured again: did the machine's speed change during the run?
        document["ceilings_end"] = {backend: measure(backend) for backend in document["ceilings"]
                                    if backend in MEASURED_EVERY_RUN}
    write_atomic(path, document)
    return path
