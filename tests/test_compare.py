"""compare on golden results files: A/A, a 25 % slowdown, an improvement, missing/new/failing cases."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from convbench.compare import (Thresholds, code_identity, compare_frames, history_spreads,
                               regressions, render, text_table, timing_verdict)
from convbench.results import load_results

DATA = Path(__file__).parent / "data"


def verdicts(base, new, **kwargs):
    frame = compare_frames(load_results(DATA / base), load_results(DATA / new), Thresholds(**kwargs))
    return frame, dict(zip(zip(frame["name"], frame["algo"]), frame["verdict"]))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "convbench", "compare", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_aa_pair_has_no_regression():
    frame, by_case = verdicts("compare_base.json", "compare_aa.json")
    assert set(by_case.values()) == {"same"}
    assert regressions(frame).empty


def test_same_file_against_itself_is_all_same():
    frame, by_case = verdicts("compare_base.json", "compare_base.json")
    assert set(by_case.values()) == {"same"}
    assert (frame["ratio"] == 1.0).all()


def test_one_case_25_percent_slower_is_exactly_that_regression():
    frame, by_case = verdicts("compare_base.json", "compare_slower.json")
    bad = regressions(frame)
    assert list(zip(bad["name"], bad["algo"])) == [("smoke:3x3_odd", "direct")]
    assert bad["ratio"].iloc[0] == pytest.approx(1.25, rel=0.03)
    assert bad["p_value"].iloc[0] < 0.01
    others = {case: v for case, v in by_case.items() if case != ("smoke:3x3_odd", "direct")}
    assert set(others.values()) == {"same"}


def test_faster_case_is_an_improvement_not_a_regression():
    frame, by_case = verdicts("compare_base.json", "compare_faster.json")
    assert by_case[("smoke:5x5", "direct")] == "faster"
    assert regressions(frame).empty


def test_missing_new_failing_and_changed_source_are_listed():
    frame, by_case = verdicts("compare_base.json", "compare_changed.json")
    assert by_case[("smoke:1x1_groups2", "direct")] == "only in base"
    assert by_case[("smoke:5x5_new", "direct")] == "only in new"
    assert by_case[("smoke:3x3_stride2", "direct")] == "new failure"
    changed = frame[frame["source_changed"]]
    assert list(zip(changed["name"], changed["algo"])) == [("smoke:5x5", "direct")]
    assert list(regressions(frame)["name"]) == ["smoke:3x3_stride2"]


def test_min_change_threshold_is_settable():
    _, by_case = verdicts("compare_base.json", "compare_slower.json", min_change=0.30)
    assert by_case[("smoke:3x3_odd", "direct")] == "same"


def test_large_change_without_significance_is_not_a_regression():
    base = {"median_s": 1.0, "mad_s": 0.01, "samples_s": [1.0, 1.01, 0.99]}
    new = {"median_s": 1.3, "mad_s": 0.01, "samples_s": [1.3, 1.31, 1.29]}
    verdict, ratio, p_value, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same" and "not significant" in why  # 3 vs 3 values cannot reach p < 0.01
    assert ratio == pytest.approx(1.3)


def test_change_inside_noise_floor_is_not_a_regression():
    base = {"median_s": 1.0, "mad_s": 0.1, "samples_s": list(1 + 0.1 * (i % 3 - 1) for i in range(20))}
    new = {"median_s": 1.15, "mad_s": 0.1, "samples_s": list(1.15 + 0.1 * (i % 3 - 1) for i in range(20))}
    verdict, _, _, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same" and "noise floor" in why


def test_cli_exit_status_gates_ci():
    assert cli(DATA / "compare_base.json", DATA / "compare_aa.json").returncode == 0
    slower = cli(DATA / "compare_base.json", DATA / "compare_slower.json")
    assert slower.returncode == 1
    assert "verdict: REGRESSION" in slower.stdout and "smoke:3x3_odd" in slower.stdout
    assert cli(DATA / "compare_base.json", DATA / "compare_faster.json").returncode == 0
    assert cli(DATA / "compare_base.json", DATA / "compare_changed.json").returncode == 1


def _strict_json(text):
    """JSON as a strict reader takes it: NaN or Infinity in the text fail."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_json_document_holds_the_verdict_and_every_case(tmp_path):
    out = tmp_path / "ci" / "compare.json"
    proc = cli(DATA / "compare_base.json", DATA / "compare_changed.json", "--json", out)
    assert proc.returncode == 1 and f"comparison: {out}" in proc.stdout
    document = _strict_json(out.read_text())
    assert document["verdict"] == "REGRESSION" and document["exit_status"] == 1
    frame, by_case = verdicts("compare_base.json", "compare_changed.json")
    assert len(document["cases"]) == len(frame)
    cases = {(case["name"], case["algo"]): case for case in document["cases"]}
    assert {case: c["verdict"] for case, c in cases.items()} == by_case
    assert document["counts"] == frame["verdict"].value_counts().to_dict()
    assert [case for case, c in cases.items() if c["regression"]] == [("smoke:3x3_stride2",
                                                                       "direct")]
    assert document["regressions"] == 1
    assert [case for case, c in cases.items() if c["code_changed"]] == [("smoke:5x5", "direct")]
    gone = cases[("smoke:1x1_groups2", "direct")]       # only in base: no new time, null not NaN
    assert gone["new_median_s"] is None and gone["ratio"] is None
    timed = next(c for c in document["cases"] if c["verdict"] == "same")
    assert timed["new_median_s"] / timed["base_median_s"] == pytest.approx(timed["ratio"])
    assert isinstance(timed["threads"], int)
    assert document["base"]["file"] == str(DATA / "compare_base.json")
    assert document["thresholds"] == {"min_change": 0.10, "noise_factor": 2.0, "alpha": 0.01}


