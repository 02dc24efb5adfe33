"""A sweep never loses work: broken kernels, interruption and resume, memory limits, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convbench import UnsupportedProblem, conv2d
from convbench.results import load_results, read_document

pytestmark = pytest.mark.sweep

BAD = "tests.bad_kernels:SPECS"


def env_with_bad_kernels():
    env = dict(os.environ)
    env["CONVBENCH_EXTRA_KERNELS"] = BAD
    return env


def results_in(root):
    return [p for p in root.glob("*/*.json") if not p.name.endswith(".pyperf.json")
            and p.name != "ceilings.json"]


def run_bad(tmp_path, shapes, algos, timeout):
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "run", "--shapes", shapes, "--quick", "--out",
         str(tmp_path), "--algo", algos, "--case-timeout", str(timeout)],
        capture_output=True, text=True, timeout=900, env=env_with_bad_kernels())
    # every sweep here has a broken kernel: the run finishes, then exits 1 naming each failure
    assert proc.returncode == 1, proc.stdout + proc.stderr
    frame = load_results(results_in(tmp_path)[0])
    broken = frame[frame["status"].isin(["FAILED", "CRASHED", "TIMEOUT"])]
    listing = proc.stdout.split(f"{len(broken)} case(s) did not pass:\n")[1].splitlines()
    assert len(listing) == len(broken)
    for line, row in zip(listing, broken.itertuples()):
        assert line.endswith(f"{row.algo}/cpu  {row.status}: {row.reason}")   # reason in full
    return frame


def test_a_kernel_that_cannot_run_here_is_recorded_as_unavailable_not_as_unsupported(tmp_path):
    env = dict(os.environ, CONVBENCH_EXTRA_KERNELS="tests.bad_kernels:MISSING")
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "run", "--shapes", 'mb1ic2ih6oc2kh5n"tiny"',
         "--check-only", "--out", str(tmp_path), "--algo", "missing_peer,winograd,direct"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {row["algo"]: row for row in read_document(results_in(tmp_path)[0])["rows"]}
    assert rows["missing_peer"]["status"] == "SKIPPED" and rows["missing_peer"]["unavailable"]
    assert rows["missing_peer"]["reason"] == "convbench_no_such_library is not installed"
    # refusing the problem (a 5x5 filter) is not being unavailable, nor is running it
    assert rows["winograd"]["status"] == "SKIPPED" and rows["winograd"]["unavailable"] is False
    assert rows["direct"]["status"] == "PASSED" and rows["direct"]["unavailable"] is False


def test_run_exits_1_on_a_failed_case_and_0_when_the_rest_passed_or_were_skipped(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "run", "--shapes", 'mb1ic2ih6oc2kh3ph1n"tiny"',
         "--check-only", "--out", str(tmp_path), "--algo", "direct,winograd,nan"],
        capture_output=True, text=True, timeout=600, env=env_with_bad_kernels())
    assert proc.returncode == 1 and "1 case(s) did not pass:" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "run", "--shapes", 'mb1ic2ih6oc2kh5n"tiny"',
         "--check-only", "--out", str(tmp_path), "--algo", "direct,winograd"],
        capture_output=True, text=True, timeout=600, env=env_with_bad_kernels())
    assert proc.returncode == 0, proc.stdout + proc.stderr      # a SKIPPED case is not a failure
    assert "did not pass" not in proc.stdout and "SKIPPED" in proc.stdout


def test_broken_kernels_become_rows_and_the_sweep_goes_on(tmp_path):
    frame = run_bad(tmp_path, "smoke", "crash,raise,nan,wrong_shape,direct", 300)
    by_algo = frame.groupby("algo")
    assert set(by_algo.get_group("crash")["status"]) == {"CRASHED"}
    assert by_algo.get_group("crash")["reason"].str.contains("SIGSEGV").all()
    assert set(by_algo.get_group("raise")["status"]) == {"FAILED"}
    assert by_algo.get_group("raise")["reason"].str.contains("index out of range").all()
    assert by_algo.get_group("nan")["reason"].str.contains("non-finite").all()
    assert by_algo.get_group("wrong_shape")["reason"].str.contains("output shape").all()
    assert set(by_algo.get_group("direct")["status"]) == {"PASSED"}  # the sweep went on
    assert len(frame) == 4 * 5


def test_hanging_kernel_times_out_and_the_sweep_goes_on(tmp_path):
    shapes = tmp_path / "one.txt"
    shapes.write_text('mb1ic2ih6oc2oh6kh3ph1n"tiny"\n')
    start = time.monotonic()
    frame = run_bad(tmp_path, str(shapes), "hang,nan", 3)
    assert time.monotonic() - start < 120
    statuses = dict(zip(frame["algo"], frame["status"]))
    assert statuses == {"hang": "TIMEOUT", "nan": "FAILED"}
    assert frame[frame["algo"] == "hang"]["reason"].str.contains("3 s limit").all()


def wait_for_rows(root, count, timeout=300):
    """The results file under ``root`` once a running sweep has saved ``count`` rows in it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = results_in(root) if Path(root).is_dir() else []
        try:
            if files and len(read_document(files[0])["rows"]) >= count:
                return files[0]
        except ValueError:   # caught between its write and its rename
            pass
        time.sleep(0.2)
    raise AssertionError(f"the sweep saved fewer than {count} rows in {timeout} s")


