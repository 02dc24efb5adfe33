"""Which commit made a kernel slower? ``convbench bisect``, as ``asv find`` or ``git bisect``, with
``convbench ab``'s interleaved timing as the test at each step.

Procedure
---------
1. The commits from ``good`` (exclusive) to ``bad`` (inclusive) on the ancestry path between them
   that touch ``kernels/`` are read from git, and only those that change the *code* of one of the
   chosen kernels are kept (comments and docstrings aside, as ``ab`` decides "same source":
   :func:`convbench.ab.source_digest`). Each kept commit starts a new version of the kernels; the
   others cannot have changed their speed, so they are never timed.
2. ``good`` against the last version (the code ``bad`` runs) on every chosen case. The cases that
   ``ab`` calls regressions there (``slower`` or ``broken by new``) are the ones searched for;
   with none, there is nothing to find.
3. Binary search over the versions: each step times ``good`` against the middle version on those
   cases only (a case whose kernel has good's code there is not slower and is not timed). A step where any of them is a regression moves the upper end down to it, any other
   verdict (``same``, ``faster``, ``unclear``) moves the lower end up. The first version whose
   step was a regression, with every earlier one not, is the answer: about log2(versions) steps.

Every step's verdicts and ratios are printed and kept in a JSON file, rewritten after each step.
Timing noise can mislead one step (an ``unclear`` counts as "not slower"); the saved steps show
the evidence for the answer, and ``convbench ab --base <last good> --new <culprit>`` checks it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

from .ab import (PROJECT_ROOT, ABError, CaseResult, _git, _same_source, commit_tree,
                 measure_case, regressions, source_digest)
from .machine import fingerprint

BISECT_KIND = "convbench-bisect"
BISECT_VERSION = 1


@dataclass
class Version:
    """A commit that changed the code of at least one chosen kernel."""
    commit: str
    subject: str
    changed: list = field(default_factory=list)   # names of the kernels whose code it changed

    @property
    def label(self):
        return f"{self.commit[:10]} {self.subject}"


def _commit(rev, repo):
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except ABError:
        raise ABError(f"unknown revision {rev!r} in {repo}") from None


def kernel_versions(good, bad, kernels, repo=PROJECT_ROOT, root=None):
    """``(good_sha, bad_sha, versions)``: the commits after ``good`` up to ``bad`` that change the
    code of one of ``kernels``, oldest first (:class:`Version`). ABError when ``good`` is not an
    ancestor of ``bad``."""
    good_sha, bad_sha = _commit(good, repo), _commit(bad, repo)
    if good_sha == bad_sha:
        raise ABError(f"--good and --bad are the same commit ({good_sha[:10]})")
    try:
        _git(repo, "merge-base", "--is-ancestor", good_sha, bad_sha)
    except ABError:
        raise ABError(f"--good {good} ({good_sha[:10]}) is not an ancestor of --bad {bad} "
                      f"({bad_sha[:10]})") from None
    listed = _git(repo, "rev-list", "--reverse", "--ancestry-path", "--format=%H %s",
                  f"{good_sha}..{bad_sha}", "--", "kernels")
    commits = [line.split(" ", 1) for line in listed.splitlines()
               if not line.startswith("commit ")]

    def digests(sha):   # this checkout's source files of each kernel, as that commit has them
        tree = commit_tree(sha, repo, root)
        return {kernel.name: source_digest(kernel, tree) for kernel in kernels}

    versions, current = [], digests(good_sha)
    for sha, *subject in commits:
        found = digests(sha)
        changed = [name for name in found if found[name] != current[name]]
        if changed:
            versions.append(Version(sha, subject[0] if subject else "", changed))
        current = found
    return good_sha, bad_sha, versions


def _step_record(version, results):
    return {"commit": version.commit, "subject": version.subject,
            "regression": bool(regressions(results)),
            "cases": [result.as_dict() for result in results]}


def bisect(problems, kernels, good, bad, settings, repo=PROJECT_ROOT, root=None, out=None,
           report=None, options=None):
    """Run the search (see the module's notes); returns the document that is also written to
    ``out`` after each step. ``report(kind, version, results, step)`` is called after each step
    (``kind``: ``"confirm"`` for step 2, ``"step"`` for the search's)."""
    from .results import write_atomic

    good_sha, bad_sha, versions = kernel_versions(good, bad, kernels, repo, root)
    base = commit_tree(good_sha, repo, root)
    document = {"kind": BISECT_KIND, "version": BISECT_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "good": good_sha, "bad": bad_sha, "settings": settings.__dict__,
                "options": options or {}, "machine": fingerprint(),
                "versions": [vars(v) for v in versions], "steps": [], "culprit": None,
                "last_good": good_sha, "outcome": ""}

    def save():
        if out:
            write_atomic(out, document)

    if not versions:
        document["outcome"] = "no commit between them changes the code of these kernels"
        save()
        return document
    with tempfile.TemporaryDirectory(prefix="convbench-bisect-ref-") as cache:
        def step(version, cases):
            trees = {"base": base, "new": commit_tree(version.commit, repo, root)}
            results = []
            for problem, kernel in cases:
                same = _same_source(kernel, trees, PROJECT_ROOT)
                if same:    # the code good runs: not slower, whatever the clock would say
                    results.append(CaseResult(
                        descriptor=problem.descriptor, name=problem.name, algo=kernel.spec.algo,
                        backend=kernel.spec.backend, same_source=True, status="SKIPPED",
                        reason="the same code as good's, not timed", verdict="same code"))
                else:
                    results.append(measure_case(problem, kernel, trees, settings, cache,
                                                same_source=False))
            return results

        cases = [(problem, kernel) for problem in problems for kernel in kernels
                 if not kernel.supports(problem, settings.memory_budget)]
        results = step(versions[-1], cases)
        document["confirm"] = _step_record(versions[-1], results)
        save()
        if report:
            report("confirm", versions[-1], results, None)
        slow = {(r.descriptor, r.algo, r.backend) for r in regressions(results)}
        if not slow:
            document["outcome"] = "no regression between good and bad on these cases"
            save()
            return document
        cases = [(problem, kernel) for problem, kernel in cases
                 if (problem.descriptor, kernel.spec.algo, kernel.spec.backend) in slow]
        low, high = -1, len(versions) - 1      # versions[high] is slower; low (or good) is not
        while high - low > 1:
            middle = (low + high) // 2
            results = step(versions[middle], cases)
            record = _step_record(versions[middle], results)
            document["steps"].append(record)
            save()
            if report:
                report("step", versions[middle], results, len(document["steps"]))
            if record["regression"]:
                high = middle
            else:
                low = middle
    document["culprit"] = vars(versions[high])
    document["last_good"] = versions[low].commit if low >= 0 else good_sha
    document["outcome"] = "found"
    save()
    return document