def test_json_to_standard_output_leaves_the_text_on_standard_error():
    proc = cli(DATA / "compare_base.json", DATA / "compare_slower.json", "--json", "-",
               "--min-change", "0.2")
    assert proc.returncode == 1
    document = _strict_json(proc.stdout)             # nothing but the document
    assert document["verdict"] == "REGRESSION" and document["thresholds"]["min_change"] == 0.2
    slower = [c for c in document["cases"] if c["verdict"] == "slower"]
    assert [(c["name"], c["algo"]) for c in slower] == [("smoke:3x3_odd", "direct")]
    assert slower[0]["ratio"] == pytest.approx(1.25, rel=0.03) and slower[0]["p_value"] < 0.01
    assert "verdict: REGRESSION" in proc.stderr and "smoke:3x3_odd" in proc.stderr
    quiet = cli(DATA / "compare_base.json", DATA / "compare_aa.json", "--json", "-")
    assert quiet.returncode == 0 and _strict_json(quiet.stdout)["verdict"] == "ok"


@pytest.mark.parametrize("complete", [True, False])
def test_cases_an_interrupted_new_run_never_reached_fail_the_comparison(tmp_path, complete):
    """A case missing from a finished run is "only in base" (its kernel or problem may have
    gone on purpose); missing from an interrupted one, it was never measured: "not reached", a
    regression, with the command that finishes the run."""
    base = json.loads((DATA / "compare_base.json").read_text())
    new = dict(base, rows=[row for row in base["rows"] if row["name"] != "smoke:5x5"],
               complete=complete)
    path = tmp_path / "new.json"
    path.write_text(json.dumps(new))
    proc = cli(DATA / "compare_base.json", path)
    lost = [line for line in proc.stdout.splitlines() if line.startswith("smoke:5x5")]
    assert lost and all(("only in base" in line) is complete for line in lost)
    assert all(("not reached" in line) is not complete for line in lost)
    assert proc.returncode == (0 if complete else 1), proc.stdout + proc.stderr
    assert (f"python -m convbench run --resume {path}" in proc.stdout) is not complete
    document = _strict_json(cli(DATA / "compare_base.json", path, "--json", "-").stdout)
    assert document["new"]["complete"] is complete and document["base"]["complete"] is True
    unreached = [case for case in document["cases"] if case["verdict"] == "not reached"]
    assert len(unreached) == (0 if complete else len(lost))
    assert all(case["regression"] for case in unreached)
    assert (f"interrupted before {len(lost)} cases" in proc.stdout) is not complete


def test_a_correctness_only_new_run_cannot_pass_a_speed_comparison(tmp_path):
    """A --check-only run measures no time: against a timed base, its cases are "not timed in
    new" and the comparison fails, where it used to pass with nothing compared."""
    document = json.loads((DATA / "compare_base.json").read_text())
    for row in document["rows"]:
        for field in ("median_s", "mad_s", "stdev_s", "samples_s", "process_medians_s", "gflops"):
            row[field] = None
    document["options"]["check_only"] = True
    path = tmp_path / "check_only.json"
    path.write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", path)
    timed = len(load_results(DATA / "compare_base.json").query("status == 'PASSED'"))
    assert proc.returncode == 1 and f"{timed} not timed in new" in proc.stdout, proc.stdout
    assert "different modes" not in proc.stdout


def test_runs_of_two_timing_modes_are_named_as_such(tmp_path):
    document = json.loads((DATA / "compare_aa.json").read_text())
    document["options"]["mode"] = "default"     # the golden base is a quick run
    path = tmp_path / "default.json"
    path.write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", path)
    assert "timed in different modes (base quick, new default)" in proc.stdout, proc.stdout
    same = cli(DATA / "compare_base.json", DATA / "compare_aa.json").stdout
    assert "different modes" not in same and "different machines" not in same