def _default_sigint():
    """In the child before it starts: SIGINT back to its default. A shell without job control
    starts background jobs with SIGINT ignored, and a Python started so ignores Ctrl-C (no
    KeyboardInterrupt): ``make test &`` would otherwise leave the sweep below deaf to it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_sweep_resumes_without_redoing_cases(tmp_path):
    args = [sys.executable, "-m", "convbench", "run", "--shapes", "smoke", "--quick",
            "--algo", "direct,im2col,fft", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    path = wait_for_rows(tmp_path, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--resume {path}" in err
    interrupted = read_document(path)
    assert interrupted["complete"] is False
    done_before = [(r["descriptor"], r["algo"]) for r in interrupted["rows"]]
    assert 3 <= len(done_before) < 12

    resumed = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(path)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    final = read_document(path)
    cases = [(r["descriptor"], r["algo"]) for r in final["rows"]]
    assert final["complete"] is True
    assert cases[:len(done_before)] == done_before          # finished rows kept, not redone
    assert len(cases) == len(set(cases)) == 4 * 3           # every case exactly once

    # resuming the finished run again times nothing and leaves its file (and end ceilings) as is
    before = path.read_bytes()
    again = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(path)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "is a finished run, every case in it: nothing to resume" in again.stderr
    assert path.read_bytes() == before

    fresh_dir = tmp_path / "fresh"
    subprocess.run(args[:-1] + [str(fresh_dir)], capture_output=True, text=True, timeout=600,
                   check=True)
    fresh = [(r["descriptor"], r["algo"]) for r in read_document(results_in(fresh_dir)[0])["rows"]]
    assert sorted(cases) == sorted(fresh)


def test_a_terminated_sweep_kills_its_running_case_and_says_how_to_resume(tmp_path):
    """SIGTERM, as a CI job's timeout or cancel sends it, is taken as Ctrl-C: the case running
    (here one that hangs) dies with the sweep instead of running on in its own process group,
    the finished rows stay, and the exit status is 143."""
    shapes = tmp_path / "one.txt"
    shapes.write_text('mb1ic2ih6oc2oh6kh3ph1n"tiny"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "convbench", "run", "--shapes", str(shapes), "--check-only",
         "--algo", "direct,hang", "--case-timeout", "300", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with_bad_kernels())
    path = wait_for_rows(tmp_path / "out", 1)   # direct finished: the hanging case runs now
    deadline, children = time.time() + 60, []
    while time.time() < deadline and not children:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)],
                                  capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert children, "the hanging case never started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert f"--resume {path}" in err
    for pid in map(int, children):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    document = read_document(path)
    assert document["complete"] is False
    assert [row["algo"] for row in document["rows"]] == ["direct"]


def test_resume_refuses_a_file_of_another_machine_and_names_a_changed_environment(tmp_path):
    made = subprocess.run([sys.executable, "-m", "convbench", "run", "--shapes", "smoke",
                           "--match", "3x3_odd", "--algo", "direct", "--check-only", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    path = results_in(tmp_path)[0]
    document = read_document(path)
    here = document["machine"]["machine_id"]

    elsewhere = dict(document, complete=False, rows=[])
    elsewhere["machine"] = dict(document["machine"], machine_id="elsewhere-64c")
    path.write_text(json.dumps(elsewhere))
    before = path.read_text()
    refused = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(path)],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    assert f"was made on elsewhere-64c, and this machine is {here}" in refused.stderr
    assert path.read_text() == before          # nothing run, nothing written

    changed = dict(document, complete=False, rows=[])
    versions = dict(document["machine"]["versions"], numpy="0.0.1")
    changed["machine"] = dict(document["machine"], versions=versions)
    path.write_text(json.dumps(changed))
    resumed = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(path)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming in a changed environment (numpy: 0.0.1 -> " in resumed.stderr
    assert [row["status"] for row in read_document(path)["rows"]] == ["PASSED"]

    from convbench.ab import AB_KIND, AB_VERSION
    ab_file = tmp_path / "ab.json"
    ab_file.write_text(json.dumps({
        "kind": AB_KIND, "version": AB_VERSION, "machine": elsewhere["machine"], "cases": [],
        "options": {"shapes": "smoke", "mb": None, "algo": "direct", "backends": ["cpu"]},
        "trees": {}, "settings": {}}))
    refused = subprocess.run([sys.executable, "-m", "convbench", "ab", "--resume", str(ab_file)],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2
    assert "convbench ab: " in refused.stderr and "was made on elsewhere-64c" in refused.stderr


def test_memory_budget_skips_with_figures(tmp_path):
    shapes = tmp_path / "mixed.txt"
    shapes.write_text('mb1ic64ih224oc64oh224kh3ph1n"vgg16:conv1_2"\nmb1ic3ih9oc4oh9kh3ph1n"tiny"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "run", "--shapes", str(shapes), "--mb", "64",
         "--algo", "im2col", "--check-only", "--memory-budget", "2G", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    frame = load_results(results_in(tmp_path)[0]).set_index("name")
    # by blocks of rows its workspace is the padded input (798 MiB) and two blocks, not the 6.9 GiB
    # column matrix; with input and output (1.5 GiB) it still needs more than 2 GiB
    assert frame.loc["vgg16:conv1_2", "status"] == "SKIPPED"
    reason = frame.loc["vgg16:conv1_2", "reason"]
    assert "needs 2.3 GiB (workspace 802.0 MiB)" in reason
    assert "over the memory budget of 2.0 GiB" in reason
    assert frame.loc["tiny", "status"] == "PASSED"


def test_malformed_shape_file_exits_2_with_line(tmp_path):
    shapes = tmp_path / "mine.txt"
    shapes.write_text("mb1ic3ih8oc4kh3\nmb1ic3ih8oc4kh3ph-1\n")
    proc = subprocess.run([sys.executable, "-m", "convbench", "run", "--shapes", str(shapes),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert f"{shapes}:2:" in proc.stderr and "ph must be >= 0" in proc.stderr


def test_resume_of_corrupt_file_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": 1}))
    proc = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and str(bad) in proc.stderr


arrays = st.builds(
    lambda shape, dtype, contiguous: (np.zeros(shape, dtype=dtype) if contiguous
                                      else np.zeros(tuple(s * 2 for s in shape), dtype=dtype)[
                                          tuple(slice(None, None, 2) for _ in shape)]),
    st.lists(st.integers(0, 5), min_size=0, max_size=5).map(tuple),
    st.sampled_from([np.float32, np.float64, np.int32, np.float16]),
    st.booleans())


@settings(max_examples=200, deadline=None)
@given(x=arrays, w=arrays, stride=st.one_of(st.integers(-1, 3), st.tuples(st.integers(0, 2),
                                                                             st.integers(0, 2))),
       padding=st.integers(-1, 3), dilation=st.integers(0, 2), groups=st.integers(-1, 3))
def test_conv2d_argument_fuzz_gives_result_or_clear_error(x, w, stride, padding, dilation, groups):
    try:
        y = conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    except (ValueError, UnsupportedProblem) as error:
        assert str(error)
        return
    assert y.dtype == np.float32 and y.ndim == 4


def test_find_lists_a_failing_kernel_after_the_timed_ones_and_exits_1(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "convbench", "find", "mb1ic2ih6oc2kh3ph1", "--quick", "--out",
         str(tmp_path), "--algo", "nan,direct"],
        capture_output=True, text=True, timeout=600, env=env_with_bad_kernels())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()
            if " PASSED" in line or " FAILED" in line]
    assert [(row[0], row[1], row[2]) for row in rows] == [("1", "direct/cpu", "PASSED"),
                                                         ("-", "nan/cpu", "FAILED")]
    assert "non-finite" in proc.stdout and "1 kernel(s) failed: nan/cpu" in proc.stdout
    # the problem's roofline floor, at the ceilings the run measured, and the fastest's share
    from convbench.problem import ConvProblem
    from convbench.results import read_document
    from convbench.roofline import ceiling_for, roof
    path = next(line.split(": ", 1)[1] for line in proc.stdout.splitlines()
                if line.startswith("results: "))
    document = read_document(path)
    rates = ceiling_for(document["ceilings"], "cpu", None, document.get("ceilings_end"))
    floor = roof(ConvProblem.parse("mb1ic2ih6oc2kh3ph1"), rates["sgemm_gflops"], rates["copy_gbps"])
    line = next(line for line in proc.stdout.splitlines() if line.startswith("roofline floor "))
    assert float(line.split()[2]) == pytest.approx(floor.seconds * 1e3, rel=1e-3)
    assert f"{floor.bound}-bound" in line and "the fastest runs at" in line


def test_killing_a_case_that_already_exited_is_not_an_error():
    """Ctrl-C reaches a case's process group too; the sweep must still print how to resume."""
    from convbench.runner import kill_group
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    kill_group(proc.pid)            # os.killpg alone raises ProcessLookupError here


def test_a_case_manager_without_a_result_file_says_so():
    """The case module run by hand without ``--result`` stops at once with the reason, instead
    of validating and then failing to write its findings (it once wrote ``None.tmp``)."""
    proc = subprocess.run([sys.executable, "-m", "convbench._case", "--problem", "mb1ic3ih5oc4kh3",
                           "--algo", "direct", "--backend", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--result FILE is required" in proc.stderr
