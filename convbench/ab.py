"""Interleaved A/B timing of two versions of the kernels: did this change make anything slower?

Comparing two separate runs cannot tell a slower kernel from a slower machine: on a shared machine a
whole run drifts by several percent (on the first 2-core development VM, identical code moved by a
median 8-23 % per case between runs, see ``compare``). ``convbench ab`` removes the drift instead of
estimating it. For every case it starts one worker process per version (:mod:`convbench._ab_worker`,
each importing ``kernels`` from its own source tree under the same harness) and asks them for timed
values in turn, base and new alternately, so both versions are timed in the same seconds of the
machine's life. What the machine does to one it does to the other, and the ratio of neighbouring
values is left.

Procedure per case
------------------
1. ``processes`` pairs of workers, one after the other. Each worker makes the seeded inputs and
   prepares the kernel; the first pair also validates both versions against the float64 reference
   (a version that fails is FAILED and nothing is timed). The loop count is chosen once, from the
   slower version, so one value lasts at least ``min_time``.
2. In each pair, one untimed value per side, then ``rounds`` rounds of one value per side; the side
   that goes first alternates from round to round and from pair to pair.
3. ``log(new / base)`` of each round's two values. Each process pair gives the median of its
   rounds; the estimate is the geometric mean ratio over pairs and its confidence interval a
   Student t interval over the pairs' medians (the process pair, not the round, is the independent
   unit: a process's memory layout and thread placement stay with it for all its rounds; on the
   AMD EPYC CI VM, the pairs of one case had a standard deviation of 2-9 % in log ratio).

Verdict per case, with ``min_change`` (default 5 %) and the interval at level ``1 - alpha``:
``slower`` when the interval lies above 1 and the estimate is at least ``1 + min_change``;
``faster`` likewise below; ``unclear`` when neither holds and the interval still reaches past
``min_change`` on either side (more processes would settle it); ``same`` otherwise. A version
that fails validation, crashes or hangs where the other passes gives ``broken by new`` (a
regression, like ``slower``) or ``fixed by new``; a kernel that one version does not have at all
gives ``only in new`` / ``only in base``. Whether a case is supported is decided once, by the
kernels of this checkout. ``slower`` and ``broken by new`` are regressions (``convbench ab`` exits
1), except ``slower`` on a kernel whose source is identical in both trees: that is the A/A control
misfiring, which says how noisy the run was, not that anything got slower.

Both versions' outputs on the validation input are hashed, and the table says whether they are
identical bit for bit: what a change meant only to be faster should show.

The two trees: the working tree of this checkout (uncommitted changes included) and any commit,
whose ``kernels/`` is extracted with ``git archive`` into a cache directory named by its hash (numba
compiles it there once). Cases whose kernel code is identical in both trees (the code each kernel
reaches, :mod:`convbench.reach`: a change to a helper it does not call, or to a comment, leaves it
identical) are timed too, as an A/A control inside the same run, unless ``changed_only`` is set.
"""

from __future__ import annotations

import io
import json
import math
import os
import selectors
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._ab_worker import PREFIX
from .machine import (BUSY_WARNING_PCT, CpuShare, busy_text, fingerprint, is_busy,
                      peer_environment, taken_by_others_pct, thread_environment)
from .reach import changed_definitions, module_root, reach_hash
from .runner import TimeLeft
from .timing import loops_for

PROJECT_ROOT = Path(__file__).resolve().parent.parent
AB_KIND = "convbench-ab"
AB_VERSION = 1


class ABError(RuntimeError):
    """A source tree could not be made (unknown revision, not a git checkout)."""


@dataclass(frozen=True)
class ABSettings:
    processes: int = 6       # worker pairs per case, one after another
    rounds: int = 6          # timed values per side in each pair
    min_time: float = 0.05   # seconds one value lasts at least
    min_change: float = 0.05
    alpha: float = 0.05      # 1 - confidence level of the ratio's interval
    seed: int = 0
    memory_budget: int | None = None
    case_timeout: float = 600.0
    changed_only: bool = False
    threads: int | None = None   # pin both versions' workers to this many CPUs and threads


QUICK = dict(processes=3, rounds=4, min_time=0.02)