def test_runs_of_two_machines_are_named_as_such(tmp_path):
    document = json.loads((DATA / "compare_aa.json").read_text())
    base_id = document["machine"]["machine_id"]
    document["machine"]["machine_id"] = "other-machine-8c"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", path)
    assert (f"made on different machines ({base_id} and other-machine-8c)" in proc.stdout
            and f"convbench report {DATA / 'compare_base.json'} {path}" in proc.stdout)


def test_markdown_output():
    out = cli(DATA / "compare_base.json", DATA / "compare_slower.json", "--markdown").stdout
    assert out.startswith("| case | kernel | base_ms | new_ms | ratio | verdict |")
    assert "| slower |" in out


def test_corrupt_or_unknown_version_exits_2_naming_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 99, "rows": []}')
    proc = cli(DATA / "compare_base.json", bad)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "schema 99" in proc.stderr


def test_render_plain_lists_every_case():
    frame, _ = verdicts("compare_base.json", "compare_changed.json")
    text = render(frame)
    for name in ("smoke:1x1_groups2", "smoke:5x5_new", "smoke:3x3_stride2", "code changed"):
        assert name in text


def test_worker_processes_are_the_unit_when_both_runs_have_them():
    """Raw values cleanly separated but worker medians overlapping: not significant."""
    base_procs = [1.00, 1.20, 0.90, 1.10, 1.00, 1.25]
    new_procs = [1.25, 1.05, 1.30, 1.15, 1.35, 1.20]
    base = {"median_s": 1.05, "mad_s": 0.001, "process_medians_s": base_procs,
            "samples_s": [1.0 + 0.001 * i for i in range(18)]}
    new = {"median_s": 1.22, "mad_s": 0.001, "process_medians_s": new_procs,
           "samples_s": [1.22 + 0.001 * i for i in range(18)]}
    verdict, _, p_value, why = timing_verdict(base, new, Thresholds())
    assert verdict == "same", why
    # the same rows without process medians would look like a clear regression
    raw = timing_verdict({k: v for k, v in base.items() if k != "process_medians_s"},
                         {k: v for k, v in new.items() if k != "process_medians_s"}, Thresholds())
    assert raw[0] == "slower"


def test_separated_worker_medians_are_significant():
    base = {"median_s": 1.0, "mad_s": 0.01, "process_medians_s": [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]}
    new = {"median_s": 1.25, "mad_s": 0.01, "process_medians_s": [1.25, 1.26, 1.24, 1.27, 1.23, 1.25]}
    verdict, ratio, p_value, _ = timing_verdict(base, new, Thresholds())
    assert verdict == "slower" and p_value < 0.01 and ratio == pytest.approx(1.25)


