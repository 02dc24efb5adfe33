"""`run --threads`: CPU cases pinned to a thread count, recorded per row and kept apart downstream."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from convbench import ConvProblem
from convbench.__main__ import parse_threads
from convbench.compare import compare_frames, render
from convbench.machine import THREAD_VARIABLES, cpu_count
from convbench.registry import get_kernel
from convbench.report import thread_scaling_table
from convbench.results import load_results, read_document, split_threads
from convbench.runner import SweepOptions, sweep
from convbench.shapes import load_shapes

from .test_sweep import only_results

DATA_DIR = Path(__file__).parent / "data"

TWO_CORES = pytest.mark.skipif(cpu_count() < 2, reason="needs 2 cores to pin to 1 and 2")


def smoke_problem(name="smoke:3x3_odd"):
    return [p for p in load_shapes("smoke") if p.name == name]


def test_thread_counts_are_checked():
    assert parse_threads(None) is None
    assert parse_threads("1,1") == [1]
    for bad, words in (("0", "from 1 to"), ("two", "whole numbers"),
                       (str(cpu_count() + 1), f"may use {cpu_count()} core")):
        with pytest.raises(ValueError, match=words):
            parse_threads(bad)


def test_the_cli_names_a_bad_thread_count():
    done = subprocess.run([sys.executable, "-m", "convbench", "run", "--shapes", "smoke",
                           "--threads", "1,x"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--threads" in done.stderr and "'x'" in done.stderr


def test_only_cpu_kernels_run_once_per_count():
    options = SweepOptions(threads=[1, 2])
    assert options.thread_counts(get_kernel("direct", "cpu")) == [1, 2]
    assert options.thread_counts(get_kernel("direct", "gpu")) == [None]
    assert SweepOptions().thread_counts(get_kernel("direct", "cpu")) == [None]


@TWO_CORES
def test_each_count_is_a_case_pinned_to_that_many_cores(tmp_path):
    path = sweep(smoke_problem(), [get_kernel("im2col", "cpu")],
                 SweepOptions(threads=[1, 2], check_only=True), out_dir=tmp_path)
    rows = read_document(path)["rows"]
    assert [(row["threads"], row["status"]) for row in rows] == [(1, "PASSED"), (2, "PASSED")]
    # what the case's process was given, as numba reports it
    for row, count in zip(rows, (1, 2)):
        seen = row["threads_seen"]
        assert seen["cpus"] == count and seen["numba"] == count
        assert {name: seen["variables"].get(name) for name in THREAD_VARIABLES} == \
            {name: str(count) for name in THREAD_VARIABLES}


@TWO_CORES
def test_workspace_is_what_the_case_needs_at_its_own_thread_count(tmp_path):
    """Winograd keeps one scratch per thread: a case pinned to one thread needs less than one at
    two, although the sweep's own process (which ran neither) sees two. (The case processes do
    not see the tests' zero ``SERIAL_FLOPS``, so the problem is over the real bound.)"""
    from kernels.cpu.winograd import SERIAL_SCALE
    kernel = get_kernel("winograd", "cpu")
    problem = ConvProblem.parse("mb1ic8ih320oc8oh320kh3ph1")
    assert problem.flops >= 10e6 * SERIAL_SCALE
    path = sweep([problem], [kernel], SweepOptions(threads=[1, 2], check_only=True),
                 out_dir=tmp_path)
    one, two = (row["workspace_bytes"] for row in read_document(path)["rows"])
    assert one < two == kernel.workspace_bytes(problem)