@dataclass
class Tree:
    """One version of the kernels: a directory holding ``kernels/`` and how to name it."""
    path: Path
    label: str           # "HEAD (3f2a1c9)", "working tree (dirty)"
    commit: str | None   # full hash, None for the working tree
    dirty: bool = False

    def as_dict(self):
        return {"path": str(self.path), "label": self.label, "commit": self.commit,
                "dirty": self.dirty}


def _git(repo, *args, binary=False):
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError as error:
        raise ABError("git is not installed; convbench ab needs it to read other revisions") \
            from error
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise ABError(f"git {' '.join(args)}: {message}")
    return done.stdout if binary else done.stdout.decode().strip()


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convbench" / "trees"


def working_tree(repo=PROJECT_ROOT):
    """This checkout as it is on disk, uncommitted changes included."""
    repo = Path(repo)
    if not (repo / "kernels").is_dir():
        raise ABError(f"{repo} holds no kernels/ directory; name a revision with --new")
    try:
        head = _git(repo, "rev-parse", "--short", "HEAD")
        dirty = bool(_git(repo, "status", "--porcelain", "--", "kernels"))
    except ABError:
        head, dirty = None, False
    label = "working tree" + (f" on {head}" if head else "") + (" (kernels modified)" if dirty else "")
    return Tree(path=repo, label=label, commit=None, dirty=dirty)


def commit_tree(rev, repo=PROJECT_ROOT, root=None):
    """``kernels/`` of revision ``rev``, extracted once into the cache and reused by later calls."""
    try:
        sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ABError:
        raise ABError(f"unknown revision {rev!r} in {repo}") from None
    label = f"{rev} ({sha[:10]})" if rev != sha else sha[:10]
    root = Path(root) if root else cache_root()
    target = root / sha
    if (target / ".complete").is_file():
        return Tree(path=target, label=label, commit=sha)
    archive = _git(repo, "archive", "--format=tar", sha, "kernels", binary=True)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha[:10]}.", dir=root))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(staging, filter="data")
        else:  # Python < 3.11.4: git archive output holds no links or absolute paths
            tar.extractall(staging)  # noqa: S202
    (staging / ".complete").write_text(sha + "\n")
    try:
        os.replace(staging, target)
    except OSError:  # another process finished it first
        shutil.rmtree(staging, ignore_errors=True)
    return Tree(path=target, label=label, commit=sha)


def resolve_tree(rev, repo=PROJECT_ROOT, root=None):
    """``None`` or ``"."``: the working tree; a directory holding ``kernels/`` (another checkout, an
    unpacked release): that directory; anything else: a git revision."""
    if rev in (None, "."):
        return working_tree(repo)
    if Path(rev).is_dir():
        if not (Path(rev) / "kernels").is_dir():
            raise ABError(f"{rev} is a directory without a kernels/ directory in it")
        return Tree(path=Path(rev).resolve(), label=str(rev), commit=None)
    return commit_tree(rev, repo, root)


def _code_root(kernel, tree, repo):
    """Where ``tree`` holds the kernel's package: at the place it has in this checkout, ``repo``."""
    package_root = module_root(kernel.spec.target.partition(":")[0])
    return Path(tree.path) / package_root.resolve().relative_to(Path(repo).resolve())


def source_digest(kernel, tree, repo=PROJECT_ROOT):
    """Hash of the code the kernel reaches (:mod:`convbench.reach`: its object, and what that
    uses in the modules of ``kernels/``, comments and docstrings left out) as ``tree`` has it;
    None when its module is missing there. ``repo``: this checkout, which ``tree`` is a version
    of."""
    return reach_hash(kernel.spec.target, _code_root(kernel, tree, repo), length=16)


def code_changes(kernel, trees, repo=PROJECT_ROOT):
    """What differs in the code the kernel reaches from the base tree to the new one, as
    :func:`convbench.reach.changed_definitions` lists it; None when its module is missing from
    one of them."""
    return changed_definitions(kernel.spec.target, _code_root(kernel, trees["base"], repo),
                               _code_root(kernel, trees["new"], repo))