def history_of(factors, source="same", mode=None, code=None):
    """Earlier runs of compare_base.json: smoke:3x3_odd direct's median scaled by each factor, in
    files of their own; ``source`` "other" gives them a different kernel source hash, ``code`` a
    code hash."""
    import pandas as pd

    frames = []
    for i, factor in enumerate(factors):
        frame = load_results(DATA / "compare_base.json")
        frame["file"] = f"/history/run{i}.json"
        case = (frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")
        frame.loc[case, "median_s"] = frame.loc[case, "median_s"] * factor
        if source == "other":
            frame["source_hash"] = "0" * 12
        if code:
            frame["code_hash"] = code
        if mode:
            frame["mode"] = mode
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def compare_with_history(history):
    frame = compare_frames(load_results(DATA / "compare_base.json"),
                           load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    return row["verdict"], row["why"]


def test_history_spread_is_the_largest_change_between_two_runs_of_identical_code():
    spreads = history_spreads(history_of([1.0, 1.3, 0.9]))
    frame = load_results(DATA / "compare_base.json")
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    spread, runs = spreads[(row["descriptor"], "direct", "cpu", row["threads"], code_identity(row),
                            row["mode"])]
    assert runs == 3 and spread == pytest.approx(1.3 / 0.9 - 1)


def test_a_slowdown_within_the_history_spread_is_not_a_regression():
    verdict, why = compare_with_history(history_of([1.0, 1.3, 0.95]))    # identical code varied 37 %
    assert verdict == "same" and "run-to-run spread of identical code (3 earlier runs)" in why


def test_history_that_is_quiet_leaves_a_real_slowdown_standing():
    assert compare_with_history(history_of([1.0, 1.02, 0.99]))[0] == "slower"


@pytest.mark.parametrize("history", [
    pytest.param(lambda: history_of([1.0, 1.3]), id="two runs are too few"),
    pytest.param(lambda: history_of([1.0, 1.3, 0.95], source="other"), id="other kernel source"),
    pytest.param(lambda: history_of([1.0, 1.3, 0.95], mode="rigorous"), id="other timing mode"),
])
def test_history_counts_only_enough_runs_of_the_same_code_and_mode(history):
    assert compare_with_history(history())[0] == "slower"


def test_the_new_run_is_not_its_own_history():
    new = load_results(DATA / "compare_slower.json")
    history = history_of([1.0, 1.01])
    import pandas as pd
    history = pd.concat([history, new], ignore_index=True)   # with the new file: 3 runs, 25 % apart
    frame = compare_frames(load_results(DATA / "compare_base.json"), new, Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "slower"


def test_cli_history_option(tmp_path):
    import json
    for i, factor in enumerate([1.0, 1.3, 0.95]):
        document = json.loads((DATA / "compare_base.json").read_text())
        for row in document["rows"]:
            if row["name"] == "smoke:3x3_odd" and row["algo"] == "direct":
                row["median_s"] *= factor
        (tmp_path / f"run{i}.json").write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", DATA / "compare_slower.json", "--history", tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "run-to-run spread of identical code" in proc.stdout


def test_a_broad_shift_of_unchanged_code_is_called_out():
    import json
    from convbench.compare import run_shift, summarize
    document = json.loads((DATA / "compare_base.json").read_text())
    base = load_results(DATA / "compare_base.json")
    slow = base.copy()
    slow["median_s"] = slow["median_s"] * 1.12
    slow["file"] = "/elsewhere/new.json"
    frame = compare_frames(base, slow, Thresholds())
    ratio, cases = run_shift(frame)
    assert ratio == pytest.approx(1.12) and cases == sum(r["status"] == "PASSED" for r in document["rows"])
    assert "whole-run shift" in summarize(frame) and "+12.0%" in summarize(frame)
    quiet = compare_frames(base, load_results(DATA / "compare_aa.json"), Thresholds())
    assert "whole-run shift" not in summarize(quiet)


def test_cli_without_files_compares_this_machines_latest_two_runs(tmp_path):
    import shutil

    from convbench.machine import machine_id
    runs = tmp_path / machine_id()
    runs.mkdir()
    for name, golden in (("20260101T000000Z_aaaa.json", "compare_faster.json"),
                         ("20260102T000000Z_bbbb.json", "compare_base.json"),
                         ("20260103T000000Z_cccc.json", "compare_slower.json")):
        shutil.copy(DATA / golden, runs / name)
    one_kernel = json.loads((DATA / "compare_base.json").read_text())   # another selection: not
    one_kernel["options"]["algos"] = ["direct"]                          # a base for a full run
    (runs / "20260102T120000Z_dddd.json").write_text(json.dumps(one_kernel))
    latest = cli("--root", tmp_path)
    assert latest.returncode == 1 and "verdict: REGRESSION" in latest.stdout   # base -> slower
    assert "20260102T000000Z_bbbb.json -> 20260103T000000Z_cccc.json" in latest.stdout
    (runs / "20260103T000000Z_cccc.json").unlink()   # the one-kernel run is the latest: none alike
    assert "(none made the same selection): 20260102T000000Z_bbbb.json -> 20260102T120000Z_dddd" \
        in cli("--root", tmp_path).stdout
    (runs / "20260102T120000Z_dddd.json").unlink()
    assert "20260101T000000Z_aaaa.json -> 20260102T000000Z_bbbb.json" in cli("--root", tmp_path).stdout


def test_cli_refuses_one_file_or_too_few_runs(tmp_path):
    one = cli(DATA / "compare_base.json")
    assert one.returncode == 2 and "name both results files" in one.stderr
    none = cli("--root", tmp_path)
    assert none.returncode == 2 and "there are 0 runs of this machine" in none.stderr


def test_text_table_aligns_numbers_right_and_text_left_without_trailing_blanks():
    import pandas as pd

    table = pd.DataFrame({"kernel": ["direct/cpu", "winograd/cpu"], "time_ms": [12.5, float("nan")],
                          "note": ["", "needs a 3x3 filter"]})
    lines = text_table(table).splitlines()
    assert lines[0].split() == ["kernel", "time_ms", "note"]
    assert lines[1].startswith("direct/cpu  ") and lines[1].endswith(" 12.5")  # blank note: no pad
    assert lines[2].startswith("winograd/cpu") and lines[2].endswith("  needs a 3x3 filter")
    note_column = lines[0].index("note")
    assert lines[2].index("needs") == note_column          # text starts under its header
    assert lines[1].index("12.5") + 4 == lines[0].index("time_ms") + 7   # numbers end under it


def _committed_machine(tmp_path, runs):
    """A git checkout holding ``runs`` ({file name: document}) committed under one machine."""
    machine = tmp_path / "test-machine-2c"
    machine.mkdir()
    for name, document in runs.items():
        (machine / name).write_text(json.dumps(document))
    for command in (["init", "-q"], ["add", "."],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "runs"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True, capture_output=True)
    return machine


@pytest.mark.parametrize("narrower", [False, True])
def test_after_a_run_missing_cases_are_listed_unless_the_run_chose_fewer(tmp_path, capsys,
                                                                          narrower):
    """make bench compares a run with the latest committed one: a case gone from a run of the same
    selection is listed, but a run of a narrower selection (--match, --algo) lists no baseline
    case it did not choose, only how many there are."""
    from convbench.__main__ import compare_with_latest_committed

    base = json.loads((DATA / "compare_base.json").read_text())
    machine = _committed_machine(tmp_path, {"20260101T000000Z_base.json": base})
    new = dict(base, rows=[row for row in base["rows"] if row["name"] != "smoke:5x5"])
    if narrower:
        new["options"] = dict(base["options"], match="odd|stride2|groups")
    path = machine / "20260102T000000Z_new.json"
    path.write_text(json.dumps(new))
    compare_with_latest_committed(path)
    printed = capsys.readouterr().out
    assert ("smoke:5x5" in printed) is not narrower
    assert ("1 cases of that run are not in this one" in printed) is narrower
    assert "1 only in base" in printed          # the summary counts it either way


def test_after_a_run_the_base_is_the_latest_committed_run_of_the_same_selection(tmp_path, capsys):
    """A later committed run of one kernel or other threads is not the base of a full sweep."""
    from convbench.__main__ import compare_with_latest_committed

    base = json.loads((DATA / "compare_base.json").read_text())
    partial = dict(base, options=dict(base["options"], algos=["direct"], threads=[1, 2]))
    machine = _committed_machine(tmp_path, {"20260101T000000Z_full.json": base,
                                            "20260102T000000Z_partial.json": partial})
    path = machine / "20260103T000000Z_new.json"
    path.write_text(json.dumps(base))
    def header():
        return next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("compared with"))

    compare_with_latest_committed(path)
    line = header()
    assert "of the same selection" in line
    assert re.search(r"\S+\.json", line).group().endswith("_full.json")

    path.write_text(json.dumps(dict(base, options=dict(base["options"], shapes="other"))))
    compare_with_latest_committed(path)      # no run made that selection: the newest is the base
    line = header()
    assert "(none made the same selection)" in line
    assert re.search(r"\S+\.json", line).group().endswith("_partial.json")


def test_after_a_run_the_comparison_is_written_where_asked(tmp_path, capsys):
    """make bench's comparison also goes to report/compare.json for a CI job to read."""
    from convbench.__main__ import compare_with_latest_committed

    base = json.loads((DATA / "compare_base.json").read_text())
    machine = _committed_machine(tmp_path, {"20260101T000000Z_base.json": base})
    path = machine / "20260102T000000Z_new.json"
    path.write_text((DATA / "compare_slower.json").read_text())
    out = tmp_path / "report" / "compare.json"
    assert compare_with_latest_committed(path, json_path=out) == 1
    document = _strict_json(out.read_text())
    assert document["verdict"] == "REGRESSION"
    assert document["base"]["file"].endswith("20260101T000000Z_base.json")
    assert document["new"]["file"] == str(path) and document["history_runs"] == 1
    assert f"comparison: {out}" in capsys.readouterr().out


def test_a_slowdown_of_changed_code_comes_with_the_ab_command_that_checks_it():
    import pandas as pd

    from convbench.compare import ab_suggestion
    frame = pd.DataFrame([
        dict(name="resnet50:res3a_branch2b", descriptor="d1", algo="direct", backend="cpu",
             verdict="slower", source_changed=True),
        dict(name="resnet50:conv1", descriptor="d2", algo="winograd", backend="cpu",
             verdict="slower", source_changed=True),
        dict(name="vgg16:conv5_1", descriptor="d3", algo="im2col", backend="cpu",
             verdict="slower", source_changed=False),    # unchanged code: the machine's doing
        dict(name=None, descriptor="mb1ic3ih9oc4kh3", algo="fft", backend="cpu",
             verdict="same", source_changed=True)])
    base = {"git": {"commit": "1b0ea6a807c8358dec7e", "dirty": False}}
    new = {"git": {"commit": "e8164b676c0000", "dirty": False},
           "options": {"shapes": "resnet50", "mb": 8}}
    assert ab_suggestion(frame, base, new) == (
        "python -m convbench ab --base 1b0ea6a807 --new e8164b676c --shapes resnet50 --mb 8 "
        "--algo direct,winograd --backend cpu "
        "--match 'resnet50:conv1|resnet50:res3a_branch2b'")
    # a dirty new run is the working tree (ab's default); a dirty base cannot be extracted
    assert "--new" not in ab_suggestion(frame, base, dict(new, git={"commit": "e8", "dirty": True}))
    assert ab_suggestion(frame, dict(base, git={"commit": "1b", "dirty": True}), new) is None
    assert ab_suggestion(frame[frame["verdict"] == "same"], base, new) is None


def test_code_hash_ignores_comments_docstrings_and_layout(tmp_path):
    from convbench.machine import code_hash, source_hash
    text = 'def f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n'
    variants = {"same": text, "commented": text.replace("# doubled", "# times two")
                .replace("Twice x.", "Two times x, measured on nothing.") + "\n\n",
                "changed": text.replace("2 * x", "3 * x")}
    paths = {}
    for name, body in variants.items():
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(body)
    assert code_hash([paths["same"]]) == code_hash([paths["commented"]])
    assert source_hash([paths["same"]]) != source_hash([paths["commented"]])
    assert code_hash([paths["same"]]) != code_hash([paths["changed"]])


A, B, C, D, R, S = (letter * 12 for letter in "abcdrs")


@pytest.mark.parametrize("base_hashes, new_hashes, changed", [
    # (source, code, reach): text, code of the files, code the kernel reaches
    pytest.param((A, C, None), (B, C, None), False, id="comment edit"),
    pytest.param((A, C, None), (A, D, None), True, id="code edit"),
    pytest.param((A, None, None), (B, D, None), True, id="base before code hashes"),
    pytest.param((A, None, None), (A, D, None), False, id="same source, old base"),
    pytest.param((C, C, R), (D, D, R), False, id="a file changed where the kernel does not reach"),
    pytest.param((C, C, R), (C, C, S), True, id="reached code changed"),
    pytest.param((C, C, None), (C, C, S), False, id="base before reach hashes"),
    pytest.param((C, C, None), (D, D, S), True, id="old base, other code"),
])
def test_a_kernel_counts_as_changed_when_its_code_changed(base_hashes, new_hashes, changed):
    base, new = (load_results(DATA / "compare_base.json"),
                 load_results(DATA / "compare_slower.json"))
    for frame, (source, code, reach) in ((base, base_hashes), (new, new_hashes)):
        frame["source_hash"], frame["code_hash"], frame["reach_hash"] = source, code, reach
    frame = compare_frames(base, new, Thresholds())
    assert frame["source_changed"].eq(changed).all()


def test_history_of_the_same_code_counts_across_comment_edits():
    """Earlier runs whose files differ in comments only (other source hash, same code hash) are
    runs of identical code: their spread raises the floor."""
    history = history_of([1.0, 1.3, 0.95], source="other", code="c" * 12)
    base = load_results(DATA / "compare_base.json").assign(code_hash="c" * 12)
    frame = compare_frames(base, load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "same" and "identical code (3 earlier runs)" in row["why"]


def test_runs_from_before_code_hashes_still_give_the_floor_of_identical_code():
    """Earlier runs with the base's source hash but no code hash are the same code: the base's
    code hash is lent to them, so the history floor does not start afresh with code hashes."""
    history = history_of([1.0, 1.3, 0.95])             # no code hashes, the base's source hashes
    base = load_results(DATA / "compare_base.json").assign(code_hash="c" * 12)
    frame = compare_frames(base, load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "same" and "identical code (3 earlier runs)" in row["why"]


def test_runs_from_before_reach_hashes_still_give_the_floor_of_identical_code():
    """Earlier runs with the base's code hash but no reach hash ran identical code: the floor
    is theirs until three runs with reach hashes have been made."""
    history = history_of([1.0, 1.3, 0.95], source="other", code="c" * 12)
    base = load_results(DATA / "compare_base.json").assign(code_hash="c" * 12,
                                                            reach_hash="r" * 12)
    frame = compare_frames(base, load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "same" and "identical code (3 earlier runs)" in row["why"]
    # the same runs with another reach hash and another code hash ran other code: no floor
    history = history.assign(code_hash="d" * 12, reach_hash="q" * 12)
    frame = compare_frames(base, load_results(DATA / "compare_slower.json"), Thresholds(), history)
    row = frame[(frame["name"] == "smoke:3x3_odd") & (frame["algo"] == "direct")].iloc[0]
    assert row["verdict"] == "slower"


def test_history_runs_made_in_another_environment_give_no_floor(tmp_path):
    """Three quiet runs in the base's environment and one with OpenBLAS held to other kernels,
    37 % apart: only the quiet ones set the floor, so a 25 % slowdown stands."""
    from convbench.machine import same_environment
    settings = {"OPENBLAS_THREAD_TIMEOUT": "14"}
    base = json.loads((DATA / "compare_base.json").read_text())
    base["machine"]["library_settings"] = settings
    (tmp_path / "base.json").write_text(json.dumps(base))
    new = json.loads((DATA / "compare_slower.json").read_text())
    new["machine"]["library_settings"] = settings
    (tmp_path / "new.json").write_text(json.dumps(new))
    history = tmp_path / "history"
    history.mkdir()
    for i, (factor, extra) in enumerate([(1.0, {}), (1.02, {}), (0.99, {}),
                                         (1.37, {"OPENBLAS_CORETYPE": "Haswell"})]):
        run = json.loads((DATA / "compare_base.json").read_text())
        run["machine"]["library_settings"] = dict(settings, **extra)
        for row in run["rows"]:
            if row.get("median_s"):
                row["median_s"] *= factor
                row["process_medians_s"] = [v * factor for v in row.get("process_medians_s") or []]
        (history / f"2026010{i}T000000Z_run{i}.json").write_text(json.dumps(run))
    assert not same_environment(base["machine"], run["machine"])
    proc = cli(tmp_path / "base.json", tmp_path / "new.json", "--history", history)
    assert ("history: 3 of the 4 runs, those made in the base run's environment, give the "
            "run-to-run floor") in proc.stdout
    assert proc.returncode == 1 and "verdict: REGRESSION" in proc.stdout
    # with two of the base's environment left there is no floor at all, and compare says so
    (history / "20260100T000000Z_run0.json").unlink()
    proc = cli(tmp_path / "base.json", tmp_path / "new.json", "--history", history)
    assert ("history: 2 of the 3 runs were made in the base run's environment, and a run-to-run "
            "floor needs 3: none applies") in proc.stdout


def test_a_peer_library_installed_in_one_run_only_is_the_same_environment():
    from convbench.machine import same_environment
    base = {"versions": {"numpy": "2.4.6", "torch": "2.13.0+cpu"}, "library_settings": {}}
    assert same_environment(base, {"versions": {"numpy": "2.4.6", "torch": None},
                                   "library_settings": {}})
    assert not same_environment(base, {"versions": {"numpy": "2.5.0", "torch": "2.13.0+cpu"},
                                       "library_settings": {}})
    # a file from before library variables were recorded: not known to be the same
    assert not same_environment(base, {"versions": {"numpy": "2.4.6", "torch": "2.13.0+cpu"}})


def test_a_library_that_only_builds_tables_is_not_part_of_the_environment():
    from convbench.machine import environment_changes, same_environment
    base = {"versions": {"numpy": "2.4.6", "pandas": "3.1.1", "pyperf": "2.10.0"},
            "library_settings": {}}
    pandas = {"versions": {"numpy": "2.4.6", "pandas": "3.2.0", "pyperf": "2.10.0"},
              "library_settings": {}}
    assert same_environment(base, pandas) and environment_changes(base, pandas) == []
    pyperf = {"versions": {"numpy": "2.4.6", "pandas": "3.1.1", "pyperf": "2.11.0"},
              "library_settings": {}}          # pyperf starts and drives the timed processes
    assert environment_changes(base, pyperf) == ["pyperf: 2.10.0 -> 2.11.0"]


def _skipping(tmp_path, label, skip):
    """compare_base.json with the named (case, algo) rows SKIPPED, as a run whose kernel refused
    them writes them: a reason and no timing."""
    import json
    document = json.loads((DATA / "compare_base.json").read_text())
    for row in document["rows"]:
        if (row["name"], row["algo"]) in skip:
            row.update(status="SKIPPED", reason=f"workspace over the limit ({label})",
                       median_s=None, mad_s=None, stdev_s=None, samples_s=None, gflops=None,
                       rel_l2=None, max_err=None)
    path = tmp_path / f"{label}.json"
    path.write_text(json.dumps(document))
    return path


def _with_unavailable(tmp_path, peer):
    """compare_base.json as a base whose smoke:5x5 / smoke:3x3_odd rows came from a kernel of
    ``peer`` kind, and a new run where that kernel could not run at all (its library missing)."""
    import json
    document = json.loads((DATA / "compare_base.json").read_text())
    for row in document["rows"]:
        if row["name"] in ("smoke:5x5", "smoke:3x3_odd"):
            row["peer"] = peer
    base = tmp_path / "base.json"
    base.write_text(json.dumps(document))
    for row in document["rows"]:
        if row["name"] in ("smoke:5x5", "smoke:3x3_odd"):
            row.update(status="SKIPPED", reason="somelib is not installed", unavailable=True,
                       median_s=None, mad_s=None, stdev_s=None, samples_s=None, gflops=None,
                       rel_l2=None, max_err=None, process_medians_s=None)
    new = tmp_path / "new.json"
    new.write_text(json.dumps(document))
    return base, new


def test_a_peer_whose_library_the_new_run_lacks_is_named_and_not_a_regression(tmp_path):
    base, new = _with_unavailable(tmp_path, peer=True)
    frame = compare_frames(load_results(base), load_results(new))
    by_case = dict(zip(zip(frame["name"], frame["algo"]), frame["verdict"]))
    assert by_case[("smoke:5x5", "direct")] == "peer unavailable"
    assert by_case[("smoke:3x3_odd", "direct")] == "peer unavailable"
    assert regressions(frame).empty
    proc = cli(base, new)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("direct/cpu (peer): 2 cases timed in the base run, not in the new run: somelib is "
            "not installed; not compared, not a regression") in proc.stdout
    assert "2 peer unavailable" in proc.stdout
    assert "verdict: no significant slowdown" in proc.stdout


def test_one_of_our_kernels_unavailable_in_the_new_run_is_still_a_regression(tmp_path):
    # a GPU job that lost its GPU (or CuPy) has not shown our kernels to be as fast as before
    base, new = _with_unavailable(tmp_path, peer=False)
    frame = compare_frames(load_results(base), load_results(new))
    assert sorted(regressions(frame)["name"]) == ["smoke:3x3_odd", "smoke:5x5"]
    assert set(regressions(frame)["verdict"]) == {"newly skipped"}
    assert cli(base, new).returncode == 1


def test_a_case_the_new_run_skips_is_a_regression_and_the_reverse_is_not(tmp_path):
    dropped = _skipping(tmp_path, "new", {("smoke:5x5", "direct")})
    frame = compare_frames(load_results(DATA / "compare_base.json"), load_results(dropped))
    by_case = dict(zip(zip(frame["name"], frame["algo"]), frame["verdict"]))
    assert by_case[("smoke:5x5", "direct")] == "newly skipped"
    assert list(regressions(frame)["name"]) == ["smoke:5x5"]
    proc = cli(DATA / "compare_base.json", dropped)
    assert proc.returncode == 1 and "newly skipped" in proc.stdout
    assert "workspace over the limit (new)" in proc.stdout

    back = compare_frames(load_results(dropped), load_results(DATA / "compare_base.json"))
    by_case = dict(zip(zip(back["name"], back["algo"]), back["verdict"]))
    assert by_case[("smoke:5x5", "direct")] == "newly run"
    assert regressions(back).empty
    assert cli(dropped, DATA / "compare_base.json").returncode == 0


def test_cases_skipped_in_both_runs_are_counted_and_listed_only_on_request(tmp_path):
    skip = {("smoke:5x5", "direct"), ("smoke:1x1_groups2", "direct")}
    base, new = _skipping(tmp_path, "base", skip), _skipping(tmp_path, "new", skip)
    proc = cli(base, new)
    assert proc.returncode == 0, proc.stdout
    table = proc.stdout.split("\n\n")[0]
    assert "smoke:3x3_odd" in table and "smoke:5x5" not in table
    assert "2 cases skipped in both runs are not listed" in proc.stdout
    assert "2 skipped" in proc.stdout
    every = cli(base, new, "--all")
    assert "smoke:5x5" in every.stdout and "not listed" not in every.stdout


def test_a_new_run_from_before_the_unavailable_column_keeps_newly_skipped(tmp_path):
    # files written before rows recorded `unavailable` load it as None (NaN after a merge)
    import json
    base, new = _with_unavailable(tmp_path, peer=True)
    document = json.loads(new.read_text())
    for row in document["rows"]:
        row.pop("unavailable", None)
    new.write_text(json.dumps(document))
    frame = compare_frames(load_results(base), load_results(new))
    assert set(regressions(frame)["verdict"]) == {"newly skipped"}
    assert len(regressions(frame)) == 2


def test_a_slowdown_of_unchanged_code_in_the_same_environment_says_so(tmp_path):
    import json
    note = "ran the same kernel code as the base run, in the same environment"
    proc = cli(DATA / "compare_base.json", DATA / "compare_slower.json")
    assert proc.returncode == 1 and f"1 of the slower cases {note}" in proc.stdout
    # the slow case's kernel code changed: the slowdown may be the code, and nothing is said
    document = json.loads((DATA / "compare_slower.json").read_text())
    for row in document["rows"]:
        if row["name"] == "smoke:3x3_odd":
            row["source_hash"] = "0" * 16
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", changed)
    assert proc.returncode == 1 and note not in proc.stdout
    # another numpy: the environment may be why
    document = json.loads((DATA / "compare_slower.json").read_text())
    document["machine"]["versions"] = dict(document["machine"].get("versions") or {},
                                           numpy="0.0.1")
    upgraded = tmp_path / "upgraded.json"
    upgraded.write_text(json.dumps(document))
    proc = cli(DATA / "compare_base.json", upgraded)
    assert proc.returncode == 1 and note not in proc.stdout and "numpy" in proc.stdout