@TWO_CORES
def test_pinning_moves_the_threads_the_blas_started_at_import():
    script = ("import numpy, os, pathlib; from convbench.machine import pin_threads; "
              "pin_threads(1); print([len(os.sched_getaffinity(int(t.name))) "
              "for t in pathlib.Path('/proc/self/task').iterdir()])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, OPENBLAS_NUM_THREADS="2"))
    assert done.returncode == 0, done.stderr
    per_thread = json.loads(done.stdout)
    assert len(per_thread) >= 2          # OpenBLAS's worker exists before the pinning
    assert set(per_thread) == {1}


def test_ceilings_at_a_count_set_the_thread_variables_themselves():
    """Run by hand without the variables, the BLAS would start a pool for every core and then be
    squeezed onto the pinned ones: the module starts itself again with the variables set."""
    env = {name: value for name, value in os.environ.items()
           if name not in THREAD_VARIABLES}
    done = subprocess.run([sys.executable, "-m", "convbench.ceilings", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["cpus"] == 1 and found["variables"] == {name: "1" for name in THREAD_VARIABLES}


@TWO_CORES
def test_a_timed_pinned_row_takes_its_fraction_of_its_own_counts_ceiling(tmp_path):
    path = sweep(smoke_problem(), [get_kernel("direct", "cpu")],
                 SweepOptions(threads=[1], mode="quick"), out_dir=tmp_path)
    document = read_document(path)
    one = document["ceilings"]["cpu@1t"]
    assert one["threads"] == 1 and one["sgemm_gflops"] > 0
    assert one["cpus"] == 1 and one["variables"] == {name: "1" for name in THREAD_VARIABLES}
    row = document["rows"][0]
    assert row["sgemm_fraction"] == pytest.approx(row["gflops"] / one["sgemm_gflops"])
    import pyperf
    suite = pyperf.BenchmarkSuite.load(str(path.with_name(path.stem + ".pyperf.json")))
    assert suite.get_benchmark_names()[0].endswith("direct/cpu threads=1")


def test_resuming_a_file_whose_rows_have_no_thread_count(tmp_path):
    """A file from before rows carried `threads`: its cases count as run at the machine's default."""
    problems = load_shapes("smoke")[:2]
    path = sweep(problems, [get_kernel("direct", "cpu")], SweepOptions(check_only=True),
                 out_dir=tmp_path)
    document = read_document(path)
    for row in document["rows"]:
        del row["threads"]
    document["rows"] = document["rows"][:1]
    document["complete"] = False
    path.write_text(json.dumps(document))
    sweep(problems, [get_kernel("direct", "cpu")], SweepOptions(check_only=True), resume=path)
    rows = read_document(path)["rows"]
    assert [row["descriptor"] for row in rows] == [p.descriptor for p in problems]
    assert len(only_results(tmp_path)) == 1


def test_old_files_get_the_machines_thread_count():
    frame = load_results(DATA_DIR / "compare_base.json")
    document = read_document(DATA_DIR / "compare_base.json")
    assert "threads" not in document["rows"][0]
    assert (frame["threads"] == document["machine"]["cpu_count"]).all()


def pinned(frame, threads, scale=1.0):
    return frame.assign(threads=pd.array([threads] * len(frame), dtype="Int64"),
                        median_s=frame["median_s"] * scale)


def test_compare_joins_cases_at_the_same_count_only():
    base = load_results(DATA_DIR / "compare_base.json")          # two threads, the file's machine
    both = pd.concat([pinned(base, 1, 1.8), pinned(base, 2)], ignore_index=True)
    frame = compare_frames(base.assign(threads=pd.array([2] * len(base), dtype="Int64")), both)
    counts = frame.groupby("threads")["verdict"].agg(set)
    assert counts[1] == {"only in new"}
    assert "only in new" not in counts[2] and "only in base" not in counts[2]
    text = render(frame)
    assert "direct/cpu@1t" in text and "direct/cpu@2t" in text


def test_gpu_rows_have_no_thread_count_and_still_join():
    base = load_results(DATA_DIR / "compare_base.json").assign(backend="gpu")
    base["threads"] = pd.array([None] * len(base), dtype="Int64")
    frame = compare_frames(base, base)
    assert set(frame["verdict"]) == {"same"}


def test_scaling_table_and_split_labels():
    row = {"descriptor": "d", "layer": "res2a", "algo": "im2col", "backend": "cpu",
           "status": "PASSED"}
    frame = pd.DataFrame([{**row, "threads": 1, "median_s": 2.0e-3},
                          {**row, "threads": 2, "median_s": 1.25e-3},
                          {**row, "algo": "direct", "threads": 1, "median_s": 4.0e-3},
                          {**row, "algo": "torch", "backend": "gpu", "threads": None,
                           "median_s": 1e-4}])
    frame["threads"] = frame["threads"].astype("Int64")
    table = thread_scaling_table(frame)
    assert len(table) == 1    # direct ran at one count, torch on the GPU
    scaling = table.iloc[0]
    assert scaling["kernel"] == "im2col/cpu" and scaling["ms@1t"] == 2.0 and scaling["ms@2t"] == 1.25
    assert scaling["speed-up 1->2t"] == pytest.approx(1.6) and scaling["efficiency"] == "80%"
    assert list(split_threads(frame)["backend"]) == ["cpu@1t", "cpu@2t", "cpu@1t", "gpu"]
    single = frame.drop(index=1)   # im2col at two threads
    assert list(split_threads(single)["backend"]) == ["cpu", "cpu", "gpu"]


def test_peers_start_without_the_defaults_convbench_chose():
    from convbench.machine import peer_environment
    env = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "14", "PATH": "/bin",
           "CONVBENCH_DEFAULTS": "OMP_WAIT_POLICY"}
    assert peer_environment(env) == {"OPENBLAS_THREAD_TIMEOUT": "14", "PATH": "/bin"}
    user_set = {"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"}   # no marker: the user's choice
    assert peer_environment(user_set) == user_set


@pytest.mark.parametrize("chosen_by", ["convbench", "user"])
def test_a_peer_case_runs_without_convbenchs_wait_policy(tmp_path, monkeypatch, chosen_by):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    if chosen_by == "convbench":
        monkeypatch.setenv("CONVBENCH_DEFAULTS", "OMP_WAIT_POLICY")
    else:
        monkeypatch.delenv("CONVBENCH_DEFAULTS", raising=False)
    path = sweep(smoke_problem(), [get_kernel("direct", "cpu"), get_kernel("scipy", "cpu")],
                 SweepOptions(check_only=True), out_dir=tmp_path)
    seen = {row["algo"]: row["threads_seen"]["variables"] for row in read_document(path)["rows"]}
    assert seen["direct"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert seen["scipy"].get("OMP_WAIT_POLICY") == (None if chosen_by == "convbench" else "PASSIVE")