class Worker:
    """A running :mod:`convbench._ab_worker` and the line protocol to it."""

    def __init__(self, tree, problem, kernel, settings, validate=False, reference_cache=None):
        cmd = [sys.executable, "-m", "convbench._ab_worker", "--tree", str(tree.path),
               "--problem", problem.descriptor, "--algo", kernel.spec.algo,
               "--backend", kernel.spec.backend, "--seed", str(settings.seed)]
        if settings.memory_budget:
            cmd += ["--memory-budget", str(settings.memory_budget)]
        if settings.threads:
            cmd += ["--threads", str(settings.threads)]
        if validate:
            cmd.append("--validate")
            if reference_cache:
                cmd += ["--reference-cache", str(reference_cache)]
        self.errors = tempfile.TemporaryFile()
        env = thread_environment(settings.threads) if settings.threads else dict(os.environ)
        if kernel.spec.peer:   # the peer library as its users run it
            env = peer_environment(env)
        # Started in the harness's own directory, so `-m convbench` finds this checkout's
        # harness; the worker then puts the tree first on the path for `kernels`.
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.errors, cwd=str(PROJECT_ROOT), env=env,
                                        text=True, bufsize=1)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def read(self, deadline):
        """The next protocol message; raises TimeoutError or EOFError (the process died)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(timeout=left):
                raise TimeoutError
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                raise EOFError(self.process.returncode)
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])

    def time(self, loops, deadline):
        self.process.stdin.write(f"time {loops}\n")
        self.process.stdin.flush()
        return self.read(deadline)["seconds"]

    def stderr_tail(self, limit=600):
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")[-limit:].strip()

    def close(self):
        try:
            if self.process.poll() is None:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.selector.close()
        for stream in (self.process.stdin, self.process.stdout, self.errors):
            try:
                stream.close()
            except OSError:
                pass  # a pipe to a process that died mid-write


def _failure(side, error, worker):
    if isinstance(error, TimeoutError):
        return {"status": "TIMEOUT", "reason": f"{side}: no answer within the case timeout"}
    code = error.args[0] if error.args else None
    detail = worker.stderr_tail()
    reason = f"{side}: worker died (exit status {code})" + (f": {detail}" if detail else "")
    return {"status": "CRASHED", "reason": reason}


def ratio_statistics(log_ratios, alpha):
    """Estimate and interval of new/base from ``log_ratios[process][round]``.

    The process pair is the unit: the median of its rounds' log ratios is one observation (the
    median, because a value that an interruption of the machine doubled is common and must not
    move the estimate); the estimate is the geometric mean over the process pairs and the interval
    a Student t interval at level ``1 - alpha`` over them (none with fewer than two).
    """
    from scipy import stats

    per_process = np.array([np.median(rounds) for rounds in log_ratios if len(rounds)])
    if len(per_process) == 0:
        return None, None, None
    centre = float(np.mean(per_process))
    if len(per_process) < 2:
        return math.exp(centre), None, None
    half = float(stats.t.ppf(1 - alpha / 2, len(per_process) - 1)
                 * np.std(per_process, ddof=1) / math.sqrt(len(per_process)))
    return math.exp(centre), math.exp(centre - half), math.exp(centre + half)


def verdict(ratio, low, high, min_change):
    """slower / faster / same / unclear, as the module docstring defines them."""
    if ratio is None or low is None:
        return "unclear"
    if low > 1 and ratio >= 1 + min_change:
        return "slower"
    if high < 1 and ratio <= 1 - min_change:
        return "faster"
    if high > 1 + min_change or low < 1 - min_change:
        return "unclear"
    return "same"


@dataclass
class CaseResult:
    descriptor: str
    name: str
    algo: str
    backend: str
    same_source: bool | None
    identical_output: bool | None = None   # both versions' outputs equal bit for bit
    status: str = "PASSED"           # of the comparison: PASSED, or the worst side's status
    reason: str = ""
    base: dict = field(default_factory=dict)   # status, rel_l2, per_call_s of each side
    new: dict = field(default_factory=dict)
    loops: int | None = None
    samples: list = field(default_factory=list)  # [process][round] = [base_s, new_s]
    base_s: float | None = None      # median of the base values
    new_s: float | None = None
    ratio: float | None = None       # new / base, geometric mean over process pairs
    ratio_low: float | None = None
    ratio_high: float | None = None
    verdict: str = ""
    wall_s: float = 0.0
    busy_other_pct: float | None = None   # others' share of the CPUs while the case ran
    steal_pct: float | None = None        # the hypervisor's

    def as_dict(self):
        return dict(self.__dict__)


def _validation(found):
    return {key: found.get(key) for key in ("status", "reason", "rel_l2", "max_err", "per_call_s",
                                            "kernels_file", "output_sha256")}


def measure_case(problem, kernel, trees, settings, reference_cache=None, same_source=None):
    """Validate both versions, then time them alternately; a :class:`CaseResult`, with what else
    used the CPUs meanwhile (:class:`convbench.machine.CpuShare`)."""
    share = CpuShare().start()
    result = _measure_case(problem, kernel, trees, settings, reference_cache, same_source)
    for key, value in share.stop().items():
        setattr(result, key, value)
    return result


def _measure_case(problem, kernel, trees, settings, reference_cache, same_source):
    result = CaseResult(descriptor=problem.descriptor, name=problem.name, algo=kernel.spec.algo,
                        backend=kernel.spec.backend, same_source=same_source)
    started = time.monotonic()
    deadline = started + settings.case_timeout
    sides = ("base", "new")
    log_ratios = []
    for process in range(settings.processes):
        order = sides if process % 2 == 0 else sides[::-1]
        workers = {}
        try:
            for side in order:
                workers[side] = Worker(trees[side], problem, kernel, settings,
                                       validate=process == 0, reference_cache=reference_cache)
            first = {}
            for side in order:
                try:
                    first[side] = workers[side].read(deadline)
                except (TimeoutError, EOFError) as error:
                    found = _failure(side, error, workers[side])
                    setattr(result, side, found)
                    result.status, result.reason = found["status"], found["reason"]
                    return _finish(result, log_ratios, settings, started)
            absent = [side for side in sides if first[side]["status"] == "ABSENT"]
            if absent:  # a kernel added (or removed) by the change: nothing to compare
                result.base, result.new = _validation(first["base"]), _validation(first["new"])
                result.status, result.verdict = "SKIPPED", f"only in {sides[absent[0] == 'base']}"
                result.reason = "; ".join(f"{side}: {first[side]['reason']}" for side in absent)
                result.wall_s = time.monotonic() - started
                return result
            if process == 0:
                result.base, result.new = _validation(first["base"]), _validation(first["new"])
                digests = {result.base["output_sha256"], result.new["output_sha256"]}
                result.identical_output = None if None in digests else len(digests) == 1
                bad = [side for side in sides if first[side]["status"] != "PASSED"]
                if bad:
                    result.status = "FAILED"
                    result.reason = "; ".join(f"{side}: {first[side]['reason']}" for side in bad)
                    return _finish(result, log_ratios, settings, started)
                result.loops = loops_for(max(first["base"]["per_call_s"],
                                             first["new"]["per_call_s"]), settings.min_time)
            pairs = []
            for round_ in range(settings.rounds + 1):     # round 0 is the untimed warm-up
                order_now = order if round_ % 2 == 0 else order[::-1]
                values = {}
                for side in order_now:
                    try:
                        values[side] = workers[side].time(result.loops, deadline)
                    except (TimeoutError, EOFError) as error:
                        found = _failure(side, error, workers[side])
                        result.status, result.reason = found["status"], found["reason"]
                        return _finish(result, log_ratios, settings, started)
                if round_:
                    pairs.append([values["base"], values["new"]])
            result.samples.append(pairs)
            log_ratios.append([math.log(new / base) for base, new in pairs])
        finally:
            for worker in workers.values():
                worker.close()
    return _finish(result, log_ratios, settings, started)


def _finish(result, log_ratios, settings, started):
    result.wall_s = time.monotonic() - started
    if result.status != "PASSED":
        # a version that fails where the other passes is a regression (or a fix), never "same"
        base_ok = result.base.get("status") == "PASSED"
        new_ok = result.new.get("status") == "PASSED"
        result.verdict = ("broken by new" if base_ok and not new_ok else
                          "fixed by new" if new_ok and not base_ok else "failed")
        if result.reason.startswith("new:") and result.status in ("CRASHED", "TIMEOUT"):
            result.verdict = "broken by new"
        return result
    flat = [pair for process in result.samples for pair in process]
    if flat:
        result.base_s = float(np.median([base for base, _ in flat]))
        result.new_s = float(np.median([new for _, new in flat]))
    result.ratio, result.ratio_low, result.ratio_high = ratio_statistics(log_ratios,
                                                                         settings.alpha)
    result.verdict = verdict(result.ratio, result.ratio_low, result.ratio_high,
                             settings.min_change)
    return result


def regressions(results):
    """The cases that make the comparison fail: ``broken by new``, and ``slower`` where the kernel's
    code changed. A ``slower`` among the A/A controls is timing noise by construction (both
    sides ran the same code under the same harness); :func:`summarize` reports it as the run's
    noise instead of failing the run on it."""
    return [r for r in results if r.verdict == "broken by new"
            or (r.verdict == "slower" and r.same_source is not True)]


def run_ab(problems, kernels, trees, settings, out=None, report=None, repo=PROJECT_ROOT,
           options=None, previous=None):
    """Every (problem, kernel) supported by the new version, measured with :func:`measure_case`.

    ``out``: a JSON file rewritten after every case, so an interrupted comparison keeps what it
    finished. ``report(result, done, total, left_s)`` is called after each case, ``left_s`` the
    time the cases still to measure are expected to take (None before the first is measured).
    ``options``: what selected the cases (shapes, algorithms, backends, batch), stored for
    ``--resume``. ``previous``: the document of an interrupted comparison; its cases are kept and
    not measured again.
    """
    from .results import write_atomic

    same = {kernel.name: _same_source(kernel, trees, repo) for kernel in kernels}
    cases = [(problem, kernel) for problem in problems for kernel in kernels
             if not (settings.changed_only and same[kernel.name])]
    document = previous or {"kind": AB_KIND, "version": AB_VERSION,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "trees": {side: tree.as_dict() for side, tree in trees.items()},
                            "settings": settings.__dict__, "options": options or {},
                            "machine": fingerprint(), "cases": []}
    finished = {(case["descriptor"], case["algo"], case["backend"]) for case in document["cases"]}
    # why each case still to measure will be skipped, or None: known first, for the time left
    skips = {index: kernel.supports(problem, settings.memory_budget)
             for index, (problem, kernel) in enumerate(cases)
             if (problem.descriptor, kernel.spec.algo, kernel.spec.backend) not in finished}
    left = TimeLeft(sum(1 for reason in skips.values() if not reason))
    with tempfile.TemporaryDirectory(prefix="convbench-ab-ref-") as reference_cache:
        for index, (problem, kernel) in enumerate(cases):
            if index not in skips:   # measured before the interruption
                continue
            reason = skips[index]
            if reason:
                result = CaseResult(descriptor=problem.descriptor, name=problem.name,
                                    algo=kernel.spec.algo, backend=kernel.spec.backend,
                                    same_source=same[kernel.name], status="SKIPPED",
                                    reason=reason, verdict="skipped")
            else:
                result = measure_case(problem, kernel, trees, settings, reference_cache,
                                      same_source=same[kernel.name])
                left.ran(result.wall_s)
            document["cases"].append(result.as_dict())
            if out:
                write_atomic(out, document)
            if report:
                report(result, index + 1, len(cases), left.seconds())
    return [CaseResult(**case) for case in document["cases"]], document


def read_ab(path):
    """The document of an earlier ``ab`` run; ABError naming the file if it is not one."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ABError(f"{path}: cannot read an ab results file ({error})") from None
    if not isinstance(document, dict) or document.get("kind") != AB_KIND:
        raise ABError(f"{path}: not a convbench ab results file")
    if document.get("version") != AB_VERSION:
        raise ABError(f"{path}: ab results version {document.get('version')!r}; this convbench "
                      f"reads version {AB_VERSION}")
    if not document.get("options"):
        raise ABError(f"{path}: holds no case selection to resume from")
    return document


