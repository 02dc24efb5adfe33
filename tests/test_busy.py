"""Other processes busy while a case ran: recorded per row, warned about after a run, flagged
in a comparison."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.compare import Thresholds, compare_frames, render, summarize
from convbench.machine import (BUSY_WARNING_PCT, CpuShare, busy_note, cpu_stat,
                               taken_by_others_pct)
from convbench.results import load_results

DATA = Path(__file__).parent / "data"


def test_others_share_is_busy_time_outside_the_case_over_all_cpus_time():
    stats = iter([(100, 0, 1000), (300, 50, 1400)])   # ticks: busy, steal, total
    own = iter([5.0, 6.0])                           # the case used 1 s of CPU meanwhile
    found = CpuShare(stat=lambda: next(stats), own=lambda: next(own), hz=100).start().stop()
    # 2 s busy, 1 s of it ours, over 4 s of CPU time; 0.5 s of 4 s stolen
    assert found == {"busy_other_pct": 25.0, "steal_pct": 12.5}


def test_no_proc_stat_records_nothing():
    assert CpuShare(stat=lambda: None, own=lambda: 0.0, hz=100).start().stop() == {}


def test_the_case_alone_is_not_counted_as_others():
    stats = iter([(0, 0, 0), (200, 0, 400)])
    own = iter([0.0, 2.5])      # more than the busy ticks (rounding): clamped, never negative
    found = CpuShare(stat=lambda: next(stats), own=lambda: next(own), hz=100).start().stop()
    assert found["busy_other_pct"] == 0.0


def test_note_names_the_busy_cases_and_the_worst():
    rows = [{"status": "PASSED", "median_s": 1e-3, "name": "a", "descriptor": "d", "algo": "direct",
             "backend": "cpu", "busy_other_pct": 2.0, "steal_pct": 0.0},
            {"status": "PASSED", "median_s": 1e-3, "name": "b", "descriptor": "d", "algo": "im2col",
             "backend": "cpu", "busy_other_pct": 30.0, "steal_pct": 5.0},
            {"status": "SKIPPED", "median_s": None, "name": "c", "descriptor": "d", "algo": "fft",
             "backend": "cpu", "busy_other_pct": 90.0, "steal_pct": 0.0}]
    note = busy_note(rows)
    assert "during 1 of 2 timed cases" in note and "up to 35 %, b im2col/cpu" in note
    assert busy_note(rows[:1]) is None
    assert busy_note([{"status": "PASSED", "median_s": 1.0}]) is None   # older files: nothing
    assert taken_by_others_pct({"busy_other_pct": float("nan")}) is None


def test_comparison_flags_verdicts_on_a_busy_machine():
    base, new = load_results(DATA / "compare_base.json"), load_results(DATA / "compare_slower.json")
    new["busy_other_pct"], new["steal_pct"] = 40.0, 2.0
    frame = compare_frames(base, new, Thresholds())
    called = frame[frame["verdict"].isin(["slower", "faster"])]
    assert len(called) and (called["busy_pct"] == 42.0).all()
    assert "busy machine 42%" in render(frame)
    assert f"ran while other processes or the hypervisor took over {BUSY_WARNING_PCT:.0f} %" \
        in summarize(frame)
    quiet = compare_frames(base, load_results(DATA / "compare_slower.json"), Thresholds())
    assert "busy machine" not in render(quiet) and "hypervisor" not in summarize(quiet)


@pytest.mark.sweep
@pytest.mark.skipif(cpu_stat() is None, reason="no /proc/stat to read the CPUs' counters from")
def test_a_case_timed_beside_busy_processes_records_them(tmp_path):
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "convbench", "run", "--shapes", 'mb1ic8ih16oc8oh16kh3ph1n"x"',
             "--algo", "direct", "--quick", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=600)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = next(p for p in tmp_path.glob("*/2*.json") if not p.name.endswith(".pyperf.json"))
    row = json.loads(path.read_text())["rows"][0]
    # two spinning processes could take min(2, cpus) of the CPUs; ask for a quarter of that
    cpus = os.cpu_count()
    assert row["busy_other_pct"] > 100 * min(2, cpus) / cpus / 4
    assert "took over" in proc.stdout and "x direct/cpu" in proc.stdout
    assert f"busy: others took {row['busy_other_pct'] + row['steal_pct']:.0f} % of the CPUs" \
        in proc.stdout                               # the table's note for that case
    assert "busy: others took" in proc.stderr        # and its progress line


def test_runs_on_a_busy_machine_do_not_raise_the_history_floor():
    import pandas as pd
    frames = []
    for i, (factor, busy) in enumerate([(1.0, 0.0), (1.01, 0.0), (0.99, 0.0), (1.4, 60.0)]):
        frame = load_results(DATA / "compare_base.json")
        frame["file"] = f"/history/run{i}.json"
        frame["median_s"] = frame["median_s"] * factor
        frame["busy_other_pct"] = busy
        frames.append(frame)
    history = pd.concat(frames, ignore_index=True)
    compared = compare_frames(load_results(DATA / "compare_base.json"),
                              load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = compared[(compared["name"] == "smoke:3x3_odd") & (compared["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "slower"     # the busy run's 40 % would have hidden it
    history.loc[history["file"] == "/history/run3.json", "busy_other_pct"] = 0.0
    compared = compare_frames(load_results(DATA / "compare_base.json"),
                              load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = compared[(compared["name"] == "smoke:3x3_odd") & (compared["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "same"


def test_ab_notes_cases_compared_on_a_busy_machine():
    from convbench import ab

    def case(name, busy):
        return ab.CaseResult(descriptor="mb1ic8ih8oc8oh8kh3ph1", name=name, algo="direct",
                             backend="cpu", same_source=False, ratio=1.2, ratio_low=1.0,
                             ratio_high=1.4, verdict="unclear", busy_other_pct=busy, steal_pct=1.0)

    busy, quiet = case("busy", 33.0), case("quiet", 0.5)
    table = ab.render([busy, quiet])
    busy_line = next(line for line in table.splitlines() if line.startswith("busy"))
    quiet_line = next(line for line in table.splitlines() if line.startswith("quiet"))
    assert "busy: others took 34 % of the CPUs" in busy_line and "busy:" not in quiet_line
    assert "1 of the timed cases ran while other processes" in ab.summarize([busy, quiet], 0.05)
    assert "other processes" not in ab.summarize([quiet], 0.05)
    assert ab.CaseResult(**busy.as_dict()).busy_other_pct == 33.0   # kept by --resume


@pytest.mark.sweep
def test_retime_busy_times_the_busy_cases_again_in_place(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "convbench", "run", *args],
                              capture_output=True, text=True, timeout=600)

    proc = run("--shapes", 'mb1ic4ih10oc4oh10kh3ph1n"a"', "--algo", "direct,im2col", "--quick",
               "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = next(p for p in tmp_path.glob("*/2*.json") if not p.name.endswith(".pyperf.json"))
    document = json.loads(path.read_text())
    before = [dict(row) for row in document["rows"]]
    assert [row["algo"] for row in before] == ["direct", "im2col"]
    document["rows"][0].update(busy_other_pct=70.0, steal_pct=0.0)     # as if disturbed
    document["rows"][1].update(busy_other_pct=0.0, steal_pct=0.0)
    path.write_text(json.dumps(document))
    shown = subprocess.run([sys.executable, "-m", "convbench", "show", str(path)],
                           capture_output=True, text=True, timeout=300).stdout
    assert f"python -m convbench run --resume {path} --retime-busy" in shown

    proc = run("--resume", str(path), "--retime-busy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(path.read_text())["rows"]
    assert [row["algo"] for row in rows] == ["direct", "im2col"]       # same places, no extra row
    assert rows[0]["busy_other_pct"] != 70.0 and rows[0]["case_wall_s"] != before[0]["case_wall_s"]
    assert rows[1] == dict(before[1], busy_other_pct=0.0, steal_pct=0.0)  # left alone
    import pyperf
    names = [b.get_name() for b in pyperf.BenchmarkSuite.load(
        str(path.with_name(path.stem + ".pyperf.json"))).get_benchmarks()]
    assert len(names) == len(set(names)) == 2                          # replaced, not added

    refused = run("--retime-busy", "--shapes", "smoke")
    assert refused.returncode == 2 and "--retime-busy needs --resume" in refused.stderr


def test_report_says_when_a_run_was_disturbed(tmp_path):
    from convbench.report import write_report
    document = json.loads((DATA / "compare_base.json").read_text())
    timed = [row for row in document["rows"] if row["status"] == "PASSED"]
    timed[0].update(busy_other_pct=25.0, steal_pct=1.0)
    path = tmp_path / "busy.json"
    path.write_text(json.dumps(document))
    text = write_report([path], tmp_path / "busy").read_text()
    assert f"**Disturbed:** other processes or the hypervisor took over 10 % of the CPUs during " \
           f"1 of {len(timed)} timed cases (up to 26 %" in text
    assert "Disturbed" not in write_report([DATA / "compare_base.json"], tmp_path / "quiet").read_text()


@pytest.mark.parametrize("busy_ticks, warned", [(120, True), (10, False)])
def test_busy_now_warns_before_a_run_only_when_others_are_busy(busy_ticks, warned):
    from convbench.machine import busy_now
    stats = iter([(0, 0, 0), (busy_ticks, 0, 400)])
    share = CpuShare(stat=lambda: next(stats), own=lambda: 0.0, hz=100)
    note = busy_now(seconds=0, share=share)
    assert (note is not None) == warned
    if warned:
        assert "taking 30 % of the CPUs right now (busy 30 %, steal 0 %)" in note


@pytest.mark.skipif(cpu_stat() is None, reason="no /proc/stat to read the CPUs' counters from")
def test_machine_command_says_when_the_cpus_are_busy_now():
    if os.cpu_count() > 8:
        pytest.skip("two spinning processes are too small a share of over 8 CPUs to be sure of")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        proc = subprocess.run([sys.executable, "-m", "convbench", "machine"], capture_output=True,
                              text=True, timeout=300)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert proc.returncode == 0, proc.stderr
    assert "of the CPUs right now" in proc.stdout


def test_history_marks_steps_timed_on_a_busy_machine(tmp_path):
    from convbench.history import write_history
    paths = []
    for name in ("compare_base.json", "compare_aa.json", "compare_slower.json"):
        document = json.loads((DATA / name).read_text())
        if name == "compare_slower.json":
            for row in document["rows"]:
                row.update(busy_other_pct=45.0, steal_pct=0.0)
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(document))
    text, steps = write_history(paths, tmp_path / "out")
    step = next(line for line in text.read_text().splitlines()
                if "slower" in line and "3x3_odd" in line)
    assert step.endswith("(timed on a busy machine: others took 45 % of the CPUs)")
    assert (steps["busy_pct"] == 45.0).all()


def test_a_case_timed_again_replaces_or_drops_its_old_pyperf_benchmark(tmp_path):
    """The pyperf file beside a results file keeps only what the results file says was timed."""
    import pyperf
    from convbench.runner import PyperfSuite

    def case_file(*names):
        path = tmp_path / f"case-{'-'.join(names)}.json"
        pyperf.BenchmarkSuite([pyperf.Benchmark([pyperf.Run(
            [0.001, 0.0011], metadata={"name": name, "loops": 1},
            collect_metadata=False)]) for name in names]).dump(str(path), replace=True)
        return path

    suite = PyperfSuite(tmp_path / "run.pyperf.json")
    suite.add(case_file("a"))
    suite.add(case_file("b"))
    suite.add(case_file("a"))                           # case a timed again: replaced
    stored = lambda: [b.get_name() for b in
                      pyperf.BenchmarkSuite.load(str(suite.path)).get_benchmarks()]
    assert sorted(stored()) == ["a", "b"]
    suite.remove("a")                                   # timed again and failed: dropped
    assert stored() == ["b"]
    suite.remove("b")
    assert not suite.path.exists()                      # pyperf has no empty suite
