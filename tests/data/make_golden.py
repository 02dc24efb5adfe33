"""Regenerate the golden results files used by the compare/report/history tests.

    python tests/data/make_golden.py

Starts from base.json (a real smoke run, machine and commit renamed) and gives every PASSED row 20
seeded timing values around its median with 2 % noise, so that significance can be tested. The
variants differ from compare_base.json exactly as their names say.
"""

import copy
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def with_samples(document, seed):
    rng = np.random.default_rng(seed)
    for row in document["rows"]:
        if row["status"] == "PASSED":
            samples = row["median_s"] * (1 + 0.02 * rng.standard_normal(20))
            set_samples(row, samples)
    return document


def set_samples(row, samples):
    row["samples_s"] = [float(v) for v in samples]
    row["values"] = len(samples)
    row["median_s"] = float(np.median(samples))
    row["mad_s"] = float(np.median(np.abs(samples - np.median(samples))))
    row["gflops"] = row["flops"] / row["median_s"] / 1e9


def find(document, name, algo):
    return next(r for r in document["rows"] if r["name"] == name and r["algo"] == algo)


def save(document, name, commit, created):
    document = copy.deepcopy(document)
    document["git"]["commit"] = commit * 40
    document["git"]["commit_date"] = created
    document["created"] = created
    (HERE / name).write_text(json.dumps(document, indent=1))


def main():
    base = with_samples(json.loads((HERE / "base.json").read_text()), seed=1)
    save(base, "compare_base.json", "a", "2026-11-20T10:00:00+00:00")
    # A/A: the same run again, fresh noise of the same size
    save(with_samples(copy.deepcopy(base), seed=2), "compare_aa.json", "b",
         "2026-11-21T10:00:00+00:00")
    # one case 25 % slower
    slower = with_samples(copy.deepcopy(base), seed=3)
    row = find(slower, "smoke:3x3_odd", "direct")
    set_samples(row, np.asarray(row["samples_s"]) * 1.25)
    save(slower, "compare_slower.json", "c", "2026-11-22T10:00:00+00:00")
    # one case 20 % faster
    faster = with_samples(copy.deepcopy(base), seed=4)
    row = find(faster, "smoke:5x5", "direct")
    set_samples(row, np.asarray(row["samples_s"]) * 0.8)
    save(faster, "compare_faster.json", "d", "2026-11-23T10:00:00+00:00")
    # one case gone, one case new, one case now failing, one kernel source changed
    changed = with_samples(copy.deepcopy(base), seed=5)
    changed["rows"] = [r for r in changed["rows"]
                       if not (r["name"] == "smoke:1x1_groups2" and r["algo"] == "direct")]
    extra = copy.deepcopy(find(changed, "smoke:5x5", "direct"))
    extra.update(descriptor='mb1ic2ih12oc3oh12kh5ph2n"smoke:5x5_new"', name="smoke:5x5_new")
    changed["rows"].append(extra)
    failing = find(changed, "smoke:3x3_stride2", "direct")
    failing.update(status="CRASHED", reason="process killed by SIGSEGV", median_s=None,
                   samples_s=None, gflops=None)
    find(changed, "smoke:5x5", "direct")["source_hash"] = "0123456789ab"
    save(changed, "compare_changed.json", "e", "2026-11-24T10:00:00+00:00")


if __name__ == "__main__":
    main()