def resume_trees(document, repo=PROJECT_ROOT):
    """The two trees an interrupted comparison used: commits extracted again if need be,
    directories (and the working tree) as they are now."""
    trees = {}
    for side, stored in document["trees"].items():
        if stored.get("commit"):
            trees[side] = commit_tree(stored["commit"], repo)
        elif Path(stored["path"]).resolve() == Path(repo).resolve():
            trees[side] = working_tree(repo)
        else:
            trees[side] = resolve_tree(stored["path"], repo)
    return trees


def _same_source(kernel, trees, repo):
    try:
        digests = {source_digest(kernel, tree, repo) for tree in trees.values()}
    except (OSError, ValueError):
        return None
    return None if None in digests else len(digests) == 1


def render(results, markdown=False):
    """The comparison as a table (pandas), one line per case that ran; cases skipped before any
    run (the kernel does not support the problem, or it would not fit the memory budget) are
    listed after it, grouped by kernel and reason, with the reason in full."""
    import pandas as pd

    from .compare import markdown_table, text_table

    def ms(value):
        return f"{value * 1e3:.4g}" if value else ""

    def change(result):
        if result.ratio is None:
            return ""
        text = f"{100 * (result.ratio - 1):+.1f}%"
        if result.ratio_low is not None:
            text += f" [{100 * (result.ratio_low - 1):+.1f}, {100 * (result.ratio_high - 1):+.1f}]"
        return text

    ran = [r for r in results if r.verdict != "skipped"]
    frame = pd.DataFrame([{
        "layer": r.name or r.descriptor,
        "kernel": f"{r.algo}/{r.backend}",
        "source": {True: "same", False: "changed", None: "?"}[r.same_source],
        "output": {True: "identical", False: "differs", None: ""}[r.identical_output],
        "base_ms": ms(r.base_s), "new_ms": ms(r.new_s),
        "change [CI]": change(r),
        "verdict": r.verdict,
        "note": r.reason or busy_text(r.__dict__),
    } for r in ran])
    parts = []
    if not frame.empty:
        parts.append(markdown_table(frame) if markdown else text_table(frame))
    skipped = {}
    for r in results:
        if r.verdict == "skipped":
            # the part of the reason before "; this problem has ..." is the same for every layer
            reason = (r.reason or "").split("; ")[0]
            skipped.setdefault((f"{r.algo}/{r.backend}", reason), []).append(r.name or r.descriptor)
    if skipped:
        lines = [f"skipped, not run ({sum(map(len, skipped.values()))} cases):"]
        for (kernel, reason), layers in skipped.items():
            lines.append(f"{'- ' if markdown else '  '}{kernel} on {len(layers)} layer"
                         f"{'s' if len(layers) > 1 else ''} ({', '.join(layers)}): {reason}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) if parts else "(no cases)"


def summarize(results, min_change):
    """One line of verdict counts, plus how the unchanged kernels (the A/A control) fared."""
    if not results:
        return ("no cases: with --changed-only, no selected kernel's source differs between the "
                "two versions")
    counts = {}
    for result in results:
        counts[result.verdict] = counts.get(result.verdict, 0) + 1
    parts = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    controls = [r for r in results if r.same_source and r.ratio is not None]
    text = f"{len(results)} cases: {parts}"
    if controls:
        wrong = [r for r in controls if r.verdict in ("slower", "faster")]
        worst = max(abs(r.ratio - 1) for r in controls)
        text += (f"\nA/A control ({len(controls)} cases with identical code): "
                 f"{len(wrong)} called slower or faster, largest change {100 * worst:.1f}%"
                 f" (min change {100 * min_change:.0f}%)")
        if wrong:
            text += ("\n  identical code cannot have changed speed: those calls are this run's "
                     "noise, not regressions; changes of that size on changed kernels are within "
                     "it (add --processes, or --threads 1)")
    busy = [r for r in results if r.ratio is not None
            and is_busy(taken_by_others_pct(r.__dict__))]
    if busy:
        text += (f"\n{len(busy)} of the timed cases ran while other processes or the hypervisor "
                 f"took over {BUSY_WARNING_PCT:.0f} % of the CPUs (see their notes): their "
                 f"intervals are wider than an idle machine's")
    return text
